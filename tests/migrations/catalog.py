"""Catalog queries the migration tests assert on."""

from __future__ import annotations

import psycopg


def tables(connection: psycopg.Connection) -> set[str]:
    rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def indexes(connection: psycopg.Connection) -> set[str]:
    rows = connection.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def invalid_indexes(connection: psycopg.Connection) -> set[str]:
    rows = connection.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid"
    ).fetchall()
    return {row[0] for row in rows}


def table_owners(connection: psycopg.Connection) -> dict[str, str]:
    rows = connection.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0]: row[1] for row in rows}
