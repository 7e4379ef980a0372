"""Refuse to run a tree against a database it does not belong to, before anything is locked or changed.

The database a tree belongs to is recognised by what provisioning put in place: its owner role is
`<prefix>_<tree>_owner`. When the deploy knows the configured database name, that must match too.
And a database that already holds the other tree's version table is refused outright.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from migrations.shared.tree import TREES, Tree


class WrongDatabaseError(RuntimeError):
    """The tree was pointed at a database it does not belong to. Nothing was changed."""


@dataclass(frozen=True)
class Placement:
    database: str
    owner: str


def check_placement(connection: Connection, tree: Tree, expected_database: str | None) -> Placement:
    """Return the connected database and its owner when they are the tree's; raise otherwise.

    Runs read-only catalog queries only; the caller ends the implicit transaction they open.
    """
    row = connection.execute(
        text("SELECT current_database(), pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
    ).one()
    placement = Placement(database=row[0], owner=row[1])
    where = f"database {placement.database!r} (owned by {placement.owner!r})"
    if expected_database is not None and placement.database != expected_database:
        raise WrongDatabaseError(
            f"the {tree.key} migration tree belongs to database {expected_database!r}, but the connection "
            f"is to {where}: point the {tree.key} tree's URL at {expected_database!r}. Nothing was changed."
        )
    if not placement.owner.endswith(tree.owner_suffix):
        raise WrongDatabaseError(
            f"the {tree.key} migration tree belongs to the database owned by a role named '*{tree.owner_suffix}', "
            f"but the connection is to {where}: point the {tree.key} tree at the {tree.key} database. "
            "Nothing was changed."
        )
    for other in TREES.values():
        if other.key != tree.key and _has_table(connection, other.version_table):
            raise WrongDatabaseError(
                f"{where} holds {other.version_table!r}, the {other.key} tree's version table: the {tree.key} tree "
                f"does not belong there. Nothing was changed."
            )
    return placement


def _has_table(connection: Connection, name: str) -> bool:
    found = connection.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": f"public.{name}"})
    return bool(found.scalar_one())


def offline_guard_sql(tree: Tree, expected_database: str | None) -> str:
    """The same check for `--sql` output, so a DBA who runs the script in the wrong database stops at once."""
    suffix = tree.owner_suffix
    condition = f"right(pg_get_userbyid(datdba), {len(suffix)}) <> '{suffix}'"
    if expected_database is not None:
        condition += " OR datname <> '" + expected_database.replace("'", "''") + "'"
    return (
        "DO $guard$ BEGIN\n"
        f"  IF EXISTS (SELECT FROM pg_database WHERE datname = current_database() AND ({condition})) THEN\n"
        f"    RAISE EXCEPTION 'the {tree.key} migration tree does not belong to database %', current_database();\n"
        "  END IF;\n"
        "END $guard$"
    )
