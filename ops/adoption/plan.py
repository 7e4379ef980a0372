"""The adoption plan: what the server holds against what the stack's model wants, by database.

Built from read-only inventories (ops.adoption.catalog), the trees' measured revision shapes
(ops.adoption.revision_shapes) and the stack's state; rendered as text for a person, and carried
out step by step by ops.adoption.apply. A refusal (a table that matches no revision, a misplaced
table that differs from its destination) stops `--apply` before anything is changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from migrations.shared.tree import TREES, Tree
from model.names import DatabaseKey
from ops.adoption.baseline import Baseline, find_baseline
from ops.adoption.catalog import DatabaseInventory, Table
from ops.adoption.move import RETIRED_SCHEMA
from ops.adoption.revision_shapes import RevisionShape

LEGACY_VERSION_TABLE = "alembic_version"
"""Alembic's default version table: the review's one tree that served both databases."""


@dataclass(frozen=True)
class Misplaced:
    table: str
    rows: int
    destination: DatabaseKey
    differences: tuple[str, ...] = ()
    """How the table differs from the one its destination's tree makes; non-empty means refused."""
    after_deploy: bool = False
    """The destination database or table does not exist yet: the rows move once the deploy made it."""


@dataclass(frozen=True)
class DatabasePlan:
    key: DatabaseKey
    name: str
    owner: str
    """The model's owner role of this database."""
    inventory: DatabaseInventory | None
    """None when the database does not exist: the deploy creates it as on a fresh server."""
    in_stack: bool
    """The stack's state already holds the database (adopted or created by an earlier deploy)."""
    baseline: Baseline | None = None
    """None when the tree's own version table exists already (or there is no database)."""
    misplaced: tuple[Misplaced, ...] = ()
    foreign_owned: tuple[str, ...] = ()
    """The tree's tables that another role owns: given to the owner role."""
    unknown_tables: tuple[str, ...] = ()
    extra_indexes: tuple[str, ...] = ()
    head: str = ""
    """The tree's head revision."""
    unfinished_moves: tuple[str, ...] = ()
    """Tables moved into this database and retired from the other, whose final check did not run yet."""
    retired_foreign_owned: tuple[str, ...] = ()
    """What an earlier run retired (RETIRED_SCHEMA as "", its tables) that another role owns: given to the owner."""

    @property
    def tree(self) -> Tree:
        return TREES[self.key.value]

    @property
    def legacy_versions(self) -> tuple[str, ...] | None:
        if self.inventory is None or LEGACY_VERSION_TABLE not in self.inventory.version_tables:
            return None
        return self.inventory.version_tables[LEGACY_VERSION_TABLE]

    @property
    def refusals(self) -> list[str]:
        lines = [f"{self.name}: {line}" for line in (self.baseline.differences if self.baseline else ())]
        stamp_collision = self.stamp_collision
        if stamp_collision is not None:
            lines.append(f"{self.name}: {stamp_collision}")
        for table in self.misplaced:
            lines += [f"{self.name}.{table.table} (misplaced): {line}" for line in table.differences]
        return lines

    @property
    def stamp_collision(self) -> str | None:
        """The stamp creates the tree's version table with Alembic's primary key `<table>_pkc`: a relation
        already named so would stop it half-way through the apply."""
        if self.baseline is None or self.baseline.revision is None or self.inventory is None:
            return None
        key_name = f"{self.tree.version_table}_pkc"
        holder = self.inventory.relation_named(key_name)
        if holder is None:
            return None
        return (
            f"{holder} is named {key_name}, the name of the primary key of the version table "
            f"{self.tree.version_table} that the stamp creates: rename it (ALTER INDEX ... RENAME, or ALTER TABLE "
            "... RENAME CONSTRAINT) and plan again"
        )

    def changes(self) -> list[str]:
        """What --apply will do to this database, in order; [] when it is adopted already."""
        if self.inventory is None:
            return []
        lines = []
        for table in self.misplaced:
            when = " after the deploy has made it" if table.after_deploy else ""
            lines.append(
                f"move {table.rows:,} rows of the misplaced {table.table} to the {table.destination} database's "
                f"{table.table}{when}, then retire it to {self.name}.{RETIRED_SCHEMA}.{table.table}, "
                f"owned by {self.owner}"
            )
        for moved in self.unfinished_moves:
            lines.append(f"finish the move of {moved}: check the retired table against the moved rows")
        for index in self.inventory.invalid_indexes:
            lines.append(f"drop the invalid index {index} (a failed concurrent build); the tree builds its own")
        if self.inventory.owner != self.owner:
            lines.append(f"give the database to {self.owner} (owned by {self.inventory.owner})")
        if self.foreign_owned:
            lines.append(f"give the tables {', '.join(self.foreign_owned)} (with their sequences) to {self.owner}")
        if self.retired_foreign_owned:
            retired = ", ".join(".".join(filter(None, (RETIRED_SCHEMA, name))) for name in self.retired_foreign_owned)
            lines.append(f"give the retired {retired} to {self.owner}")
        if self.baseline is not None:
            for rename in self.baseline.renames:
                lines.append(
                    f"rename {rename.kind} {rename.old} on {rename.table} to {rename.new} (the revision's name)"
                )
            if self.baseline.revision is not None:
                lines.append(f"stamp {self.tree.version_table} at {self.baseline.revision} (tables checked equal)")
        if self.legacy_versions is not None:
            ids = ", ".join(self.legacy_versions) or "no revision"
            lines.append(
                f"retire {LEGACY_VERSION_TABLE} (at {ids}) to {self.name}.{RETIRED_SCHEMA}, owned by {self.owner}"
            )
        if not self.in_stack:
            lines.append(f"import the database and {self.owner} into the stack (not recreated)")
        version = self.inventory.version_tables.get(self.tree.version_table)
        if version is not None and version != (self.head,):
            lines.append(f"upgrade the tree from {', '.join(version) or 'base'} to {self.head} (in the deploy)")
        return lines

    def facts(self) -> list[str]:
        """What exists, for the report; nothing here is changed."""
        if self.inventory is None:
            return ["does not exist: the deploy creates it"]
        inventory = self.inventory
        lines = [f"exists, owned by {inventory.owner}"]
        tree_tables = [name for name in inventory.tables if name not in {m.table for m in self.misplaced}]
        lines.append("tables: " + (", ".join(sorted(tree_tables)) or "none"))
        for table, versions in inventory.version_tables.items():
            lines.append(f"version table {table}: {', '.join(versions) or 'empty'}")
        if self.baseline is not None and self.baseline.to_build:
            lines.append("indexes the tree's upgrade builds (concurrently): " + ", ".join(self.baseline.to_build))
        if self.unknown_tables:
            lines.append("tables no tree knows, left alone: " + ", ".join(self.unknown_tables))
        if self.extra_indexes:
            lines.append("indexes no revision makes, left alone: " + ", ".join(self.extra_indexes))
        return lines


