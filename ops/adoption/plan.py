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
        for table in self.misplaced:
            lines += [f"{self.name}.{table.table} (misplaced): {line}" for line in table.differences]
        return lines

    def changes(self) -> list[str]:
        """What --apply will do to this database, in order; [] when it is adopted already."""
        if self.inventory is None:
            return []
        lines = []
        for table in self.misplaced:
            lines.append(
                f"move {table.rows:,} rows of the misplaced {table.table} to the {table.destination} database's "
                f"{table.table}, then retire it to {self.name}.{RETIRED_SCHEMA}.{table.table}"
            )
        if self.inventory.owner != self.owner:
            lines.append(f"give the database to {self.owner} (owned by {self.inventory.owner})")
        if self.foreign_owned:
            lines.append(f"give the tables {', '.join(self.foreign_owned)} (with their sequences) to {self.owner}")
        if self.baseline is not None:
            for rename in self.baseline.renames:
                lines.append(f"rename index {rename.old} on {rename.table} to {rename.new} (the revision's name)")
            if self.baseline.revision is not None:
                lines.append(f"stamp {self.tree.version_table} at {self.baseline.revision} (tables checked equal)")
        if self.legacy_versions is not None:
            ids = ", ".join(self.legacy_versions) or "no revision"
            lines.append(f"retire {LEGACY_VERSION_TABLE} (at {ids}) to {self.name}.{RETIRED_SCHEMA}")
        if not self.in_stack:
            lines.append(f"import the database and {self.owner} into the stack (not recreated)")
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

    @property
    def refusals(self) -> list[str]:
        return [line for database in self.databases for line in database.refusals]

    @property
    def pending(self) -> bool:
        return any(database.changes() for database in self.databases) or bool(self.role_actions)

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
        if self.role_actions:
            out.append("\nroles")
            out += [f"  will {action.describe(self.databases)}" for action in self.role_actions]
        if self.refusals:
            out.append("\nrefused: the tables above differ from every revision; fix them by hand, then plan again.")
        elif self.pending:
            out.append(
                f"\nchanges pending: run `scripts/adopt {self.stack} --apply` (after a backup: docs/adoption.md)."
            )
        elif all(database.inventory is None for database in self.databases):
            out.append(f"\nnothing to adopt: neither database exists; `scripts/up {self.stack}` creates them.")
        else:
            out.append("\nno changes needed: the server is adopted.")
        return "\n".join(out)


def plan_database(
    key: DatabaseKey,
    name: str,
    owner: str,
    inventories: dict[DatabaseKey, DatabaseInventory | None],
    in_stack: bool,
    shapes: dict[DatabaseKey, list[RevisionShape]],
    count_rows: Callable[[str, str], int],
) -> DatabasePlan:
    """`count_rows(database, table)`: the exact row count of a misplaced table (read-only)."""
    inventory = inventories[key]
    if inventory is None:
        return DatabasePlan(key, name, owner, None, in_stack)
    own_tables = frozenset(shapes[key][-1].inventory.tables)
    other = DatabaseKey.LOGS if key is DatabaseKey.MAIN else DatabaseKey.MAIN
    other_tables = frozenset(shapes[other][-1].inventory.tables)
    misplaced = tuple(
        _misplaced(inventory.tables[table], other, inventories[other], count_rows(name, table))
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
    )


def _misplaced(table: Table, destination: DatabaseKey, there: DatabaseInventory | None, rows: int) -> Misplaced:
    """The rows can move only into a table of the same shape in the destination database."""
    if there is None or table.name not in there.tables:
        missing = f"the {destination} database has no {table.name} to move the rows to: deploy it first"
        return Misplaced(table.name, rows, destination, (missing,))
    differences = tuple(
        f"against {destination}.{table.name}: {line}" for line in table.differences(there.tables[table.name])
    )
    return Misplaced(table.name, rows, destination, differences)
