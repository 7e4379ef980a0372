"""What a database holds, read from its catalog without changing anything: the adoption's inventory.

Tables are described by their shape (columns, types, nullability, defaults, identity, constraints)
and indexes by their definition without their name, so a table made by `create_all()` compares equal
to the one a revision makes, and an index made by hand under another name is recognised as the
revision's. Only the `public` schema is read: it is where the application and both trees keep tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

SCHEMA = "public"


@dataclass(frozen=True, order=True)
class Column:
    name: str
    type: str
    not_null: bool
    default: str | None
    identity: str
    """'a' (GENERATED ALWAYS), 'd' (BY DEFAULT) or '' (none), as pg_attribute.attidentity."""
    generated: str
    """'s' for a stored generated column, else ''."""

    def describe(self) -> str:
        parts = [self.type, "NOT NULL" if self.not_null else "NULL"]
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        if self.identity:
            parts.append("IDENTITY ALWAYS" if self.identity == "a" else "IDENTITY BY DEFAULT")
        if self.generated:
            parts.append("GENERATED STORED")
        return " ".join(parts)


@dataclass(frozen=True, order=True)
class Constraint:
    name: str
    definition: str
    """pg_get_constraintdef: `PRIMARY KEY (id)`, `CHECK ((level = ANY (...)))`, ..."""

    @property
    def is_primary_key(self) -> bool:
        return self.definition.startswith("PRIMARY KEY")


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    definition: str
    """pg_get_indexdef without the index's name: `CREATE INDEX ON public.t USING btree (a, b DESC)`."""


@dataclass(frozen=True)
class Table:
    name: str
    owner: str
    columns: tuple[Column, ...]
    constraints: tuple[Constraint, ...]

    def differences(self, expected: Table, compare_keys: bool = True) -> list[str]:
        """How this table differs from `expected`, one line per column or constraint; [] when equal.

        Without `compare_keys`, primary keys are left out: rows moved into a table take new ids from
        it, so whether they fit depends on its columns and checks (a partitioned log table's key
        holds created_at as well, logs_0004).
        """
        lines: list[str] = []
        mine = {column.name: column for column in self.columns}
        theirs = {column.name: column for column in expected.columns}
        for name in sorted(theirs.keys() - mine.keys()):
            lines.append(f"column {name} is missing (expected {theirs[name].describe()})")
        for name in sorted(mine.keys() - theirs.keys()):
            lines.append(f"column {name} ({mine[name].describe()}) is not in the revision")
        for name in sorted(mine.keys() & theirs.keys()):
            if mine[name] != theirs[name]:
                lines.append(f"column {name} is {mine[name].describe()}, the revision has {theirs[name].describe()}")
        # Constraints by what they check: one under another name is renamed (constraint_renames), not refused.
        mine_checks = {constraint.definition for constraint in self.constraints}
        their_checks = {constraint.definition for constraint in expected.constraints}
        for constraint in sorted(expected.constraints):
            if constraint.definition not in mine_checks and (compare_keys or not constraint.is_primary_key):
                lines.append(f"constraint {constraint.name} {constraint.definition} is missing")
        for constraint in sorted(self.constraints):
            if constraint.definition not in their_checks and (compare_keys or not constraint.is_primary_key):
                lines.append(f"constraint {constraint.name} {constraint.definition} is not in the revision")
        return lines

    def constraint_renames(self, expected: Table) -> list[tuple[str, str]]:
        """(name here, the revision's name) of each constraint that checks the same under another name:
        a `create_all()` names an unnamed CHECK `<table>_<column>_check`, the revision names it itself."""
        mine = {constraint.definition: constraint.name for constraint in self.constraints}
        return sorted(
            (mine[constraint.definition], constraint.name)
            for constraint in expected.constraints
            if constraint.definition in mine and mine[constraint.definition] != constraint.name
        )


