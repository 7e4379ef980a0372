"""What each revision of a tree leaves in a database, measured, not parsed: the baseline to compare with.

Each tree is upgraded one revision at a time, through its own env.py, in a scratch database owned by
a scratch `<...>_<tree>_owner` role, and the catalog is read after each step. scripts/adopt measures
on the project's embedded PostgreSQL, so the server being adopted is only read; the two must run
the same major version (ops.adoption.inspect checks), since catalog text (a type's or constraint's
rendering) may change between majors. The scratch database and role are dropped afterwards, also
when a step fails.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from psycopg import sql

from migrations import runner
from migrations.shared.heads import copy_location
from migrations.shared.tree import Tree
from model.names import DatabaseKey, owner_key
from ops.adoption.catalog import DatabaseInventory, read_database
from ops.adoption.server_access import AdminAccess


@dataclass(frozen=True)
class RevisionShape:
    revision: str
    inventory: DatabaseInventory
    """The scratch database after upgrading to this revision; its version table is left out."""


def revision_shapes(admin: AdminAccess, tree: Tree) -> list[RevisionShape]:
    """The shape after each revision of `tree`, oldest first."""
    shapes = []
    with _scratch_database(admin, tree) as database:
        target = runner.Target(tree, admin.url(database), database, copy_location(tree.key))
        for revision in runner.revisions_in_order(tree, target.script_location):
            runner.upgrade(target, revision)
            with admin.connect(database) as connection:
                shapes.append(RevisionShape(revision, read_database(connection)))
    return shapes


@contextmanager
def _scratch_database(admin: AdminAccess, tree: Tree) -> Iterator[str]:
    # The owner's name ends as the tree's placement guard expects (`_<tree>_owner`).
    scratch = f"adopt_scratch_{secrets.token_hex(4)}"
    owner = f"{scratch}_{owner_key(DatabaseKey(tree.key))}"
    with admin.connect() as connection:
        connection.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner)))
        try:
            # A managed server's admin is no superuser: membership lets it act as the owner.
            connection.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(owner)))
            connection.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8'").format(
                    sql.Identifier(scratch), sql.Identifier(owner)
                )
            )
            try:
                yield scratch
            finally:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
        finally:
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))
