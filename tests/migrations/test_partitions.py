"""The log tables partitioned by time (logs_0004), against real databases: the conversion in place under a
live writer, privileges on present and future partitions, runs killed half-way, retention by dropping
whole partitions, rows past every partition, and the offline script."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from fixtures import catalog
from fixtures.cluster import ProvisionedDatabases, scalar
from fixtures.fault_log import SeenFunction
from migrations import runner
from migrations.shared import partition_conversion, partitions
from model.log_lifecycle import Interval
from model.names import DatabaseKey
from ops.localpg import embedded
from ops.localpg.embedded import client_bin_dir, find_bin_dir

LOGS = DatabaseKey.LOGS
LOG_TABLES = ("system_logs", "llm_logs")
SEED_SYSTEM_LOGS = 50_000
SEED_LLM_LOGS = 2_000
SEED_DAYS = 60

SEED_SYSTEM_LOGS_SQL = """
INSERT INTO system_logs (created_at, level, component, message, error_type, request_id, metadata)
SELECT now() - make_interval(secs => g * %(days)s * 86400.0 / %(rows)s),
       (ARRAY['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'])[1 + g %% 5], 'seed-' || g %% 7, 'seeded ' || g,
       CASE WHEN g %% 5 = 3 THEN 'ValueError' END, CASE WHEN g %% 3 = 0 THEN 'req-' || g END,
       jsonb_build_object('n', g)
FROM generate_series(1, %(rows)s) AS g
"""
SEED_LLM_LOGS_SQL = """
INSERT INTO llm_logs (created_at, component, provider, model, status, error_type, prompt_tokens, completion_tokens,
                      latency_ms, cost_usd, request_id)
SELECT now() - make_interval(secs => g * %(days)s * 86400.0 / %(rows)s), 'seed', 'openai', 'gpt-' || g %% 3,
       CASE WHEN g %% 10 = 0 THEN 'error' ELSE 'success' END, CASE WHEN g %% 10 = 0 THEN 'Timeout' END,
       g %% 500, g %% 100, g %% 3000, (g %% 100) / 1000.0, 'seed ' || g
FROM generate_series(1, %(rows)s) AS g
"""
# Without RETURNING: the writer has INSERT and nothing else.
INSERT_SYSTEM_LOG = "INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'live-writer', %s)"
INSERT_LLM_LOG = (
    "INSERT INTO llm_logs (component, provider, model, status, latency_ms, request_id) "
    "VALUES ('live-writer', 'openai', 'gpt-x', 'success', 5, %s)"
)
INSERT_DATED_SYSTEM_LOG = (
    "INSERT INTO system_logs (created_at, level, component, message) VALUES (%s, 'INFO', 'dated', %s)"
)
NON_KEY_INDEXES = (
    "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary"
)
PARTITION_BOUNDS = (
    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = %s::regclass"
)
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def midnight(days: int = 0) -> datetime:
    """The start of the UTC day `days` after today."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=days)


def daily(moment: datetime) -> str:
    return f"system_logs_p{moment:%Y%m%d}"


def bound(lower: datetime | None, upper: datetime) -> str:
    """A range partition's bound as pg_get_expr prints it in a UTC session."""

    def literal(moment: datetime | None) -> str:
        return "MINVALUE" if moment is None else f"'{moment:%Y-%m-%d %H:%M:%S}+00'"

    return f"FOR VALUES FROM ({literal(lower)}) TO ({literal(upper)})"


@contextmanager
def admin(provisioned: ProvisionedDatabases) -> Iterator[psycopg.Connection]:
    """The superuser on the logs database, in UTC (bounds and rows print alike in every test)."""
    with provisioned.server.connect(provisioned.databases[LOGS]) as connection:
        connection.execute("SET TIME ZONE 'UTC'")
        yield connection


