"""Which revision an existing database already is, checked table by table, index by index.

A database whose tables were made without the tree (a worker's `create_all()`, a tree that served
both databases) is stamped at the latest revision whose tables it has exactly (columns, types,
nullability, defaults, identity, constraints) and whose indexes it has under any name. Indexes of that
revision or a later one found under another name are renamed to the revision's name, so the tree's
upgrade sees them as its own instead of building them twice; the rest the upgrade builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ops.adoption.catalog import DatabaseInventory, Index, Table
from ops.adoption.revision_shapes import RevisionShape


@dataclass(frozen=True)
class Rename:
    table: str
    old: str
    new: str
    kind: str = "index"
    """index, or constraint (a primary key's or unique constraint's index follows its constraint's name)."""


@dataclass(frozen=True)
class Baseline:
    revision: str | None
    """The revision to stamp; None when the database holds none of the tree's tables (nothing to stamp)."""
    renames: tuple[Rename, ...] = ()
    to_build: tuple[str, ...] = ()
    """Indexes of later revisions that exist under no name: the tree's upgrade builds them."""
    differences: tuple[str, ...] = field(default=())
    """Why no revision matches; non-empty means the baseline is refused."""

    @property
    def refused(self) -> bool:
        return bool(self.differences)


def find_baseline(live: DatabaseInventory, tree_tables: frozenset[str], shapes: list[RevisionShape]) -> Baseline:
    """`tree_tables`: every table the tree's head has; tables of the database outside it are not compared."""
    present = {name: table for name, table in live.tables.items() if name in tree_tables}
    if not present:
        return Baseline(None)
    head = shapes[-1].inventory
    for shape in reversed(shapes):
        if _matches(live, present, shape.inventory):
            renames = _constraint_renames(present, shape.inventory) + _renames(live, head, set(present))
            renamed = {rename.new for rename in renames}
            live_names = {index.name for index in live.indexes}
            to_build = tuple(
                index.name
                for index in head.indexes
                if index.table in present and index.name not in live_names | renamed
            )
            return Baseline(shape.revision, renames, to_build)
    closest = _closest(present, shapes)
    differences = [f"against revision {closest.revision}: {line}" for line in _differences(present, closest.inventory)]
    return Baseline(None, differences=tuple(differences))


def _matches(live: DatabaseInventory, present: dict[str, Table], revision: DatabaseInventory) -> bool:
    if set(revision.tables) != set(present):
        return False
    if any(live.tables[name].differences(table) for name, table in revision.tables.items()):
        return False
    live_definitions = {index.definition for index in live.indexes}
    return all(index.definition in live_definitions for index in revision.indexes)


def _renames(live: DatabaseInventory, head: DatabaseInventory, tables: set[str]) -> tuple[Rename, ...]:
    by_definition: dict[str, Index] = {}
    for index in live.indexes:
        by_definition.setdefault(index.definition, index)
    live_names = {index.name for index in live.indexes}
    renames = []
    for wanted in head.indexes:
        found = by_definition.get(wanted.definition)
        if wanted.table in tables and found is not None and found.name != wanted.name and wanted.name not in live_names:
            renames.append(Rename(wanted.table, found.name, wanted.name))
    return tuple(renames)


def _constraint_renames(present: dict[str, Table], revision: DatabaseInventory) -> tuple[Rename, ...]:
    return tuple(
        Rename(name, old, new, "constraint")
        for name, table in sorted(present.items())
        for old, new in table.constraint_renames(revision.tables[name])
    )


def _closest(present: dict[str, Table], shapes: list[RevisionShape]) -> RevisionShape:
    """The latest revision with the same tables, else the head: what the differences are named against."""
    for shape in reversed(shapes):
        if set(shape.inventory.tables) == set(present):
            return shape
    return shapes[-1]


def _differences(present: dict[str, Table], revision: DatabaseInventory) -> list[str]:
    lines = [f"table {name} is missing" for name in sorted(revision.tables.keys() - present.keys())]
    lines += [f"table {name} is not in the revision" for name in sorted(present.keys() - revision.tables.keys())]
    for name in sorted(present.keys() & revision.tables.keys()):
        lines += [f"{name}: {line}" for line in present[name].differences(revision.tables[name])]
    return lines
