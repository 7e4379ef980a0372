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

Offline (`--sql`) each statement can run again, after a full run or one cut short. A build whose table
has since become partitioned (logs_0004 converts the log tables) would be refused by PostgreSQL
(CONCURRENTLY on a partitioned table) although its index is there: that build goes to an empty
temporary stand-in of the table, which the session finds first and which is dropped right after
(rerunnable_build).

This module imports neither env.py's environment nor model/: revisions use it, and an applied
revision must not change with the live code around it. The lock_timeout a build puts back is the one
the run set: read from the session online, handed in by offline.py offline (SESSION_LOCK_TIMEOUT).
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass

from alembic import op
from psycopg import sql
from sqlalchemy import text

from migrations.shared import partitions

SESSION_LOCK_TIMEOUT = "headhunter_session_lock_timeout"
"""The option of Alembic's context (context.configure) by which offline.py says what lock_timeout its
script sets: a concurrent step that lifts it puts that value back."""


@dataclass(frozen=True)
class ConcurrentIndex:
    name: str
    table: str
    definition: str
    """What follows `ON <table>`: the column list and any INCLUDE or WHERE clause."""


def session_lock_timeout() -> str:
    """The lock_timeout in force for the run, to put back after a step that lifts it."""
    context = op.get_context()
    if context.as_sql:
        timeout = context.opts.get(SESSION_LOCK_TIMEOUT)
        if not isinstance(timeout, str):
            raise RuntimeError(
                f"offline, Alembic's context has no {SESSION_LOCK_TIMEOUT!r} option: render through the tree's "
                "env.py (migrations.shared.offline sets it)"
            )
        return timeout
    return str(op.get_bind().execute(text("SELECT current_setting('lock_timeout')")).scalar_one())


def set_lock_timeout(value: str) -> str:
    return sql.SQL("SET lock_timeout = {}").format(sql.Literal(value)).as_string()


def create_concurrently(indexes: tuple[ConcurrentIndex, ...]) -> None:
    if op.get_context().as_sql:
        with op.get_context().autocommit_block():
            for statement in _offline_statements(indexes, session_lock_timeout()):
                op.execute(statement)
        return
    with op.get_context().autocommit_block():
        # Read inside the block: a query before it would open a transaction the block then has to end.
        restored = session_lock_timeout()
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
        op.execute(set_lock_timeout(restored))
        op.execute("RESET max_parallel_maintenance_workers")


def _offline_statements(indexes: tuple[ConcurrentIndex, ...], lock_timeout: str) -> list[str]:
    """The builds for the reviewer's script, a table's indexes together."""
    made = ["SET max_parallel_maintenance_workers = 0"]
    for table, on_table in itertools.groupby(indexes, key=lambda index: index.table):
        # The definition is the revision's own SQL text (columns, INCLUDE, WHERE), never user input.
        builds = [(index.name, _create_sql(index.name, table) + index.definition) for index in on_table]
        made += rerunnable_build(table, builds, lock_timeout)
    return [*made, "RESET max_parallel_maintenance_workers"]


def _create_sql(name: str, table: str, unique: bool = False) -> str:
    """`CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS name ON table `, the definition to follow."""
    create = sql.SQL("CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ")
    return create.format(sql.SQL("UNIQUE " if unique else ""), sql.Identifier(name), sql.Identifier(table)).as_string()


def rerunnable_build(table: str, builds: list[tuple[str, str]], lock_timeout: str) -> list[str]:
    """Offline: the (index name, CREATE INDEX CONCURRENTLY IF NOT EXISTS ...) builds on `table`, each
    statement safe to run again.

    Once `table` is partitioned, PostgreSQL refuses CONCURRENTLY on it even when the index exists: then
    each index must be there already (else the script stops, naming the online run that builds it), and
    the builds go to an empty temporary table of the same name, which the session finds first and which
    is dropped right after. The stand-in is made and dropped under the run's lock_timeout, the builds
    under none (they wait for older transactions, which blocks no writer).
    """
    return [
        _stand_in(table, [name for name, _ in builds]),
        set_lock_timeout("0"),
        *itertools.chain.from_iterable((_invalid_check(name), create) for name, create in builds),
        set_lock_timeout(lock_timeout),
        _drop_stand_in(table),
    ]


def _stand_in(table: str, indexes: list[str]) -> str:
    missing = sql.SQL(" ").join(
        sql.SQL("IF to_regclass({index}) IS NULL THEN RAISE EXCEPTION {message}; END IF;").format(
            index=sql.Literal(f"public.{index}"),
            message=sql.Literal(
                f"{table} is partitioned and has no index {index}: this script cannot build it CONCURRENTLY; "
                "run the tree online (scripts/migrate STACK logs upgrade), which builds it partition by partition"
            ),
        )
        for index in indexes
    )
    create = sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {})").format(
        sql.Identifier(table), sql.Identifier("public", table)
    )
    return (
        sql.SQL(
            "DO $stand_in$ BEGIN IF (SELECT relkind FROM pg_class WHERE oid = to_regclass({relation})) = 'p' THEN "
            "{missing} EXECUTE {create}; END IF; END $stand_in$"
        )
        .format(relation=sql.Literal(f"public.{table}"), missing=missing, create=sql.Literal(create.as_string()))
        .as_string()
    )


def _drop_stand_in(table: str) -> str:
    drop = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("pg_temp", table)).as_string()
    return sql.SQL("DO $stand_in$ BEGIN EXECUTE {}; END $stand_in$").format(sql.Literal(drop)).as_string()


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
    restored = session_lock_timeout()
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
            op.execute(set_lock_timeout(restored))


def _invalid_check(name: str) -> str:
    """Offline: no catalog to read while rendering; the reviewer's script stops when the index is INVALID."""
    check = sql.SQL(
        "DO $drop$ BEGIN IF EXISTS (SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = {name} AND NOT i.indisvalid) THEN RAISE EXCEPTION {message}; END IF; END $drop$"
    )
    message = f"index {name} is INVALID: DROP INDEX CONCURRENTLY {name}, then run again"
    return check.format(name=sql.Literal(name), message=sql.Literal(message)).as_string()


def drop_if_invalid(name: str) -> None:
    if op.get_context().as_sql:
        op.execute(_invalid_check(name))
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