@dataclass(frozen=True)
class RoleReport:
    name: str
    can_login: bool
    reaches: tuple[str, ...]


@dataclass(frozen=True)
class RoleAction:
    """A `legacyRoles` entry still to carry out: nologin for a role that can log in, drop for one that exists."""

    role: str
    action: str
    elsewhere: tuple[str, ...] = ()
    """Databases outside the stack where the role owns or is granted something: a drop is refused."""

    @property
    def refusal(self) -> str | None:
        if self.action != "drop" or not self.elsewhere:
            return None
        return (
            f"legacyRoles drops {self.role}, which owns or is granted objects in {', '.join(self.elsewhere)} "
            "as well: hand them over there first, or make it nologin"
        )

    def describe(self, databases: tuple[DatabasePlan, ...]) -> str:
        if self.action == "nologin":
            return f"make {self.role} NOLOGIN (legacyRoles)"
        owners = ", ".join(f"{database.name} to {database.owner}" for database in databases if database.inventory)
        return f"drop {self.role} (legacyRoles), after handing what it owns in {owners}"


@dataclass(frozen=True)
class Plan:
    stack: str
    server: str
    databases: tuple[DatabasePlan, ...]
    legacy_roles: tuple[RoleReport, ...] = field(default=())
    role_actions: tuple[RoleAction, ...] = field(default=())
    deploy_pending: bool = False
    """The stack holds the databases but no deploy of it has succeeded yet (one was killed or failed)."""

    @property
    def refusals(self) -> list[str]:
        lines = [line for database in self.databases for line in database.refusals]
        return lines + [action.refusal for action in self.role_actions if action.refusal]

    @property
    def pending(self) -> bool:
        changes = any(database.changes() for database in self.databases)
        return changes or bool(self.role_actions) or self.deploy_pending

    def database(self, key: DatabaseKey) -> DatabasePlan:
        return next(database for database in self.databases if database.key is key)

    @property
    def existing(self) -> list[DatabaseKey]:
        """The databases on the server: the deploy imports these (a missing one it creates)."""
        return [database.key for database in self.databases if database.inventory is not None]

    def render(self) -> str:
        out = [f"adoption plan for stack {self.stack} (server {self.server})"]
        for database in self.databases:
            out.append(f"\n{database.key} database {database.name}")
            out += [f"  {line}" for line in database.facts()]
            out += [f"  will {line}" for line in database.changes()]
            out += [f"  REFUSED: {line}" for line in database.refusals]
        if self.legacy_roles:
            out.append("\nroles outside the model (changed only as legacyRoles says)")
            for role in self.legacy_roles:
                kind = "LOGIN" if role.can_login else "NOLOGIN"
                out.append(f"  {role.name} ({kind}): {'; '.join(role.reaches) or 'reaches nothing'}")
            out.append(
                "  their objects go to the owner roles and PUBLIC loses CONNECT: once --apply has run, these roles "
                "reach nothing in the two databases; point the application at the stack's logins "
                "(`scripts/pulumi stack output connection_urls --show-secrets`) right after it"
            )
        if self.deploy_pending:
            out.append("\nthe stack's last deploy did not finish: --apply deploys again")
        if self.role_actions:
            out.append("\nroles")
            out += [f"  will {action.describe(self.databases)}" for action in self.role_actions]
            out += [f"  REFUSED: {action.refusal}" for action in self.role_actions if action.refusal]
        if self.refusals:
            out.append("\nrefused (each REFUSED line above says why): fix it, then plan again. Nothing was changed.")
        elif self.pending:
            out.append(
                f"\nchanges pending: run `scripts/adopt {self.stack} --apply` (after a backup: docs/adoption.md)."
            )
        elif all(database.inventory is None for database in self.databases):
            out.append(f"\nnothing to adopt: neither database exists; `scripts/up {self.stack}` creates them.")
        else:
            out.append("\nno changes needed: nothing is left to adopt.")
        return "\n".join(out)