@contextmanager
def as_owner(provisioned: ProvisionedDatabases) -> Iterator[Connection]:
    """What maintenance uses: the migrator acting as the owner, in autocommit (DETACH CONCURRENTLY needs it)."""
    engine = create_engine(provisioned.migrator_url(LOGS), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
            owner = sql.Identifier(provisioned.names.owner(LOGS)).as_string()
            autocommit.execute(text(f"SET ROLE {owner}"))
            partitions.utc_session(autocommit)
            yield autocommit
    finally:
        engine.dispose()


def writer(provisioned: ProvisionedDatabases) -> psycopg.Connection:
    return provisioned.connect_as(provisioned.names.of("logs_writer"), LOGS)


def bounds(connection: psycopg.Connection, table: str) -> dict[str, str]:
    return {name: expr for name, expr in connection.execute(PARTITION_BOUNDS, (table,)).fetchall()}


def content(connection: psycopg.Connection, relation: str, where: str) -> tuple[object, ...]:
    """The rows' count and an md5 of every column of every row, in order: one row lost, doubled or changed shows."""
    query = sql.SQL(
        "SELECT count(*), md5(string_agg(t::text, E'\\n' ORDER BY t.id, t.created_at)) FROM {} t WHERE {}"
    ).format(sql.Identifier(relation), sql.SQL(where))  # the tests' own constants
    row = connection.execute(query).fetchone()
    assert row is not None
    return tuple(row)


def seed(provisioned: ProvisionedDatabases, system_logs: int = SEED_SYSTEM_LOGS, llm_logs: int = SEED_LLM_LOGS) -> None:
    with admin(provisioned) as connection:
        connection.execute(SEED_SYSTEM_LOGS_SQL, {"rows": system_logs, "days": SEED_DAYS})
        connection.execute(SEED_LLM_LOGS_SQL, {"rows": llm_logs, "days": SEED_DAYS})


SEEDED = {"system_logs": "component LIKE 'seed-%'", "llm_logs": "component = 'seed'"}


class Writer(threading.Thread):
    """The logs writer role appending to both tables, one autocommit INSERT at a time, each one timed."""

    def __init__(self, provisioned: ProvisionedDatabases) -> None:
        super().__init__(daemon=True)
        self.provisioned = provisioned
        self.written: list[str] = []
        """The marker of each pair of rows written (system_logs.message, llm_logs.request_id), in order."""
        self.failures: list[Exception] = []
        self.slowest_s = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        with writer(self.provisioned) as connection:
            while not self.done.is_set():
                marker = f"live {len(self.written)}"
                try:
                    for statement in (INSERT_SYSTEM_LOG, INSERT_LLM_LOG):
                        started = time.monotonic()
                        connection.execute(statement, (marker,))
                        self.slowest_s = max(self.slowest_s, time.monotonic() - started)
                except psycopg.Error as error:
                    self.failures.append(error)
                    return
                self.written.append(marker)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 30
        while len(self.written) < count and not self.failures:
            assert time.monotonic() < deadline, f"the writer wrote {len(self.written)} pairs of rows, not {count}"
            time.sleep(0.01)


@dataclass
class Conversion:
    provisioned: ProvisionedDatabases
    seeded: dict[str, tuple[object, ...]]
    """Per table: count and md5 of the rows there before the conversion."""
    seeded_max_id: dict[str, int]
    indexes_before: dict[str, dict[str, str]]
    writer: Writer
    written_before_upgrade: int = 0
    written_after_upgrade: int = 0


@pytest.fixture
def converted_under_writer(provisioned: ProvisionedDatabases, logs_target: runner.Target) -> Conversion:
    """logs_0003 with 50,000 system_logs rows over 60 days and 2,000 llm_logs rows, converted while the writer
    appends to both tables from before the upgrade starts until after it ends."""
    runner.upgrade(logs_target, "logs_0003")
    seed(provisioned)
    with admin(provisioned) as connection:
        seeded = {table: content(connection, table, SEEDED[table]) for table in LOG_TABLES}
        max_ids = {table: int(str(scalar(connection, f"SELECT max(id) FROM {table}"))) for table in LOG_TABLES}
        indexes = {table: dict(connection.execute(NON_KEY_INDEXES, (table,)).fetchall()) for table in LOG_TABLES}
    live = Writer(provisioned)
    conversion = Conversion(provisioned, seeded, max_ids, indexes, live)
    live.start()
    try:
        live.wait_for(20)
        conversion.written_before_upgrade = len(live.written)
        runner.upgrade(logs_target)
        conversion.written_after_upgrade = len(live.written)
        live.wait_for(len(live.written) + 20)
    finally:
        live.done.set()
        live.join(timeout=30)
    return conversion


def test_rows_written_before_and_during_the_conversion_are_each_there_once(
    converted_under_writer: Conversion,
) -> None:
    conversion = converted_under_writer
    with admin(conversion.provisioned) as connection:
        for table in LOG_TABLES:
            assert content(connection, table, SEEDED[table]) == conversion.seeded[table], table
        messages = connection.execute("SELECT message FROM system_logs WHERE component = 'live-writer'").fetchall()
        requests = connection.execute("SELECT request_id FROM llm_logs WHERE component = 'live-writer'").fetchall()
    expected = Counter(conversion.writer.written)
    assert Counter(row[0] for row in messages) == expected
    assert Counter(row[0] for row in requests) == expected


def test_the_writer_saw_no_failed_insert_and_none_over_a_second(converted_under_writer: Conversion) -> None:
    live = converted_under_writer.writer
    assert live.failures == []
    assert live.slowest_s < 1.0, f"an INSERT took {live.slowest_s:.3f} s"
    conversion = converted_under_writer
    assert conversion.written_after_upgrade > conversion.written_before_upgrade, "the writer wrote during the upgrade"


def test_ids_go_on_above_every_id_handed_out_before_the_conversion(converted_under_writer: Conversion) -> None:
    """The writer's rows, in the order it wrote them (before, during and after the swap), have rising ids."""
    conversion = converted_under_writer
    with admin(conversion.provisioned) as connection:
        for table, marker in (("system_logs", "message"), ("llm_logs", "request_id")):
            rows = connection.execute(
                sql.SQL("SELECT {}, id FROM {} WHERE component = 'live-writer'").format(
                    sql.Identifier(marker), sql.Identifier(table)
                )
            ).fetchall()
            id_of = dict(rows)
            ids = [id_of[written] for written in conversion.writer.written]
            assert ids == sorted(set(ids)), f"{table}: ids out of order or repeated"
            assert ids[0] > conversion.seeded_max_id[table], table
            last = scalar(connection, sql.SQL("SELECT max(id) FROM {}").format(sql.Identifier(table)).as_string())
            assert last == ids[-1], f"{table}: the last row written has the highest id"


def test_the_old_table_becomes_the_before_partition_of_a_partitioned_table(converted_under_writer: Conversion) -> None:
    conversion = converted_under_writer
    with admin(conversion.provisioned) as connection:
        for table in LOG_TABLES:
            assert scalar(connection, "SELECT relkind FROM pg_class WHERE oid = %s::regclass", (table,)) == "p"
            before = f"{table}_p_before"
            assert bounds(connection, table)[before].startswith("FOR VALUES FROM (MINVALUE) TO (")
            assert content(connection, before, SEEDED[table]) == conversion.seeded[table], table


def test_the_parent_has_the_old_tables_indexes_by_name_made_on_only(converted_under_writer: Conversion) -> None:
    conversion = converted_under_writer
    with admin(conversion.provisioned) as connection:
        for table in LOG_TABLES:
            after = dict(connection.execute(NON_KEY_INDEXES, (table,)).fetchall())
            on, on_only = f" ON public.{table} USING ", f" ON ONLY public.{table} USING "
            assert after == {
                name: definition.replace(on, on_only) for name, definition in conversion.indexes_before[table].items()
            }
            assert len(after) == 4, table
        assert catalog.invalid_indexes(connection) == set()


def test_the_primary_key_becomes_id_and_created_at(converted_under_writer: Conversion) -> None:
    with admin(converted_under_writer.provisioned) as connection:
        for table in LOG_TABLES:
            key = scalar(
                connection,
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
                (table,),
            )
            assert key == "PRIMARY KEY (id, created_at)", table


def test_a_row_dated_past_the_boundary_moves_the_boundary_past_its_day(
    provisioned: ProvisionedDatabases, logs_target: runner.Target
) -> None:
    runner.upgrade(logs_target, "logs_0003")
    with admin(provisioned) as connection:
        connection.execute(INSERT_DATED_SYSTEM_LOG, (midnight(4) + timedelta(hours=10), "early clock"))
    runner.upgrade(logs_target)
    with admin(provisioned) as connection:
        assert bounds(connection, "system_logs")["system_logs_p_before"] == bound(None, midnight(5))
        where = scalar(connection, "SELECT tableoid::regclass::text FROM system_logs WHERE message = 'early clock'")
        assert where == "system_logs_p_before"


# Privileges on the partitions, present and future.


def test_the_owner_owns_every_partition(migrated: ProvisionedDatabases) -> None:
    with admin(migrated) as connection:
        owners = connection.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent IN ('system_logs'::regclass, 'llm_logs'::regclass)"
        ).fetchall()
    assert len(owners) > 2
    assert {owner for _, owner in owners} == {migrated.names.owner(LOGS)}, owners


