"""Partition maintenance on real databases: made ahead, dropped past retention (never a DELETE), twice at once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from fixtures.cluster import ProvisionedDatabases, scalar
from fixtures.fault_log import SeenFunction
from migrations import maintenance, runner
from model.log_lifecycle import LOG_TABLES, LogLifecycle
from model.names import DatabaseKey
from model.privileges import new_table_grants

LIFECYCLE = LogLifecycle(retention_days={"system_logs": 30, "llm_logs": 400}, premake_days=14)


def partition_names(provisioned: ProvisionedDatabases, table: str) -> list[str]:
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        rows = logs.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) ORDER BY 1",
            (f"public.{table}",),
        ).fetchall()
    return [row[0] for row in rows]


def wait_until_gone(connection: psycopg.Connection, user: str | None, seconds: float = 10.0) -> None:
    """Until no session of `user` is left: a backend sends its statistics (n_tup_del) as it exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if scalar(connection, "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (user,)) == 0:
            connection.execute("SELECT pg_stat_clear_snapshot()")
            return
        time.sleep(0.1)
    raise AssertionError(f"a session of {user} outlived maintenance by {seconds:.0f} s")


def test_a_first_run_makes_nothing_the_tree_already_made(
    migrated: ProvisionedDatabases, logs_target: runner.Target
) -> None:
    report = maintenance.maintain(logs_target, LIFECYCLE)
    assert report.created == {"system_logs": [], "llm_logs": []}
    assert report.dropped == {"system_logs": [], "llm_logs": []}


@pytest.mark.fault(
    what="no deploy or scheduled maintenance for 40 days (partitions missing ahead, old ones past retention)",
    recovery="the next deploy or scripts/maintain makes the window and drops what is past retention, naming each",
)
def test_weeks_without_maintenance_are_caught_up_and_retention_drops_whole_partitions(
    migrated: ProvisionedDatabases, logs_target: runner.Target, fault_seen: SeenFunction
) -> None:
    """Run as if 40 days had passed: the window is made, and the partitions past 30 days dropped, rows and all."""
    writer = migrated.names.of("logs_writer")
    with migrated.connect_as(writer, DatabaseKey.LOGS) as logs:
        logs.execute("INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'old', 'now')")
    later = datetime.now(UTC) + timedelta(days=40)
    report = maintenance.maintain(logs_target, LIFECYCLE, now=later)
    fault_seen("scripts/maintain", 0, "\n".join(report.lines()), "system_logs: created")
    made = report.created["system_logs"]
    assert made[-1] == f"system_logs_p{(later + timedelta(days=14)):%Y%m%d}"
    # The converted table's partition ends within two days of today: 40 days on, it is past 30 days.
    assert "system_logs_p_before" in report.dropped["system_logs"]
    cutoff = later - timedelta(days=30)
    kept = partition_names(migrated, "system_logs")
    assert "system_logs_p_before" not in kept
    assert all(
        name == "system_logs_p_before" or name >= f"system_logs_p{(cutoff - timedelta(days=1)):%Y%m%d}" for name in kept
    )
    assert report.dropped["llm_logs"] == []  # 400 days


def test_partitions_made_by_maintenance_belong_to_the_owner_and_grant_what_the_model_says(
    migrated: ProvisionedDatabases, logs_target: runner.Target
) -> None:
    """As scripts/maintain runs it (no grants to align): only the owner's default privileges give the
    runtime roles their verbs on a new partition, and only if the owner, not the migrator, made it."""
    # 60 days on: past every monthly partition the tree made, so both tables get new ones.
    report = maintenance.maintain(logs_target, LIFECYCLE, now=datetime.now(UTC) + timedelta(days=60))
    # Made and kept: 60 days on, retention drops the first weeks of what it makes.
    made = [name for table in LOG_TABLES for name in report.created[table] if name not in report.dropped[table]]
    assert made and report.created["llm_logs"], report.created
    with migrated.server.connect(migrated.databases[DatabaseKey.LOGS]) as logs:
        rows = logs.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner), a.grantee::regrole::text, a.privilege_type "
            "FROM pg_class c LEFT JOIN aclexplode(c.relacl) a ON a.grantee <> c.relowner WHERE c.relname = ANY(%s)",
            (made,),
        ).fetchall()
    owners = {name: owner for name, owner, _, _ in rows}
    assert owners == dict.fromkeys(made, migrated.names.owner(DatabaseKey.LOGS))
    granted: dict[str, dict[str, list[str]]] = {name: {} for name in made}
    for name, _, grantee, privilege in rows:
        if grantee is not None:
            granted[name].setdefault(grantee, []).append(privilege)
    expected = new_table_grants(migrated.names, DatabaseKey.LOGS)
    assert expected == {migrated.names.of("logs_writer"): ["INSERT"], migrated.names.of("logs_reader"): ["SELECT"]}
    assert {name: {role: sorted(held) for role, held in roles.items()} for name, roles in granted.items()} == (
        dict.fromkeys(made, expected)
    )