@dataclass(frozen=True)
class DatabaseInventory:
    name: str
    owner: str
    tables: dict[str, Table]
    indexes: tuple[Index, ...]
    """Indexes that back no constraint (a primary key's or unique constraint's index is the constraint's)."""
    version_tables: dict[str, tuple[str, ...]]
    """Each Alembic version table (a table named alembic_version*) and the revision ids it holds."""
    invalid_indexes: tuple[str, ...] = ()
    """Indexes a failed concurrent build left INVALID: not counted as present."""

    def relation_named(self, name: str) -> str | None:
        """What already holds `name` in the schema's one namespace of relations (a table, an index, or
        a primary key, unique or exclusion constraint, whose index has its name); None when free."""
        if name in self.tables:
            return f"the table {name}"
        for index in self.indexes:
            if index.name == name:
                return f"an index of {index.table}"
        for table in self.tables.values():
            for constraint in table.constraints:
                if constraint.name == name and constraint.definition.startswith(("PRIMARY KEY", "UNIQUE", "EXCLUDE")):
                    return f"a constraint of {table.name}"
        return None


_INDEX_NAME = re.compile(r"^(CREATE (?:UNIQUE )?INDEX) \S+ (ON )")


def nameless(definition: str) -> str:
    """An index definition without its name, so two indexes built alike compare equal.

    An index of a partitioned table reads `ON ONLY`: the same index, as far as adoption compares
    (the table's partitioning is compared as the table's, by its key).
    """
    return _INDEX_NAME.sub(r"\1 \2", definition, count=1).replace(" ON ONLY ", " ON ", 1)


def read_database(connection: psycopg.Connection[Any]) -> DatabaseInventory:
    """The inventory of the database `connection` is connected to. Reads only."""
    name, owner = _one(
        connection,
        "SELECT current_database(), pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()",
    )
    tables = {table.name: table for table in _tables(connection)}
    version_tables = {
        name: _versions(connection, name) for name, table in sorted(tables.items()) if _is_version_table(table)
    }
    return DatabaseInventory(
        name=name,
        owner=owner,
        tables={name: table for name, table in tables.items() if name not in version_tables},
        indexes=_indexes(connection),
        version_tables=version_tables,
        invalid_indexes=_invalid_indexes(connection),
    )


def _one(connection: psycopg.Connection[Any], query: str) -> tuple[Any, ...]:
    row = connection.execute(query).fetchone()
    assert row is not None, query
    return tuple(row)


def _tables(connection: psycopg.Connection[Any]) -> list[Table]:
    rows = connection.execute(
        "SELECT c.oid, c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
        "WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "ORDER BY c.relname",
        (SCHEMA,),
    ).fetchall()
    return [
        Table(
            name=relname,
            owner=owner,
            columns=_columns(connection, oid),
            constraints=_constraints(connection, oid),
        )
        for oid, relname, owner in rows
    ]


def _columns(connection: psycopg.Connection[Any], table_oid: int) -> tuple[Column, ...]:
    rows = connection.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated "
        "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (table_oid,),
    ).fetchall()
    return tuple(
        Column(name, type_, not_null, default, identity, generated)
        for name, type_, not_null, default, identity, generated in rows
    )


def _constraints(connection: psycopg.Connection[Any], table_oid: int) -> tuple[Constraint, ...]:
    rows = connection.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s ORDER BY conname",
        (table_oid,),
    ).fetchall()
    return tuple(Constraint(name, definition) for name, definition in rows)


def _indexes(connection: psycopg.Connection[Any]) -> tuple[Index, ...]:
    rows = connection.execute(
        "SELECT i.relname, t.relname, pg_get_indexdef(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
        "WHERE t.relnamespace = %s::regnamespace AND x.indisvalid AND NOT t.relispartition "
        "AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = x.indexrelid) "
        "ORDER BY t.relname, i.relname",
        (SCHEMA,),
    ).fetchall()
    return tuple(Index(name, table, nameless(definition)) for name, table, definition in rows)


def _invalid_indexes(connection: psycopg.Connection[Any]) -> tuple[str, ...]:
    rows = connection.execute(
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE i.relnamespace = %s::regnamespace AND NOT x.indisvalid ORDER BY 1",
        (SCHEMA,),
    ).fetchall()
    return tuple(row[0] for row in rows)


def _is_version_table(table: Table) -> bool:
    """Alembic's: named alembic_version*, with its version_num column (a table merely named so is a table)."""
    return table.name.startswith("alembic_version") and any(column.name == "version_num" for column in table.columns)


def _versions(connection: psycopg.Connection[Any], table: str) -> tuple[str, ...]:
    query = sql.SQL("SELECT version_num FROM {} ORDER BY 1").format(sql.Identifier(SCHEMA, table))
    return tuple(row[0] for row in connection.execute(query).fetchall())