def test_the_writer_inserts_through_the_parent_into_the_partition_of_the_rows_time(
    migrated: ProvisionedDatabases,
) -> None:
    later = midnight(3) + timedelta(hours=7)
    with writer(migrated) as connection:
        connection.execute(INSERT_DATED_SYSTEM_LOG, (datetime.now(UTC), "now"))
        connection.execute(INSERT_DATED_SYSTEM_LOG, (later, "in three days"))
    with admin(migrated) as connection:
        rows = connection.execute("SELECT message, tableoid::regclass::text FROM system_logs").fetchall()
    assert dict(rows) == {"now": "system_logs_p_before", "in three days": daily(later)}


@pytest.mark.parametrize("relation", ["system_logs", "system_logs_p_before", "llm_logs"])
def test_the_writer_cannot_read_the_table_or_its_partitions(migrated: ProvisionedDatabases, relation: str) -> None:
    with writer(migrated) as connection, pytest.raises(psycopg.errors.InsufficientPrivilege) as denied:
        connection.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(relation)))
    assert denied.value.sqlstate == "42501"


def test_the_reader_reads_the_rows_of_every_partition(migrated: ProvisionedDatabases) -> None:
    with writer(migrated) as connection:
        connection.execute(INSERT_DATED_SYSTEM_LOG, (datetime.now(UTC), "now"))
        connection.execute(INSERT_DATED_SYSTEM_LOG, (midnight(9), "later"))
    with migrated.connect_as(migrated.names.of("logs_reader"), LOGS) as reader:
        rows = reader.execute("SELECT message FROM system_logs ORDER BY created_at").fetchall()
    assert rows == [("now",), ("later",)]


