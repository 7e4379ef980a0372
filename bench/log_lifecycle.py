"""The logs database's lifecycle, measured against its baselines in the same run.

(a) retention: the oldest days of a daily-partitioned system_logs dropped (maintenance's own code)
    against a DELETE of the same rows from the same table unpartitioned, with the VACUUM it needs:
    time, WAL written, disk space returned, and the writers' latency during each;
(b) the admin queries on the two tables that remain (the same rows): p50 and p99;
(c) the writers' latency while an index revision builds on the partitioned table (the project's
    helper: ON ONLY, CONCURRENTLY per partition, ATTACH) against idle and the unpartitioned build;
(d) logs_0004's conversion of the bench deployment's system_logs and llm_logs in place, with
    writers, against one binary COPY of system_logs' rows (the floor of any design that moves rows).

The pair of tables lives beside the tree's tables in the bench's logs database, made as the owner
(so the writer and the reader reach them through the owner's default privileges), and is dropped
at the end. All data is generated here.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from psycopg import sql
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from bench.fixture import LEVELS, MODELS
from bench.pgbench import Latencies, WriterLoad
from bench.stats import percentile
from fixtures.cluster import ProvisionedDatabases
from infra.settings import default_log_lifecycle
from migrations import runner
from migrations.shared import partitions
from migrations.shared.concurrent_index import ConcurrentIndex, create_concurrently
from model.log_lifecycle import Interval
from model.names import DatabaseKey

PARTITIONED, PLAIN = "lifecycle_partitioned", "lifecycle_plain"
LLM_PARTITIONED, LLM_PLAIN = "lifecycle_llm_partitioned", "lifecycle_llm_plain"
INDEXES = {
    "level_created": "(level, created_at DESC)",
    "component_created": "(component, created_at DESC)",
    "errors": "(error_type, created_at) WHERE error_type IS NOT NULL",
}
LLM_INDEX = "(created_at) INCLUDE (model, cost_usd, total_tokens)"
NEW_INDEX = "(request_id) WHERE request_id IS NOT NULL"
LEAD_S, TAIL_S = 3.0, 2.0


@dataclass(frozen=True)
class Sizes:
    rows: int = 10_000_000
    days: int = 60
    dropped_days: int = 30
    llm_rows: int = 1_000_000
    llm_days: int = 90


@dataclass(frozen=True)
class Cleanup:
    """One way of removing the oldest rows, and what it cost."""

    seconds: float
    wal_bytes: int
    bytes_before: int
    bytes_after: int
    writers: Latencies

    @property
    def bytes_returned(self) -> int:
        return self.bytes_before - self.bytes_after


@dataclass(frozen=True)
class QueryLatency:
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Build:
    seconds: float
    writers: Latencies


@dataclass(frozen=True)
class Conversion:
    seconds: float
    floor_seconds: float
    lock_held_ms: float
    rows_before: int
    rows_after: int
    writers: Latencies


def owner_session(provisioned: ProvisionedDatabases) -> psycopg.Connection:
    connection = provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS])
    connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(provisioned.names.owner(DatabaseKey.LOGS))))
    connection.execute("SET TIME ZONE 'UTC'")
    return connection


@contextmanager
def owner_engine_connection(provisioned: ProvisionedDatabases) -> Iterator[Connection]:
    """An autocommit SQLAlchemy connection as the owner: what maintenance and the index helper run on."""
    engine = create_engine(provisioned.server.url(provisioned.databases[DatabaseKey.LOGS]), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
            owner = sql.Identifier(provisioned.names.owner(DatabaseKey.LOGS))
            partitions.run(autocommit, sql.SQL("SET ROLE {}").format(owner).as_string())
            partitions.utc_session(autocommit)
            yield autocommit
    finally:
        engine.dispose()


def build_tables(provisioned: ProvisionedDatabases, sizes: Sizes) -> None:
    """The same generated rows in a daily-partitioned table and a plain one, each with the review's indexes."""
    now = datetime.now(UTC)
    with owner_session(provisioned) as logs:
        drop_tables(logs)
        # With the identity: the writers insert without an id, as the log worker does.
        like = "(LIKE system_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY)"
        logs.execute(f"CREATE TABLE {PLAIN} {like}")
        logs.execute(f"CREATE TABLE {PARTITIONED} {like} PARTITION BY RANGE (created_at)")
        start = Interval.DAY.start_of(now - timedelta(days=sizes.days))
        for statement in partitions.statements(PARTITIONED, Interval.DAY, start, premade_until(now)):
            logs.execute(statement)
        logs.execute(
            f"INSERT INTO {PLAIN} (id, created_at, level, component, message, error_type, request_id) "
            "OVERRIDING SYSTEM VALUE "
            f"SELECT i, now() - (i::float8 / {sizes.rows}) * interval '{sizes.days} days', ({LEVELS})[1 + i % 10], "
            "'component_' || (i % 20), 'event ' || i || ' handled by the worker with a message of realistic length', "
            "CASE WHEN i % 10 = 9 THEN 'Error' || (i % 7) END, md5(i::text) "
            f"FROM generate_series(1, {sizes.rows}) AS i"
        )
        logs.execute(f"INSERT INTO {PARTITIONED} OVERRIDING SYSTEM VALUE SELECT * FROM {PLAIN}")
        for table in (PLAIN, PARTITIONED):
            logs.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {sizes.rows})")
        llm_like = "(LIKE llm_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY)"
        logs.execute(f"CREATE TABLE {LLM_PLAIN} {llm_like}")
        logs.execute(f"CREATE TABLE {LLM_PARTITIONED} {llm_like} PARTITION BY RANGE (created_at)")
        start = Interval.MONTH.start_of(now - timedelta(days=sizes.llm_days))
        for statement in partitions.statements(LLM_PARTITIONED, Interval.MONTH, start, premade_until(now)):
            logs.execute(statement)
        logs.execute(
            f"INSERT INTO {LLM_PLAIN} (id, created_at, component, provider, model, status, prompt_tokens, "
            "completion_tokens, latency_ms, cost_usd, error_type, request_id) OVERRIDING SYSTEM VALUE "
            f"SELECT i, now() - (i::float8 / {sizes.llm_rows}) * interval '{sizes.llm_days} days', "
            f"'feature_' || (i % 5), 'vendor', ({MODELS})[1 + i % 8], 'success', 200 + i % 800, 50 + i % 300, "
            f"100 + i % 2000, (i % 1000) / 100000.0, NULL, md5(i::text) FROM generate_series(1, {sizes.llm_rows}) AS i"
        )
        columns = (
            "id, created_at, request_id, trace_id, component, provider, model, operation, status, prompt_tokens, "
            "completion_tokens, latency_ms, cost_usd, error_type, error_message, user_id, metadata"
        )
        logs.execute(
            f"INSERT INTO {LLM_PARTITIONED} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM {LLM_PLAIN}"
        )
        for table in (PLAIN, PARTITIONED):
            for suffix, definition in INDEXES.items():
                logs.execute(f"CREATE INDEX {table}_{suffix} ON {table} {definition}")
        for table in (LLM_PLAIN, LLM_PARTITIONED):
            logs.execute(f"CREATE INDEX {table}_created ON {table} {LLM_INDEX}")
        logs.execute("RESET ROLE")
        for table in (PLAIN, PARTITIONED, LLM_PLAIN, LLM_PARTITIONED):
            logs.execute(f"VACUUM ANALYZE {table}")
        logs.execute("CHECKPOINT")


