"""Catalog queries the migration tests assert on."""

from __future__ import annotations

import psycopg

from migrations.schema import head_schema
from migrations.shared.heads import copy_location
from migrations.shared.tree import TREES

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


def misplaced_tables(connection: psycopg.Connection, tree_key: str) -> set[str]:
    """The tables of a database that its tree at head does not make (the placement check names them)."""
    tree = TREES[tree_key]
    return tables(connection) - head_schema(tree, copy_location(tree_key)).tables - {tree.version_table}


def relations_of(connection: psycopg.Connection, tables: set[str]) -> set[str]:
    """The tables, their partitions and the sequences they own."""
    rows = connection.execute(
        "SELECT unnest(%s::text[]) "  # pg_partition_tree() of a table that is not partitioned is empty
        "UNION SELECT p.relid::regclass::text FROM unnest(%s::text[]) AS t(name), "
        "pg_partition_tree(t.name::regclass) p "
        "UNION SELECT s.relname FROM pg_class s JOIN pg_depend d ON d.classid = 'pg_class'::regclass "
        "AND d.objid = s.oid AND d.deptype IN ('a', 'i') JOIN pg_class t ON t.oid = d.refobjid "
        "WHERE s.relkind = 'S' AND t.relname = ANY(%s)",
        (sorted(tables), sorted(tables), sorted(tables)),
    ).fetchall()
    return {row[0] for row in rows}