def privileges(connection: psycopg.Connection, provisioned: ProvisionedDatabases, relation: str) -> dict[str, set[str]]:
    """Per runtime role, the privileges it holds on `relation`, as has_table_privilege answers."""
    held: dict[str, set[str]] = {}
    for key in ("logs_writer", "logs_reader"):
        role = provisioned.names.of(key)
        held[key] = {
            privilege
            for privilege in TABLE_PRIVILEGES
            if scalar(connection, "SELECT has_table_privilege(%s, %s, %s)", (role, relation, privilege))
        }
    return held


def test_a_partition_made_later_has_the_parents_privileges_with_no_grant_of_ours(
    migrated: ProvisionedDatabases,
) -> None:
    with as_owner(migrated) as owner:
        made = partitions.create_through(owner, "system_logs", Interval.DAY, midnight(30))
    assert daily(midnight(30)) in made
    with admin(migrated) as connection:
        parent = privileges(connection, migrated, "system_logs")
        assert parent == {"logs_writer": {"INSERT"}, "logs_reader": {"SELECT"}}
        for name in made:
            assert privileges(connection, migrated, name) == parent, name


# Runs killed half-way, and the next run.


def test_a_run_killed_after_its_bound_check_reuses_that_boundary_and_rebuilds_the_invalid_key(
    provisioned: ProvisionedDatabases, logs_target: runner.Target
) -> None:
    """What a killed run leaves: the key's build INVALID, the CHECK added NOT VALID with the boundary it chose."""
    runner.upgrade(logs_target, "logs_0003")
    seed(provisioned, system_logs=500, llm_logs=10)
    chosen = midnight(5)  # not the boundary a run of today would choose (the day after tomorrow)
    with admin(provisioned) as connection:
        seeded = content(connection, "system_logs", "true")
        connection.execute("CREATE UNIQUE INDEX system_logs_p_before_pkey ON system_logs (id, created_at)")
        connection.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'system_logs_p_before_pkey'::regclass"
        )
        connection.execute(
            sql.SQL(
                "ALTER TABLE system_logs ADD CONSTRAINT system_logs_p_before_bound CHECK (created_at < {}) NOT VALID"
            ).format(sql.Literal(chosen))
        )
        assert catalog.invalid_indexes(connection) == {"system_logs_p_before_pkey"}

    assert runner.upgrade(logs_target, "logs_0004").applied == ("logs_0004",)

    with admin(provisioned) as connection:
        found = bounds(connection, "system_logs")
        assert found["system_logs_p_before"] == bound(None, chosen)
        assert found[daily(chosen)] == bound(chosen, midnight(6))
        assert catalog.invalid_indexes(connection) == set()
        assert content(connection, "system_logs_p_before", "true") == seeded


def terminate_when_waiting(provisioned: ProvisionedDatabases) -> None:
    """Ends the migrator's session once it waits on a lock: the run dies where it stands."""
    migrator = provisioned.names.migrator(LOGS)
    deadline = time.monotonic() + 60
    with provisioned.server.connect() as connection:
        while (
            pid := scalar(
                connection,
                "SELECT max(pid) FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'",
                (migrator,),
            )
        ) is None:
            assert time.monotonic() < deadline, "the run never waited"
            time.sleep(0.05)
        connection.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


@dataclass(frozen=True)
class KilledRun:
    target: runner.Target
    raised: list[BaseException]
    seeded: tuple[object, ...]
    """Count and md5 of system_logs' rows when the run was killed."""


