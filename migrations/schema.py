"""Which tables and indexes a tree's head creates, read from the tree itself: the expected placement.

Every table and index of a database is made by that database's tree, so the tree is the one list:
its upgrade from base to head, rendered offline (`alembic upgrade --sql`, no database needed), names
each one. A new revision that adds a table needs no edit anywhere else; tests/migrations checks this
reading against the catalog of a database the tree really migrated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy.engine import URL

from migrations import runner
from migrations.shared.partitions import is_partition_name
from migrations.shared.tree import Tree

_NAME = r'"?(\w+)"?'
# A column list on lines of its own, as SQLAlchemy renders one: a partition's one-line `(LIKE parent ...)`
# is not a table of the tree, and must not run on into the next statement.
_CREATE_TABLE = re.compile(rf"^CREATE TABLE (?:IF NOT EXISTS )?{_NAME} \(\n(?P<body>.*?)^\);", re.M | re.S)
_DROP_TABLE = re.compile(rf"^DROP TABLE (?:IF EXISTS )?{_NAME}", re.M)
_CREATE_INDEX = re.compile(
    rf"^CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?{_NAME} ON (?:ONLY )?{_NAME}", re.M
)
_DROP_INDEX = re.compile(rf"^DROP INDEX (?:CONCURRENTLY )?(?:IF EXISTS )?{_NAME}", re.M)
_NAMED_KEY = re.compile(r"CONSTRAINT (\w+) (?:PRIMARY KEY|UNIQUE)")
_ADDED_KEY = re.compile(rf"^ALTER TABLE {_NAME} ADD CONSTRAINT {_NAME} (?:PRIMARY KEY|UNIQUE)", re.M)


@dataclass(frozen=True)
class TreeSchema:
    tables: frozenset[str]
    """The data tables, without the tree's version table."""
    indexes: frozenset[str]
    """Every index, the version table's primary key included."""


def head_schema(tree: Tree, script_location: Path | None = None) -> TreeSchema:
    return schema_at(tree, script_location, "head")


@cache
def schema_at(tree: Tree, script_location: Path | None, revision: str) -> TreeSchema:
    """What the upgrade from base to `revision` leaves: a database whose contract revision waits for the
    stack key is verified at the revision it is at, not at the head."""
    offline = runner.Target(tree, URL.create("postgresql+psycopg"), script_location=script_location)
    return read_schema(runner.upgrade_sql(offline, revision), tree.version_table)


def read_schema(script: str, version_table: str) -> TreeSchema:
    """The tables and indexes an upgrade script leaves, in the order it creates and drops them."""
    events: list[tuple[int, str, str, str]] = []  # (position, what happens, name, its table)
    for match in _CREATE_TABLE.finditer(script):
        table, body = match.group(1), match.group("body")
        events.append((match.start(), "table+", table, table))
        for key in _NAMED_KEY.finditer(body):
            events.append((match.start(), "index+", key.group(1), table))
        if re.search(r"^\s*PRIMARY KEY", body, re.M):  # unnamed: PostgreSQL calls it <table>_pkey
            events.append((match.start(), "index+", f"{table}_pkey", table))
    events += [(m.start(), "table-", m.group(1), m.group(1)) for m in _DROP_TABLE.finditer(script)]
    events += [(m.start(), "index+", m.group(1), m.group(2)) for m in _CREATE_INDEX.finditer(script)]
    events += [(m.start(), "index+", m.group(2), m.group(1)) for m in _ADDED_KEY.finditer(script)]
    events += [(m.start(), "index-", m.group(1), "") for m in _DROP_INDEX.finditer(script)]
    tables: set[str] = set()
    indexes: dict[str, str] = {}  # index -> its table
    for _, event, name, table in sorted(events):
        if event == "table+":
            tables.add(name)
        elif event == "table-":  # its indexes go with it
            tables.discard(name)
            indexes = {index: on for index, on in indexes.items() if on != name}
        elif event == "index+":
            indexes[name] = table
        else:
            indexes.pop(name, None)
    # A log table's partitions, and their indexes, are the table's: its name stands for all of them.
    partitions = {name for name in (*tables, *indexes) if any(is_partition_name(table, name) for table in tables)}
    return TreeSchema(frozenset(tables - partitions - {version_table}), frozenset(set(indexes) - partitions))