def test_retention_shortened_drops_exactly_the_partitions_now_past_it(
    migrated: ProvisionedDatabases, logs_target: runner.Target
) -> None:
    later = datetime.now(UTC) + timedelta(days=20)
    maintenance.maintain(logs_target, LIFECYCLE, now=later)  # 30 days: nothing is past it yet
    before = partition_names(migrated, "system_logs")
    shorter = LogLifecycle(retention_days={"system_logs": 15, "llm_logs": 400}, premake_days=14)
    report = maintenance.maintain(logs_target, shorter, now=later)
    cutoff = later - timedelta(days=15)
    dropped = report.dropped["system_logs"]
    assert dropped and set(dropped) == set(before) - set(partition_names(migrated, "system_logs"))
    assert all(name == "system_logs_p_before" or name < f"system_logs_p{cutoff:%Y%m%d}" for name in dropped)
    again = maintenance.maintain(logs_target, shorter, now=later)
    assert again.dropped == {"system_logs": [], "llm_logs": []}


def test_retention_never_deletes_a_row_of_a_partition_it_keeps(
    migrated: ProvisionedDatabases, logs_target: runner.Target
) -> None:
    writer = migrated.names.of("logs_writer")
    tomorrow = datetime.now(UTC) + timedelta(days=3)
    with migrated.connect_as(writer, DatabaseKey.LOGS) as logs:
        logs.execute(
            "INSERT INTO system_logs (created_at, level, component, message) VALUES (%s, 'INFO', 'kept', 'x')",
            (tomorrow,),
        )
    maintenance.maintain(logs_target, LIFECYCLE, now=datetime.now(UTC) + timedelta(days=31))
    with migrated.server.connect(migrated.databases[DatabaseKey.LOGS]) as logs:
        wait_until_gone(logs, logs_target.url.username)  # its counts are flushed when its backend exits
        kept = logs.execute("SELECT count(*) FROM system_logs WHERE component = 'kept'").fetchone()
        deletes = logs.execute(
            "SELECT coalesce(sum(n_tup_del), 0) FROM pg_stat_user_tables WHERE relname LIKE 'system_logs_p%'"
        ).fetchone()
    assert kept == (1,)
    assert deletes == (0,)


def test_two_runs_at_once_take_turns_and_make_each_partition_once(
    migrated: ProvisionedDatabases, logs_target: runner.Target, capfd: pytest.CaptureFixture[str]
) -> None:
    later = datetime.now(UTC) + timedelta(days=10)
    reports: list[object] = []

    def run() -> None:
        try:
            reports.append(maintenance.maintain(logs_target, LIFECYCLE, now=later))
        except Exception as error:  # reported by the assertion below
            reports.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    made = [report.created["system_logs"] for report in reports if isinstance(report, maintenance.MaintenanceReport)]
    assert len(made) == 2, reports
    assert sorted(made, key=len)[0] == [] and len(sorted(made, key=len)[1]) == 10


def test_an_unpartitioned_tree_is_refused_by_name(
    provisioned: ProvisionedDatabases, logs_target: runner.Target
) -> None:
    runner.upgrade(logs_target, "logs_0003")
    with pytest.raises(maintenance.NotPartitionedError, match="system_logs is not partitioned: the logs tree is below"):
        maintenance.maintain(logs_target, LIFECYCLE)


@pytest.mark.fault(
    what="retention's DETACH ... CONCURRENTLY cut short (killed, or cancelled while it waits for a reader)",
    recovery="the next maintenance finishes it with DETACH ... FINALIZE, then drops the partition",
)
def test_an_interrupted_detach_is_finished_by_the_next_run(
    migrated: ProvisionedDatabases, logs_target: runner.Target, fault_seen: SeenFunction
) -> None:
    """DETACH CONCURRENTLY cut short leaves the partition "detach pending": the next run finalizes and drops it."""
    owner = migrated.names.owner(DatabaseKey.LOGS)
    with migrated.server.connect(migrated.databases[DatabaseKey.LOGS]) as logs:
        # A reader that holds the partition open makes DETACH CONCURRENTLY wait in its second phase.
        logs.execute(f'SET ROLE "{owner}"')
        reader = migrated.server.connect(migrated.databases[DatabaseKey.LOGS], autocommit=False)
        reader.execute("SELECT count(*) FROM system_logs")
        detach = threading.Thread(
            target=lambda: _detach_cut_short(migrated, owner),
        )
        detach.start()
        detach.join(timeout=30)
        reader.rollback()
        reader.close()
        pending = logs.execute(
            "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'system_logs_p_before'::regclass"
        ).fetchone()
    assert pending == (True,)
    report = maintenance.maintain(logs_target, LIFECYCLE, now=datetime.now(UTC) + timedelta(days=40))
    fault_seen("scripts/maintain", 0, "\n".join(report.lines()), "dropped system_logs_p_before")
    assert "system_logs_p_before" in report.dropped["system_logs"]
    assert "system_logs_p_before" not in partition_names(migrated, "system_logs")


def _detach_cut_short(provisioned: ProvisionedDatabases, owner: str) -> None:
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as session:
        session.execute(f'SET ROLE "{owner}"')
        session.execute("SET statement_timeout = '2s'")
        with pytest.raises(Exception, match="canceling statement due to statement timeout"):
            session.execute("ALTER TABLE system_logs DETACH PARTITION system_logs_p_before CONCURRENTLY")
