"""Catalog queries the migration tests assert on."""

from __future__ import annotations

import psycopg

# The tables and indexes a tree made: a partition of a log table, and its indexes, belong to the table.
TABLES = (
    "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') "
    "AND NOT relispartition"
)
INDEXES = (
    "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
    "WHERE t.relnamespace = 'public'::regnamespace AND NOT t.relispartition"
)

INDEX_DEFINITIONS = INDEXES.replace("SELECT i.relname", "SELECT i.relname, pg_get_indexdef(i.oid)")


def tables(connection: psycopg.Connection) -> set[str]:
    return {row[0] for row in connection.execute(TABLES).fetchall()}


def indexes(connection: psycopg.Connection) -> set[str]:
    return {row[0] for row in connection.execute(INDEXES).fetchall()}


def invalid_indexes(connection: psycopg.Connection) -> set[str]:
    rows = connection.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid"
    ).fetchall()
    return {row[0] for row in rows}


def table_owners(connection: psycopg.Connection) -> dict[str, str]:
    rows = connection.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0]: row[1] for row in rows}