def plan_database(
    key: DatabaseKey,
    name: str,
    owner: str,
    inventories: dict[DatabaseKey, DatabaseInventory | None],
    in_stack: bool,
    shapes: dict[DatabaseKey, list[RevisionShape]],
    count_rows: Callable[[str, str], int],
    unfinished_moves: tuple[str, ...] = (),
    retired_foreign_owned: tuple[str, ...] = (),
) -> DatabasePlan:
    """`count_rows(database, table)`: the exact row count of a misplaced table (read-only)."""
    inventory = inventories[key]
    head = shapes[key][-1].revision
    if inventory is None:
        return DatabasePlan(key, name, owner, None, in_stack, head=head)
    own_tables = frozenset(shapes[key][-1].inventory.tables)
    other = DatabaseKey.LOGS if key is DatabaseKey.MAIN else DatabaseKey.MAIN
    other_tables = frozenset(shapes[other][-1].inventory.tables)
    misplaced = tuple(
        _misplaced(
            inventory.tables[table], other, inventories[other], shapes[other][-1].inventory, count_rows(name, table)
        )
        for table in sorted(other_tables & inventory.tables.keys() - own_tables)
    )
    baseline = None
    if TREES[key.value].version_table not in inventory.version_tables:
        baseline = find_baseline(inventory, own_tables, shapes[key])
    head_indexes = {index.name for index in shapes[key][-1].inventory.indexes}
    renamed = {rename.old for rename in baseline.renames} if baseline else set()
    return DatabasePlan(
        key=key,
        name=name,
        owner=owner,
        inventory=inventory,
        in_stack=in_stack,
        baseline=baseline,
        misplaced=misplaced,
        foreign_owned=tuple(
            sorted(t for t in own_tables & inventory.tables.keys() if inventory.tables[t].owner != owner)
        ),
        unknown_tables=tuple(sorted(inventory.tables.keys() - own_tables - other_tables)),
        extra_indexes=tuple(
            sorted(
                index.name
                for index in inventory.indexes
                if index.table in own_tables and index.name not in head_indexes | renamed
            )
        ),
        head=head,
        unfinished_moves=unfinished_moves,
        retired_foreign_owned=retired_foreign_owned,
    )


def _misplaced(
    table: Table, destination: DatabaseKey, there: DatabaseInventory | None, head: DatabaseInventory, rows: int
) -> Misplaced:
    """The rows move only into a table of the same shape: the destination's, or the head's it will get."""
    if there is None or table.name not in there.tables:
        differences = tuple(
            f"against {destination}.{table.name} at head: {line}"
            for line in table.differences(head.tables[table.name], compare_keys=False)
        )
        return Misplaced(table.name, rows, destination, differences, after_deploy=True)
    differences = tuple(
        f"against {destination}.{table.name}: {line}"
        for line in table.differences(there.tables[table.name], compare_keys=False)
    )
    return Misplaced(table.name, rows, destination, differences)