def upgrade_in_background(target: runner.Target) -> tuple[threading.Thread, list[BaseException]]:
    """The tree's upgrade in a thread of its own, started; what it raises is collected."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            runner.upgrade(target)
        except BaseException as error:  # what the run raised is the test's subject
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, raised


@pytest.fixture
def killed_while_building_the_key(provisioned: ProvisionedDatabases, logs_target: runner.Target) -> KilledRun:
    """A run whose session is ended while its concurrent build of the new key waits for an open writer."""
    runner.upgrade(logs_target, "logs_0003")
    seed(provisioned, system_logs=500, llm_logs=10)
    open_writer = provisioned.connect_as(provisioned.names.of("logs_writer"), LOGS, autocommit=False)
    open_writer.execute(INSERT_SYSTEM_LOG, ("open while the key builds",))
    killed, raised = upgrade_in_background(logs_target)
    try:
        terminate_when_waiting(provisioned)
        killed.join(timeout=60)
    finally:
        open_writer.commit()
        open_writer.close()
    with admin(provisioned) as connection:
        seeded = content(connection, "system_logs", "true")
    return KilledRun(logs_target, raised, seeded)


def test_a_run_killed_while_it_builds_the_new_key_leaves_it_invalid_and_the_next_run_finishes(
    provisioned: ProvisionedDatabases, killed_while_building_the_key: KilledRun
) -> None:
    killed = killed_while_building_the_key
    assert len(killed.raised) == 1, killed.raised
    with admin(provisioned) as connection:
        assert catalog.invalid_indexes(connection) == {"system_logs_p_before_pkey"}

    assert runner.upgrade(killed.target, "logs_0004").applied == ("logs_0004",)

    with admin(provisioned) as connection:
        assert catalog.invalid_indexes(connection) == set()
        assert scalar(connection, "SELECT relkind FROM pg_class WHERE oid = 'system_logs'::regclass") == "p"
        assert content(connection, "system_logs", "true") == killed.seeded


def test_a_run_killed_in_the_conversion_reports_postgresqls_reason_not_a_cleanups(
    killed_while_building_the_key: KilledRun,
) -> None:
    """As for any revision (test_safe_runs): the operator reads why the run stopped."""
    assert len(killed_while_building_the_key.raised) == 1
    assert "terminating connection due to administrator command" in str(killed_while_building_the_key.raised[0])


def test_a_partition_table_left_unattached_is_attached_by_the_next_create_through(
    migrated: ProvisionedDatabases,
) -> None:
    with admin(migrated) as connection:
        newest = max(name for name in bounds(connection, "system_logs") if name != "system_logs_p_before")
    covered_until = datetime.strptime(newest, "system_logs_p%Y%m%d").replace(tzinfo=UTC) + timedelta(days=1)
    left = daily(covered_until)
    with as_owner(migrated) as owner:
        owner.execute(
            text(f"CREATE TABLE {left} (LIKE system_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)")
        )
        made = partitions.create_through(owner, "system_logs", Interval.DAY, covered_until + timedelta(hours=12))
    assert made == [left]
    with admin(migrated) as connection:
        assert bounds(connection, "system_logs")[left] == bound(covered_until, covered_until + timedelta(days=1))


# A conversion that gives up.

READER_OUTLASTS_GIVING_UP_S = 7.0  # past the five tries of 1 s that one with_lock_retries makes
BOUND_CHECKS = (
    "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c' "
    "AND pg_get_constraintdef(oid) LIKE '%%created_at%%'"
)


@pytest.mark.fault(
    what="every swap of logs_0004's conversion times out behind a long reader of the table",
    recovery="the run fails (lock timeout) with the table as it was and no boundary CHECK left on it, so the "
    "writers' rows of the next days go in; run it again once the reader is gone",
)
def test_a_conversion_whose_every_swap_times_out_leaves_no_check_and_the_next_days_rows_go_in(
    provisioned: ProvisionedDatabases,
    logs_target: runner.Target,
    monkeypatch: pytest.MonkeyPatch,
    fault_seen: SeenFunction,
) -> None:
    """A reader opens its transaction once the CHECK is validated, just before the swap, and holds the
    table until seconds after the conversion has given up: the CHECK, which would refuse every row from
    its boundary (the day after tomorrow) on, goes as soon as the table is free."""
    monkeypatch.setattr(partition_conversion, "SWAP_ATTEMPTS", 2)  # 20 in production, each as hopeless
    runner.upgrade(logs_target, "logs_0003")
    reader = provisioned.connect_as(provisioned.names.of("logs_reader"), LOGS, autocommit=False)
    reader_ended = threading.Event()

    def end_reader() -> None:
        reader.rollback()
        reader_ended.set()

    reader_ends = threading.Timer(READER_OUTLASTS_GIVING_UP_S, end_reader)
    swaps: list[str] = []
    swap, swap_with_retries, drop_check = (
        partition_conversion._swap,
        partition_conversion._swap_with_retries,
        partition_conversion._drop_check,
    )

    def read_then_swap(connection: Connection, table: str, boundary: datetime) -> None:
        reader.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))  # ACCESS SHARE, held
        swap_with_retries(connection, table, boundary)

    def counted_swap(table: str, boundary: datetime) -> list[str]:
        swaps.append(table)
        return swap(table, boundary)

    def drop_once_the_reader_ends(table: str) -> str:
        if not reader_ends.is_alive() and not reader_ended.is_set():
            reader_ends.start()  # the reader outlasts the conversion's giving up by seconds
        return drop_check(table)

    monkeypatch.setattr(partition_conversion, "_swap_with_retries", read_then_swap)
    monkeypatch.setattr(partition_conversion, "_swap", counted_swap)
    monkeypatch.setattr(partition_conversion, "_drop_check", drop_once_the_reader_ends)
    try:
        with pytest.raises(Exception, match="lock timeout") as gave_up:
            runner.upgrade(logs_target)
    finally:
        reader_ends.cancel()
        reader.close()
    fault_seen("scripts/migrate STACK logs", 7, str(gave_up.value), "lock timeout")
    assert swaps == ["system_logs", "system_logs"], "every swap was tried, and timed out"
    assert reader_ended.is_set(), "the reader held the table past the conversion's giving up"
    assert runner.current_revision(logs_target) == "logs_0003"
    with admin(provisioned) as connection:
        assert scalar(connection, "SELECT relkind FROM pg_class WHERE oid = 'system_logs'::regclass") == "r"
        assert connection.execute(BOUND_CHECKS, ("system_logs",)).fetchall() == []
    with writer(provisioned) as connection:  # the boundary was midnight(2): a row of day 2 met the CHECK
        for day in (1, 2, 3):
            connection.execute(INSERT_DATED_SYSTEM_LOG, (midnight(day) + timedelta(hours=12), f"day {day}"))
    with admin(provisioned) as connection:
        assert scalar(connection, "SELECT count(*) FROM system_logs WHERE component = 'dated'") == 3


# Retention: whole partitions dropped, no row deleted.


def retention_setup(provisioned: ProvisionedDatabases) -> dict[str, datetime]:
    """Rows now (the before partition) and at days 3, 8 and 12 from today; partitions made through day 20."""
    dated = {
        "now": datetime.now(UTC),
        "day 3": midnight(3) + timedelta(hours=12),
        "day 8": midnight(8) + timedelta(hours=12),
        "day 12": midnight(12) + timedelta(hours=12),
    }
    with as_owner(provisioned) as owner:
        partitions.create_through(owner, "system_logs", Interval.DAY, midnight(20))
    with writer(provisioned) as connection:
        for message, moment in dated.items():
            connection.execute(INSERT_DATED_SYSTEM_LOG, (moment, message))
        connection.execute("SELECT pg_stat_force_next_flush()")  # the inserts are counted before the next statement
    return dated


def test_retention_drops_exactly_the_partitions_that_end_by_the_cutoff(migrated: ProvisionedDatabases) -> None:
    retention_setup(migrated)
    cutoff = midnight(6)
    with admin(migrated) as connection:
        before = bounds(connection, "system_logs")
    with as_owner(migrated) as owner:
        dropped = partitions.drop_older_than(owner, "system_logs", cutoff)
    expected = ["system_logs_p_before"] + [daily(midnight(day)) for day in range(2, 6)]
    assert dropped == expected
    with admin(migrated) as connection:
        assert set(bounds(connection, "system_logs")) == set(before) - set(expected)
        assert {row[0] for row in connection.execute("SELECT message FROM system_logs").fetchall()} == {
            "day 8",
            "day 12",
        }
        gone = connection.execute("SELECT relname FROM pg_class WHERE relname = ANY(%s)", (expected,)).fetchall()
        assert gone == [], "dropped, not only detached"


def test_retention_deletes_no_row_from_the_partitions_it_keeps(migrated: ProvisionedDatabases) -> None:
    dated = retention_setup(migrated)
    with as_owner(migrated) as owner:
        partitions.drop_older_than(owner, "system_logs", midnight(6))
        owner.execute(text("SELECT pg_stat_force_next_flush()"))  # any DELETE of this session is counted now
    kept = [daily(dated["day 8"]), daily(dated["day 12"])]
    with admin(migrated) as connection:
        counts = connection.execute(
            "SELECT relname, n_tup_ins, n_tup_del FROM pg_stat_user_tables WHERE relname = ANY(%s)", (kept,)
        ).fetchall()
    assert sorted(counts) == [(kept[0], 1, 0), (kept[1], 1, 0)]


def test_a_second_retention_run_with_the_same_cutoff_drops_nothing(migrated: ProvisionedDatabases) -> None:
    retention_setup(migrated)
    with as_owner(migrated) as owner:
        assert partitions.drop_older_than(owner, "system_logs", midnight(6))
        with admin(migrated) as connection:
            left = bounds(connection, "system_logs")
        assert partitions.drop_older_than(owner, "system_logs", midnight(6)) == []
    with admin(migrated) as connection:
        assert bounds(connection, "system_logs") == left


def test_a_retention_run_cut_short_by_a_long_reader_is_finished_by_the_next_run(
    migrated: ProvisionedDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DETACH CONCURRENTLY marks the partition, then waits for the reader: given up, it stays detach-pending."""
    monkeypatch.setattr(partitions, "DETACH_LOCK_TIMEOUT", "1s")  # the reader outlasts it; 30 s in production
    retention_setup(migrated)
    reader = migrated.connect_as(migrated.names.of("logs_reader"), LOGS, autocommit=False)
    reader.execute("SELECT count(*) FROM system_logs")  # its transaction holds every partition until it ends
    try:
        with as_owner(migrated) as owner, pytest.raises(OperationalError, match="lock timeout"):
            partitions.drop_older_than(owner, "system_logs", midnight(6))
        with admin(migrated) as connection:
            pending = connection.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'system_logs'::regclass "
                "AND inhdetachpending"
            ).fetchall()
        assert pending == [("system_logs_p_before",)]
    finally:
        reader.rollback()
        reader.close()
    with as_owner(migrated) as owner:
        dropped = partitions.drop_older_than(owner, "system_logs", midnight(6))
    assert dropped == ["system_logs_p_before"] + [daily(midnight(day)) for day in range(2, 6)]