def premade_until(now: datetime) -> datetime:
    """As far ahead as a deployment's maintenance makes partitions by default: the empty ones ahead are
    part of what a query without a bound on created_at plans and opens."""
    return now + timedelta(days=default_log_lifecycle().premake_days)


def partition_count(provisioned: ProvisionedDatabases, table: str) -> int:
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        return _scalar(logs, f"SELECT count(*) FROM pg_partition_tree('{table}') WHERE isleaf")


def drop_tables(logs: psycopg.Connection) -> None:
    for table in (PLAIN, PARTITIONED, LLM_PLAIN, LLM_PARTITIONED):
        logs.execute(f"DROP TABLE IF EXISTS {table}")


def writers(provisioned: ProvisionedDatabases, table: str, seconds: float) -> WriterLoad:
    login = provisioned.login_of(provisioned.names.of("logs_writer"))  # the role logs in through its members
    connection = provisioned.server.connection
    database = provisioned.databases[DatabaseKey.LOGS]
    return WriterLoad(
        connection.host, connection.port, database, login, provisioned.passwords[login], seconds, table=table
    )


def _scalar(logs: psycopg.Connection, query: str) -> int:
    row = logs.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def _size(logs: psycopg.Connection, table: str) -> int:
    """Bytes on disk of the table with its indexes (and TOAST), partitions included."""
    partitioned = _scalar(
        logs, f"SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('{table}')"
    )
    return partitioned or _scalar(logs, f"SELECT pg_total_relation_size('{table}')")


