"""CREATE INDEX CONCURRENTLY for tables that may already hold rows and have live writers.

A plain CREATE INDEX takes a lock that blocks every INSERT for the whole build; CONCURRENTLY does
not, but cannot run in a transaction, so it runs in Alembic's autocommit_block. A concurrent build
that failed leaves an INVALID index behind, which `IF NOT EXISTS` would then silently accept
(squawk#1230): an invalid index of the same name is dropped first, so a re-run builds it properly.

PostgreSQL refuses CONCURRENTLY on a partitioned table (the log tables, since logs_0004), so there
the index is made ON ONLY the parent (invalid, and instant), built CONCURRENTLY on each partition,
and each partition's index ATTACHed: the parent's index is valid once every partition's is. A
partition made later gets the index from the parent at ATTACH time (it is empty then). Dropping one
is a plain DROP of the parent's index under a short lock_timeout: PostgreSQL drops neither it nor a
partition's index CONCURRENTLY.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from alembic import op
from psycopg import sql
from sqlalchemy import text

from migrations.shared import partitions
from migrations.shared.environment import LOCK_TIMEOUT


@dataclass(frozen=True)
class ConcurrentIndex:
    name: str
    table: str
    definition: str
    """What follows `ON <table>`: the column list and any INCLUDE or WHERE clause."""


def create_concurrently(indexes: tuple[ConcurrentIndex, ...]) -> None:
    with op.get_context().autocommit_block():
        # One build process, no parallel workers: slower to finish, but it leaves the other cores
        # to the live writers, whose latency is what a log pipeline notices (see scripts/bench).
        op.execute("SET max_parallel_maintenance_workers = 0")
        # A concurrent build waits, through the lock manager, for every transaction that might use
        # the table; the migration's short lock_timeout would cancel it behind any slow report or
        # open writer. It blocks no one while it waits, so it may wait as long as it needs.
        op.execute("SET lock_timeout = 0")
        for index in indexes:
            if _partitions_of(index.table) is not None:
                _create_on_partitions(index)
                continue
            drop_if_invalid(index.name)
            # The definition is the revision's own SQL text (columns, INCLUDE, WHERE), never user input.
            create = sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ").format(
                sql.Identifier(index.name), sql.Identifier(index.table)
            )
            op.execute(create.as_string() + index.definition)
        op.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)).as_string())
        op.execute("RESET max_parallel_maintenance_workers")


def _partitions_of(table: str) -> list[str] | None:
    """The partitions of a partitioned table; None for a plain one (or offline, where no catalog is read)."""
    if op.get_context().as_sql:
        return None
    bind = op.get_bind()
    kind = bind.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": f"public.{table}"})
    if kind.scalar() != "p":
        return None
    rows = bind.execute(
        text("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = to_regclass(:t) ORDER BY 1"),
        {"t": f"public.{table}"},
    )
    return [row[0] for row in rows]


def _create_on_partitions(index: ConcurrentIndex) -> None:
    """ON ONLY the parent, CONCURRENTLY on each partition, then ATTACH; a rerun picks up where a kill left it."""
    parent = sql.SQL("CREATE INDEX IF NOT EXISTS {} ON ONLY {} ").format(
        sql.Identifier(index.name), sql.Identifier(index.table)
    )
    op.execute(parent.as_string() + index.definition)
    for partition in _partitions_of(index.table) or []:
        child = _partition_index_name(partition, index.name)
        drop_if_invalid(child)
        build = sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ").format(
            sql.Identifier(child), sql.Identifier(partition)
        )
        op.execute(build.as_string() + index.definition)
        op.execute(
            sql.SQL(
                "DO $attach$ BEGIN IF NOT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = to_regclass({child})) "
                "THEN ALTER INDEX {parent} ATTACH PARTITION {child_name}; END IF; END $attach$"
            )
            .format(
                child=sql.Literal(f"public.{child}"),
                parent=sql.Identifier(index.name),
                child_name=sql.Identifier(child),
            )
            .as_string()
        )
    valid = op.get_bind().execute(
        text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": f"public.{index.name}"}
    )
    if valid.scalar() is not True:
        raise RuntimeError(f"index {index.name} on {index.table} is not valid after its partitions' builds: run again")


def _partition_index_name(partition: str, index: str) -> str:
    """`<partition>_<index>`, or, past PostgreSQL's 63 bytes, `<partition>_<hash of the index name>`:
    cutting either name short could give two partitions, or two indexes, the same name."""
    name = f"{partition}_{index}"
    return name if len(name) <= 63 else f"{partition[:54]}_{zlib.crc32(index.encode()):08x}"


def drop_concurrently(indexes: tuple[ConcurrentIndex, ...]) -> None:
    with op.get_context().autocommit_block():
        for index in reversed(indexes):
            if _partitions_of(index.table) is None:
                op.execute(_drop(index.name))
                continue
            # PostgreSQL refuses DROP INDEX CONCURRENTLY on a partitioned index, and the partitions'
            # indexes cannot be dropped alone: one plain DROP of the parent's, which only edits the
            # catalog, under a short lock_timeout and retried, so an INSERT waits a moment at most.
            drop = sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(index.name)).as_string()
            partitions.with_lock_retries(op.get_bind(), drop)
            op.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)).as_string())


def drop_if_invalid(name: str) -> None:
    if op.get_context().as_sql:
        # Offline (--sql): no catalog to read; the reviewer's script drops it only when invalid.
        check = sql.SQL(
            "DO $drop$ BEGIN IF EXISTS (SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = {name} AND NOT i.indisvalid) THEN RAISE EXCEPTION {message}; END IF; END $drop$"
        ).format(
            name=sql.Literal(name),
            message=sql.Literal(f"index {name} is INVALID: DROP INDEX CONCURRENTLY {name}, then run again"),
        )
        op.execute(check.as_string())
        return
    invalid = (
        op.get_bind()
        .execute(
            text(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name AND c.relnamespace = 'public'::regnamespace"
            ),
            {"name": name},
        )
        .scalar()
    )
    if invalid:
        op.execute(_drop(name))


def _drop(name: str) -> str:
    return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)).as_string()