# A row past every partition.


def test_a_row_newer_than_every_partition_is_refused_until_a_partition_covers_it(
    migrated: ProvisionedDatabases,
) -> None:
    far = midnight(60) + timedelta(hours=12)
    with writer(migrated) as connection, pytest.raises(psycopg.errors.CheckViolation) as refused:
        connection.execute(INSERT_DATED_SYSTEM_LOG, (far, "far ahead"))
    assert 'no partition of relation "system_logs" found for row' in str(refused.value)
    with as_owner(migrated) as owner:
        assert daily(far) in partitions.create_through(owner, "system_logs", Interval.DAY, far)
    with writer(migrated) as connection:
        connection.execute(INSERT_DATED_SYSTEM_LOG, (far, "far ahead"))
    with admin(migrated) as connection:
        where = scalar(connection, "SELECT tableoid::regclass::text FROM system_logs WHERE message = 'far ahead'")
    assert where == daily(far)


def test_a_row_older_than_every_partition_left_by_retention_is_refused_and_nothing_else_changes(
    migrated: ProvisionedDatabases,
) -> None:
    retention_setup(migrated)
    with as_owner(migrated) as owner:
        partitions.drop_older_than(owner, "system_logs", midnight(6))
    with admin(migrated) as connection:
        before = bounds(connection, "system_logs")
    old = midnight(3) + timedelta(hours=1)  # its day's partition and the before partition are gone
    with writer(migrated) as connection, pytest.raises(psycopg.errors.CheckViolation) as refused:
        connection.execute(INSERT_DATED_SYSTEM_LOG, (old, "too old"))
    assert 'no partition of relation "system_logs" found for row' in str(refused.value)
    with admin(migrated) as connection:
        assert bounds(connection, "system_logs") == before, "no partition is made for a row past retention"
        assert scalar(connection, "SELECT count(*) FROM system_logs WHERE message = 'too old'") == 0