def _wal(logs: psycopg.Connection) -> int:
    return _scalar(logs, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")


def measure_cleanup(
    provisioned: ProvisionedDatabases, table: str, seconds: float, remove: Callable[[], None]
) -> Cleanup:
    """Writers on `table` for `seconds`; `remove` runs LEAD_S in. WAL and size around it."""
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        logs.execute("CHECKPOINT")
        with writers(provisioned, table, seconds) as load:
            time.sleep(LEAD_S)
            size_before, wal_before = _size(logs, table), _wal(logs)
            started = time.time()
            remove()
            finished = time.time()
            wal_after, size_after = _wal(logs), _size(logs, table)
    return Cleanup(
        finished - started, wal_after - wal_before, size_before, size_after, load.latencies(started, finished)
    )


def retention(provisioned: ProvisionedDatabases, sizes: Sizes, seconds: float) -> dict[str, Cleanup]:
    cutoff = datetime.now(UTC) - timedelta(days=sizes.days - sizes.dropped_days)

    def drop_partitions() -> None:
        with owner_engine_connection(provisioned) as connection:
            dropped = partitions.drop_older_than(connection, PARTITIONED, cutoff)
        assert len(dropped) >= sizes.dropped_days, dropped

    def delete_and_vacuum() -> None:
        with owner_session(provisioned) as logs:
            logs.execute(f"DELETE FROM {PLAIN} WHERE created_at < %s", (cutoff,))
            logs.execute("RESET ROLE")
            logs.execute(f"VACUUM {PLAIN}")

    return {
        "DROP of whole partitions (DETACH CONCURRENTLY)": measure_cleanup(
            provisioned, PARTITIONED, seconds, drop_partitions
        ),
        "DELETE of the same rows, then VACUUM": measure_cleanup(provisioned, PLAIN, seconds, delete_and_vacuum),
    }


# The admin queries of bench/index_value.py, and time-bounded ones, on either table of a pair.
QUERIES = {
    "recent errors of one type": (
        PLAIN,
        "SELECT id, created_at, component, message FROM {t} "
        "WHERE error_type = 'Error3' ORDER BY created_at DESC LIMIT 50",
    ),
    "recent logs of one component": (
        PLAIN,
        "SELECT id, created_at, level, message FROM {t} "
        "WHERE component = 'component_7' ORDER BY created_at DESC LIMIT 100",
    ),
    "recent logs at one level": (
        PLAIN,
        "SELECT id, created_at, component, message FROM {t} WHERE level = 'WARNING' ORDER BY created_at DESC LIMIT 100",
    ),
    "errors of one type, last hour (time-bounded)": (
        PLAIN,
        "SELECT id, created_at, component, message FROM {t} "
        "WHERE error_type = 'Error3' AND created_at >= now() - interval '1 hour' ORDER BY created_at DESC",
    ),
    "count by level, last day (time-bounded)": (
        PLAIN,
        "SELECT level, count(*) FROM {t} WHERE created_at >= now() - interval '1 day' GROUP BY level",
    ),
    "LLM cost per model per day (7 days, time-bounded)": (
        LLM_PLAIN,
        "SELECT model, date_trunc('day', created_at) AS day, sum(cost_usd), sum(total_tokens) FROM {t} "
        "WHERE created_at >= now() - interval '7 days' GROUP BY 1, 2",
    ),
}
PARTITIONED_OF = {PLAIN: PARTITIONED, LLM_PLAIN: LLM_PARTITIONED}


def queries(provisioned: ProvisionedDatabases, repeats: int) -> dict[str, dict[str, QueryLatency]]:
    """p50 and p99 of each admin query as the reader, on the plain and the partitioned table."""
    measured: dict[str, dict[str, QueryLatency]] = {}
    with provisioned.connect_as(provisioned.names.of("logs_reader"), DatabaseKey.LOGS) as reader:
        for label, (plain, query) in QUERIES.items():
            measured[label] = {}
            for kind, table in (("unpartitioned", plain), ("partitioned", PARTITIONED_OF[plain])):
                text = query.format(t=table)
                reader.execute(text).fetchall()  # warm: plans and cache, not disk reads, are compared
                samples = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    reader.execute(text).fetchall()
                    samples.append((time.perf_counter() - started) * 1000.0)
                samples.sort()
                measured[label][kind] = QueryLatency(percentile(samples, 0.5), percentile(samples, 0.99))
    return measured


def index_builds(provisioned: ProvisionedDatabases, seconds: float) -> dict[str, Build]:
    """An index revision's build with writers on the same table: partitioned, then plain; and idle writers."""

    def build(table: str) -> Callable[[], None]:
        def run() -> None:
            with owner_engine_connection(provisioned) as connection:
                connection.commit()  # Alembic's autocommit block wants no transaction of ours open
                context = MigrationContext.configure(connection)
                with Operations.context(context):
                    create_concurrently((ConcurrentIndex(f"{table}_request_id", table, NEW_INDEX),))

        return run

    results = {
        "idle": Build(0.0, idle(provisioned, PARTITIONED, seconds)),
        "no build, one core kept busy": Build(0.0, one_core_busy(provisioned, PARTITIONED, seconds)),
    }
    for label, table in (("partitioned (per partition)", PARTITIONED), ("unpartitioned (CONCURRENTLY)", PLAIN)):
        with writers(provisioned, table, seconds) as load:
            time.sleep(LEAD_S)
            started = time.time()
            build(table)()
            finished = time.time()
        results[label] = Build(finished - started, load.latencies(started, finished))
    return results


def idle(provisioned: ProvisionedDatabases, table: str, seconds: float) -> Latencies:
    with writers(provisioned, table, seconds) as load:
        pass
    return load.latencies()


def one_core_busy(provisioned: ProvisionedDatabases, table: str, seconds: float) -> Latencies:
    """Writers beside a loop that keeps one core busy and takes no lock: a serial index build's share of
    this 2-core machine (server, writers and pgbench included), so that the build's own cost can be told
    from the CPU it takes away."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with writers(provisioned, table, seconds) as load:
            pass
    finally:
        spin.kill()
        spin.wait()
    return load.latencies()


class _SwapTimes(logging.Handler):
    """The conversion logs how long each table was locked; the benchmark reads it from there."""

    def __init__(self) -> None:
        super().__init__()
        self.held_ms: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        held = getattr(record, "lock_held_ms", None)
        if held is not None:
            self.held_ms.append(float(held))


def conversion(provisioned: ProvisionedDatabases, seconds: float) -> Conversion:
    """logs_0004 on the bench deployment (logs_0003, millions of rows) with writers; then the floor."""
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        rows_before = _scalar(logs, "SELECT count(*) FROM system_logs")
    swaps = _SwapTimes()
    logger = logging.getLogger("migrations.shared.partition_conversion")
    logger.addHandler(swaps)
    logger.setLevel(logging.INFO)
    try:
        with writers(provisioned, "system_logs", seconds) as load:
            time.sleep(LEAD_S)
            started = time.time()
            runner.upgrade(provisioned.migration_target(DatabaseKey.LOGS), "logs_0004")
            finished = time.time()
    finally:
        logger.removeHandler(swaps)
    latencies = load.latencies(started, finished)
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        rows_after = _scalar(logs, "SELECT count(*) FROM system_logs")
        written = len(load.latencies().values_ms)
        floor = copy_floor(logs)
    return Conversion(
        finished - started,
        floor,
        max(swaps.held_ms, default=float("nan")),
        rows_before + written,
        rows_after,
        latencies,
    )


def copy_floor(logs: psycopg.Connection) -> float:
    """One binary COPY of system_logs' rows into a bare table of the same database."""
    logs.execute("CREATE TABLE bench_copy_floor (LIKE system_logs)")
    try:
        started = time.monotonic()
        with (
            logs.cursor().copy("COPY (SELECT * FROM system_logs) TO STDOUT (FORMAT BINARY)") as rows_out,
            psycopg.connect(logs.info.dsn, password=logs.info.password, autocommit=True) as target,
            target.cursor().copy("COPY bench_copy_floor FROM STDIN (FORMAT BINARY)") as rows_in,
        ):
            for data in rows_out:
                rows_in.write(data)
        return time.monotonic() - started
    finally:
        logs.execute("DROP TABLE bench_copy_floor")


GOAL_DROP_FASTER = 10.0
GOAL_LESS_WAL = 100.0
GOAL_BUILD_P99_OVER_IDLE = 2.0


def measure(provisioned: ProvisionedDatabases, sizes: Sizes, repeats: int, writer_s: float = 60.0) -> dict[str, Any]:
    """(a), (b), (c) on a pair of generated tables, then (d) on the deployment's own tables (left at head).

    Writers run `writer_s` around each of (a) and (c), four times that around (d): about 10 minutes
    of writers in all at the default, besides loading the rows.
    """
    print(f"bench: log lifecycle, {sizes.rows:,} rows over {sizes.days} days", file=sys.stderr, flush=True)
    build_tables(provisioned, sizes)
    try:
        cleanup = retention(provisioned, sizes, seconds=writer_s)
        queried = {table: partition_count(provisioned, table) for table in (PARTITIONED, LLM_PARTITIONED)}
        latency = queries(provisioned, repeats)
        builds = index_builds(provisioned, seconds=writer_s)
    finally:
        with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
            drop_tables(logs)
    converted = conversion(provisioned, seconds=4 * writer_s)  # longer than the conversion of 3M + 1M rows takes
    return {"sizes": asdict(sizes), "queried_partitions": queried, **report(cleanup, latency, builds, converted)}


def report(
    cleanup: dict[str, Cleanup],
    latency: dict[str, dict[str, QueryLatency]],
    builds: dict[str, Build],
    converted: Conversion,
) -> dict[str, Any]:
    drop, delete = cleanup.values()
    retention_rows = [
        (
            label,
            f"{run.seconds:.2f} s",
            f"{run.wal_bytes / 1e6:,.1f} MB",
            f"{run.bytes_returned / 1e6:,.0f} MB of {run.bytes_before / 1e6:,.0f} MB",
            f"{run.writers.p99:.2f} ms",
            str(run.writers.over_one_second),
        )
        for label, run in cleanup.items()
    ]
    query_rows = [
        (
            label,
            f"{by_kind['unpartitioned'].p50_ms:.2f} / {by_kind['unpartitioned'].p99_ms:.2f} ms",
            f"{by_kind['partitioned'].p50_ms:.2f} / {by_kind['partitioned'].p99_ms:.2f} ms",
            f"{by_kind['unpartitioned'].p50_ms / by_kind['partitioned'].p50_ms:.2f}x",
        )
        for label, by_kind in latency.items()
    ]
    idle_p99 = builds["idle"].writers.p99
    build_rows = [
        (
            label,
            f"{run.seconds:.1f} s" if run.seconds else "-",
            f"{run.writers.p50:.2f} ms",
            f"{run.writers.p99:.2f} ms",
            f"{run.writers.max:.0f} ms",
            str(run.writers.over_one_second),
            f"{run.writers.p99 / idle_p99:.2f}x",
        )
        for label, run in builds.items()
    ]
    partitioned_build = builds["partitioned (per partition)"].writers
    goals = {
        "drop_faster": delete.seconds / drop.seconds,
        "less_wal": delete.wal_bytes / max(drop.wal_bytes, 1),
        "drop_returns_space": drop.bytes_returned > 0,
        "no_query_slower": all(k["partitioned"].p50_ms <= k["unpartitioned"].p50_ms * 1.1 for k in latency.values()),
        "build_p99_over_idle": partitioned_build.p99 / idle_p99,
        "build_p99_over_one_core_busy": partitioned_build.p99 / builds["no build, one core kept busy"].writers.p99,
        "build_inserts_over_1s": partitioned_build.over_one_second,
        "conversion_over_floor": converted.seconds / converted.floor_seconds,
        "conversion_lock_ms": converted.lock_held_ms,
        "conversion_inserts_over_1s": converted.writers.over_one_second,
        "conversion_rows_kept": converted.rows_after == converted.rows_before,
    }
    conversion_rows = [
        ("binary COPY of system_logs' rows (the floor)", f"{converted.floor_seconds:.1f} s", "1.00x", "-", "-", "-"),
        (
            "logs_0004 in place (both tables, writers on)",
            f"{converted.seconds:.1f} s",
            f"{converted.seconds / converted.floor_seconds:.2f}x",
            f"{converted.lock_held_ms:.0f} ms",
            str(converted.writers.over_one_second),
            f"{converted.rows_after:,} of {converted.rows_before:,}",
        ),
    ]
    return {
        "retention_rows": retention_rows,
        "query_rows": query_rows,
        "build_rows": build_rows,
        "conversion_rows": conversion_rows,
        "goals": goals,
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.log_lifecycle [--quick]`: these measurements alone (scripts/bench runs them too);
    a full run renders README's lifecycle table, a quick one only prints."""
    import json

    from bench import fixture, run
    from ops import paths

    quick = fixture.quick_asked(argv)
    with fixture.loaded(quick) as provisioned:
        runner.upgrade(provisioned.migration_target(DatabaseKey.LOGS), "logs_0003")
        # Quick: enough rows for every day's partition, writers just past LEAD_S (the suite's check, seconds).
        sizes = Sizes(30_000, llm_rows=5_000) if quick else Sizes()
        results = measure(provisioned, sizes, 5 if quick else 200, LEAD_S + 1.0 if quick else 60.0)
    results["date"] = time.strftime("%Y-%m-%d")
    reports = paths.REPO_ROOT / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "bench-lifecycle.json").write_text(json.dumps(results, indent=2, default=str))
    text = run.lifecycle_markdown(results, results["date"])
    if not quick:
        run.update_readme(text, run.LIFECYCLE_BEGIN, run.LIFECYCLE_END)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