class FirstOfTheMonth:
    """partition_conversion's clock on the 1st of this month: the first monthly partition lies past the premake."""

    fromisoformat = staticmethod(datetime.fromisoformat)

    @staticmethod
    def now(tz: tzinfo | None = None) -> datetime:
        return datetime.now(tz).replace(day=1, hour=12, minute=0, second=0, microsecond=0)


def test_the_conversion_makes_the_partition_after_its_boundary_even_past_the_premake_window(
    provisioned: ProvisionedDatabases, logs_target: runner.Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the 1st, 14 days ahead end before next month: a row dated next month still has its partition."""
    monkeypatch.setattr(partition_conversion, "datetime", FirstOfTheMonth)
    runner.upgrade(logs_target)
    next_month = Interval.MONTH.after(Interval.MONTH.start_of(FirstOfTheMonth.now(UTC)))
    with admin(provisioned) as connection:
        assert bounds(connection, "llm_logs") == {
            "llm_logs_p_before": bound(None, next_month),
            f"llm_logs_p{next_month:%Y%m}": bound(next_month, Interval.MONTH.after(next_month)),
        }


# The script for review.


def test_the_sql_for_review_converts_in_place_under_a_lock_timeout_and_changes_nothing(
    provisioned: ProvisionedDatabases, logs_target: runner.Target
) -> None:
    runner.upgrade(logs_target, "logs_0003")
    script = runner.upgrade_sql(logs_target, "logs_0003:logs_0004")
    for table in LOG_TABLES:
        assert f'CREATE TABLE "{table}" (LIKE "{table}_p_before"' in script
        assert f'ALTER TABLE "{table}" ATTACH PARTITION "{table}_p_before" FOR VALUES FROM (MINVALUE)' in script
        swap = script.index(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        opened = script.rindex("BEGIN;", 0, swap)
        assert "SET LOCAL lock_timeout = '1s'" in script[opened:swap], table
    assert script.count("PARTITION BY RANGE (created_at)") == 2
    assert "DETACH" not in script
    assert runner.current_revision(logs_target) == "logs_0003"
    with admin(provisioned) as connection:
        kinds = connection.execute("SELECT relname, relkind FROM pg_class WHERE relname LIKE '%logs%'").fetchall()
    assert {name: kind for name, kind in kinds if kind in ("r", "p")} == {
        "system_logs": "r",
        "llm_logs": "r",
        "alembic_version_logs": "r",
    }


def test_the_sql_for_review_runs_in_psql_and_partitions_both_tables(
    provisioned: ProvisionedDatabases, logs_target: runner.Target
) -> None:
    """The reviewer runs the printed script as it is, as the migrator, with psql."""
    runner.upgrade(logs_target, "logs_0003")
    script = runner.upgrade_sql(logs_target, "logs_0003:logs_0004")
    url = logs_target.url
    environment = {
        **os.environ,
        "PGHOST": str(url.host),
        "PGPORT": str(url.port),
        "PGUSER": str(url.username),
        "PGPASSWORD": str(url.password),
        "PGDATABASE": str(url.database),
    }
    psql = [str(client_bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    ran = subprocess.run(psql, input=script, text=True, capture_output=True, env=environment, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert runner.current_revision(logs_target) == "logs_0004"
    with admin(provisioned) as connection:
        for table in LOG_TABLES:
            assert scalar(connection, "SELECT relkind FROM pg_class WHERE oid = %s::regclass", (table,)) == "p"
        assert catalog.invalid_indexes(connection) == set()


# The server stopped during a conversion.


def wait_until_the_migrator_waits(provisioned: ProvisionedDatabases) -> None:
    migrator = provisioned.names.migrator(LOGS)
    deadline = time.monotonic() + 60
    with provisioned.server.connect() as connection:
        while not scalar(
            connection,
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'",
            (migrator,),
        ):
            assert time.monotonic() < deadline, "the run never waited"
            time.sleep(0.05)


@pytest.mark.fault(
    what="the server stops at once (`pg_ctl -m immediate`) while logs_0004 converts a table holding rows",
    recovery="start the server; the next run (deploy or scripts/migrate) finishes the conversion, every row there once",
)
def test_a_conversion_outlives_a_server_crash(
    provisioned: ProvisionedDatabases, logs_target: runner.Target, fault_seen: SeenFunction
) -> None:
    runner.upgrade(logs_target, "logs_0003")
    seed(provisioned, system_logs=500, llm_logs=10)
    with admin(provisioned) as connection:
        seeded = content(connection, "system_logs", "true")
    open_writer = provisioned.connect_as(provisioned.names.of("logs_writer"), LOGS, autocommit=False)
    open_writer.execute(INSERT_SYSTEM_LOG, ("open when the server stops",))  # holds the key's build
    crashed, raised = upgrade_in_background(logs_target)
    try:
        wait_until_the_migrator_waits(provisioned)
        embedded.run_as_server(
            [str(find_bin_dir() / "pg_ctl"), "stop", "-D", str(embedded.data_dir()), "-m", "immediate"],
            capture_output=True,
        )
        crashed.join(timeout=60)
    finally:
        open_writer.close()
        embedded.start()
    assert len(raised) == 1
    fault_seen("scripts/migrate STACK logs", 7, str(raised[0]), "terminat")
    assert runner.upgrade(logs_target, "logs_0004").applied == ("logs_0004",)
    with admin(provisioned) as connection:
        assert content(connection, "system_logs", "true") == seeded  # the open writer's row was never committed
        assert catalog.invalid_indexes(connection) == set()
        assert scalar(connection, "SELECT relkind FROM pg_class WHERE oid = 'system_logs'::regclass") == "p"
