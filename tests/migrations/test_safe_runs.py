"""Runs that overlap, fail half-way or meet a restarting server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import URL, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from fixtures import catalog
from fixtures.cluster import ProvisionedDatabases, scalar
from fixtures.fault_log import SeenFunction
from fixtures.revisions import FAILING_REVISION, revision_file
from migrations import runner
from migrations.shared import environment, lock_retry
from migrations.shared.environment import LOCK_TIMEOUT
from migrations.shared.run_lock import LockTimeoutError, tree_run_lock
from migrations.shared.tree import LOGS, TREES
from model.names import DatabaseKey
from ops.localpg import embedded
from ops.localpg.embedded import find_bin_dir
from ops.paths import REPO_ROOT

OPEN_WRITER_S = 3.0  # an open writer transaction this long outlasts many tries of the migration's lock_timeout


def start_upgrade_process(provisioned: ProvisionedDatabases, key: DatabaseKey) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "fixtures.run_tree"],
        cwd=REPO_ROOT,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    request = {
        "tree": key.value,
        "url": provisioned.migrator_url(key).render_as_string(hide_password=False),
        "expected_database": provisioned.databases[key],
    }
    assert process.stdin is not None
    process.stdin.write(json.dumps(request))
    process.stdin.close()
    return process


@pytest.mark.fault(
    what="two runs of one migration tree at once",
    recovery="none needed: the second waits for the tree's advisory lock, then finds nothing to do",
)
def test_two_runs_at_once_apply_each_revision_exactly_once(
    provisioned: ProvisionedDatabases, fault_seen: SeenFunction
) -> None:
    processes = [start_upgrade_process(provisioned, DatabaseKey.LOGS) for _ in range(2)]
    outcomes = [
        (process.wait(timeout=120), process.stdout.read(), process.stderr.read())  # type: ignore[union-attr]
        for process in processes
    ]
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes
    applied = [json.loads(stdout) for _, stdout, _ in outcomes]
    assert sorted(applied, key=len) == [[], runner.revisions_in_order(LOGS)]
    for code, stdout, _ in sorted(outcomes, key=lambda outcome: len(outcome[1])):  # in a stable order for the docs
        fault_seen("a run of the logs tree", code, f"applied {stdout.strip()}", "applied")


def test_a_revision_failing_half_way_leaves_the_previous_revision(
    provisioned: ProvisionedDatabases, logs_target: runner.Target, tmp_path: Path
) -> None:
    runner.upgrade(logs_target)
    head = runner.head_revision(logs_target.tree)
    with provisioned.connect_as(provisioned.names.of("logs_writer"), DatabaseKey.LOGS) as writer:
        writer.execute("INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'test', 'kept')")
    tree_copy = tmp_path / "logs"
    shutil.copytree(REPO_ROOT / "migrations" / "logs", tree_copy)
    (tree_copy / "versions" / "logs_9999_fails.py").write_text(FAILING_REVISION.format(down=head))
    failing = runner.Target(logs_target.tree, logs_target.url, logs_target.expected_database, tree_copy)

    with pytest.raises(Exception, match="division by zero"):
        runner.upgrade(failing)

    assert runner.current_revision(logs_target) == head
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        assert "half_done" not in catalog.tables(logs)
        assert logs.execute("SELECT message FROM system_logs").fetchall() == [("kept",)]


def test_a_failure_after_a_first_revision_keeps_it_and_leaves_the_version_table_to_the_owner(
    provisioned: ProvisionedDatabases, logs_target: runner.Target, tmp_path: Path
) -> None:
    """From an empty database: logs_0001 commits on its own, the next revision fails, and the version
    table the run created (which the owner's default privileges handed to the runtime roles) is
    restricted again by the cleanup after the failure."""
    tree_copy = tmp_path / "logs"
    later = shutil.ignore_patterns("logs_*.py")  # every revision but the first
    shutil.copytree(REPO_ROOT / "migrations" / "logs", tree_copy, ignore=later)
    shutil.copy(next((REPO_ROOT / "migrations" / "logs" / "versions").glob("logs_0001_*.py")), tree_copy / "versions")
    (tree_copy / "versions" / "logs_9999_fails.py").write_text(FAILING_REVISION.format(down="logs_0001"))
    failing = runner.Target(logs_target.tree, logs_target.url, logs_target.expected_database, tree_copy)
    with pytest.raises(Exception, match="division by zero"):
        runner.upgrade(failing)
    assert runner.current_revision(logs_target) == "logs_0001"
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        reachable = logs.execute(
            "SELECT r FROM unnest(%s::text[]) AS r WHERE has_table_privilege(r, 'alembic_version_logs', "
            "'SELECT,INSERT,UPDATE,DELETE')",
            ([provisioned.names.of(key) for key in ("logs_writer", "logs_reader")],),
        ).fetchall()
    assert reachable == []


READ_ONLY_SESSION_REVISION = revision_file(
    "logs_9996",
    "A revision that succeeds, leaving the cleanup a REVOKE its session cannot run.",
    'op.execute("GRANT SELECT ON alembic_version_logs TO PUBLIC")\n'
    'op.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")',
)


def test_a_cleanup_that_fails_after_a_successful_run_is_reported(logs_target: runner.Target, tmp_path: Path) -> None:
    """Restricting the version table is part of the run: when it cannot be done, the run says so."""
    runner.upgrade(logs_target)
    tree_copy = tmp_path / "logs"
    shutil.copytree(REPO_ROOT / "migrations" / "logs", tree_copy)
    revision = READ_ONLY_SESSION_REVISION.replace("{down}", runner.head_revision(logs_target.tree))
    (tree_copy / "versions" / "logs_9996_read_only.py").write_text(revision)
    read_only = runner.Target(logs_target.tree, logs_target.url, logs_target.expected_database, tree_copy)
    with pytest.raises(Exception, match="read-only transaction"):
        runner.upgrade(read_only)


WAITING_REVISION = revision_file(
    "logs_9998",
    "A revision that waits on an advisory lock the test holds, so the test can end its session.",
    'op.execute("SET lock_timeout = 0")\nop.execute("SELECT pg_advisory_lock(4242)")',
)


def test_a_failure_the_cleanup_cannot_follow_is_reported_as_itself(
    provisioned: ProvisionedDatabases, logs_target: runner.Target, tmp_path: Path
) -> None:
    """The migration's session is ended and its role may no longer log in: the cleanup's reconnect fails too,
    and the error raised is the one that stopped the revision, not the cleanup's."""
    runner.upgrade(logs_target)
    tree_copy = tmp_path / "logs"
    shutil.copytree(REPO_ROOT / "migrations" / "logs", tree_copy)
    revision = WAITING_REVISION.replace("{down}", runner.head_revision(logs_target.tree))
    (tree_copy / "versions" / "logs_9998_waits.py").write_text(revision)
    failing = runner.Target(logs_target.tree, logs_target.url, logs_target.expected_database, tree_copy)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            runner.upgrade(failing)
        except BaseException as error:  # what the run raised is the test's subject
            raised.append(error)

    migrator = provisioned.names.migrator(DatabaseKey.LOGS)
    logs = provisioned.databases[DatabaseKey.LOGS]
    with provisioned.server.connect(logs) as admin:
        admin.execute("SELECT pg_advisory_lock(4242)")
        migration = threading.Thread(target=run, daemon=True)
        migration.start()
        waiting = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted"
        deadline = time.monotonic() + 30
        while (row := admin.execute(waiting).fetchone()) is None:
            assert time.monotonic() < deadline, "the revision never reached its lock"
            time.sleep(0.05)
        admin.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(migrator)))
        admin.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        migration.join(timeout=60)
        admin.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(migrator)))
    assert len(raised) == 1, raised
    assert "terminating connection due to administrator command" in str(raised[0]), raised[0]


@pytest.mark.fault(
    what="the server is down or restarting when a tree connects",
    recovery="retried with backoff (HEADHUNTER_CONNECT_ATTEMPTS, 6 by default, 1 to 12), then the connection error; "
    "start the server and run again",
)
def test_a_dead_server_is_retried_with_backoff_then_reported(
    provisioned: ProvisionedDatabases,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fault_seen: SeenFunction,
) -> None:
    monkeypatch.setenv("HEADHUNTER_CONNECT_ATTEMPTS", "3")
    nothing_listens = provisioned.migrator_url(DatabaseKey.LOGS).set(port=1)
    with pytest.raises(OperationalError, match=r"Connection refused|connection failed"):
        runner.upgrade(runner.Target(runner.tree_named("logs"), nothing_listens))
    said = capfd.readouterr().err
    retries = [line for line in said.splitlines() if "cannot connect yet" in line]
    assert len(retries) == 2, said
    assert "Connection refused" in retries[0] and retries[0].endswith("retry 1/2 in 0.5s"), retries
    assert retries[1].endswith("retry 2/2 in 1.0s"), retries
    fault_seen("a run of the logs tree", None, said, "cannot connect yet")


def test_by_default_a_dead_server_is_tried_six_times(provisioned: ProvisionedDatabases) -> None:
    """The default budget (five retries, 15.5 s of backoff) shows in the first retry's message; the run stops there."""
    url = provisioned.migrator_url(DatabaseKey.LOGS).set(port=1, password=None)
    env = {key: value for key, value in os.environ.items() if key != "HEADHUNTER_CONNECT_ATTEMPTS"}
    env[LOGS.url_env_var] = url.render_as_string(hide_password=False)
    alembic = [sys.executable, "-m", "alembic", "-c", "alembic.ini", "--name", "logs", "upgrade", "head"]
    run = subprocess.Popen(alembic, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert run.stderr is not None
        first = next(line for line in run.stderr if "cannot connect yet" in line)
    finally:
        run.kill()
        run.wait()
    assert first.rstrip().endswith("retry 1/5 in 0.5s"), first


@pytest.mark.parametrize("attempts", ["0", "13"])
def test_a_number_of_attempts_out_of_bounds_is_refused_by_name(
    provisioned: ProvisionedDatabases, monkeypatch: pytest.MonkeyPatch, attempts: str
) -> None:
    monkeypatch.setenv("HEADHUNTER_CONNECT_ATTEMPTS", attempts)
    with pytest.raises(ValueError, match=f"HEADHUNTER_CONNECT_ATTEMPTS is {attempts}: give 1 \\(no retry\\) to 12"):
        runner.upgrade(runner.Target(runner.tree_named("logs"), provisioned.migrator_url(DatabaseKey.LOGS)))


@pytest.mark.parametrize("attempts", ["1", "12"])
def test_the_bounds_of_the_number_of_attempts_are_accepted(
    provisioned: ProvisionedDatabases, monkeypatch: pytest.MonkeyPatch, attempts: str
) -> None:
    monkeypatch.setenv("HEADHUNTER_CONNECT_ATTEMPTS", attempts)
    target = runner.Target(runner.tree_named("logs"), provisioned.migrator_url(DatabaseKey.LOGS))
    assert runner.upgrade(target).after == runner.head_revision(LOGS)


@pytest.fixture
def standby_without_hot_standby() -> Iterator[int]:
    """A real server that refuses every connection as "not accepting connections" (SQLSTATE 57P03, which
    libpq does not hand on for a failed connection): a replica whose hot standby is off, as a client
    meets one during a failover."""
    bin_dir, folder = find_bin_dir(), Path(tempfile.mkdtemp(prefix="headhunter-standby-"))
    folder.chmod(0o755)
    embedded.give_to_server(folder)
    data, port = folder / "data", embedded.free_port()
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-instructions"]
    embedded.run_as_server(initdb, check=True, capture_output=True)
    embedded.run_as_server(["touch", str(data / "standby.signal")], check=True)
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c hot_standby=off -k {folder}"
    ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "standby.log")]
    embedded.run_as_server([*ctl, "start", "-W"], check=True, capture_output=True)
    try:
        yield port
    finally:
        embedded.run_as_server([*ctl, "stop", "-m", "immediate"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_standby_not_accepting_connections_yet_is_retried(
    provisioned: ProvisionedDatabases,
    standby_without_hot_standby: int,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEADHUNTER_CONNECT_ATTEMPTS", "2")
    standby = provisioned.migrator_url(DatabaseKey.LOGS).set(port=standby_without_hot_standby)
    deadline = time.monotonic() + 30
    while "not accepting connections" not in (message := connection_error(standby)):
        assert time.monotonic() < deadline, message  # the standby is still starting up
        time.sleep(0.2)
    with pytest.raises(OperationalError, match="not accepting connections"):
        runner.upgrade(runner.Target(runner.tree_named("logs"), standby))
    retries = [line for line in capfd.readouterr().err.splitlines() if "cannot connect yet" in line]
    assert len(retries) == 1 and "not accepting connections" in retries[0], retries


def connection_error(url: URL) -> str:
    try:
        psycopg.connect(url.render_as_string(hide_password=False).replace("+psycopg", ""), connect_timeout=5).close()
    except psycopg.OperationalError as error:
        return str(error)
    return "connected"


@pytest.mark.fault(what="a wrong migrator password", recovery="fix the credentials: never retried")
def test_a_wrong_password_is_not_retried(
    provisioned: ProvisionedDatabases, capfd: pytest.CaptureFixture[str], fault_seen: SeenFunction
) -> None:
    wrong_password = provisioned.migrator_url(DatabaseKey.LOGS).set(password="not-the-password")
    with pytest.raises(OperationalError, match="password authentication failed") as refused:
        runner.upgrade(runner.Target(runner.tree_named("logs"), wrong_password))
    fault_seen("a run of the logs tree", None, str(refused.value), "password authentication failed")
    assert "cannot connect yet" not in capfd.readouterr().err


@pytest.mark.fault(
    what="a concurrent index build failed earlier and left an INVALID index",
    recovery="the next run of the tree drops the invalid index and builds it again",
)
def test_an_invalid_index_left_by_a_failed_concurrent_build_is_rebuilt(
    provisioned: ProvisionedDatabases, logs_target: runner.Target
) -> None:
    """IF NOT EXISTS would accept an INVALID index of the same name (squawk#1230); the tree rebuilds it."""
    runner.upgrade(logs_target, "logs_0002")
    logs = provisioned.databases[DatabaseKey.LOGS]
    with provisioned.server.connect(logs) as connection:
        connection.execute(
            "INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'a', 'x'), ('INFO', 'a', 'y')"
        )
        with pytest.raises(psycopg.errors.UniqueViolation):  # a failed concurrent build leaves its index INVALID
            connection.execute("CREATE UNIQUE INDEX CONCURRENTLY idx_system_logs_errors ON system_logs (component)")
        assert catalog.invalid_indexes(connection) == {"idx_system_logs_errors"}

    runner.upgrade(logs_target)

    with provisioned.server.connect(logs) as connection:
        assert catalog.invalid_indexes(connection) == set()
        definition = scalar(connection, "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_system_logs_errors'")
        assert "WHERE (error_type IS NOT NULL)" in str(definition)


def test_a_concurrent_index_build_outwaits_an_open_writer_transaction(
    provisioned: ProvisionedDatabases, logs_target: runner.Target, capfd: pytest.CaptureFixture[str]
) -> None:
    """The build waits for older transactions through the lock manager: lock_timeout must not cancel it.

    Retries would hide a cancelled build (the next try builds it again once the writer ends), so the
    test also asserts that no try was cancelled."""
    runner.upgrade(logs_target, "logs_0002")
    writer_role = provisioned.names.of("logs_writer")
    writer = provisioned.connect_as(writer_role, DatabaseKey.LOGS, autocommit=False)
    writer.execute("INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'slow', 'open')")
    committer = threading.Timer(OPEN_WRITER_S, writer.commit)  # outlives the migration's lock_timeout
    committer.start()
    try:
        result = runner.upgrade(logs_target, "logs_0003")
    finally:
        committer.join()
        writer.close()
    assert result.applied == ("logs_0003",)
    assert "lock not granted" not in capfd.readouterr().err
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        assert catalog.invalid_indexes(logs) == set()


def test_writers_go_on_while_an_index_revision_waits_and_builds(
    provisioned: ProvisionedDatabases, logs_target: runner.Target
) -> None:
    """A plain CREATE INDEX would queue its SHARE lock behind an open writer, and every later INSERT behind it.

    One writer holds a transaction open, so the index revision must wait; while it waits, a second
    writer inserts with a bound on how long it may wait for a lock. CONCURRENTLY takes a lock that
    INSERT does not conflict with, so the second insert goes through at once.
    """
    runner.upgrade(logs_target, "logs_0002")
    writer_role = provisioned.names.of("logs_writer")
    open_writer = provisioned.connect_as(writer_role, DatabaseKey.LOGS, autocommit=False)
    open_writer.execute("INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'slow', 'open')")
    outcome: list[object] = []
    build = threading.Thread(target=lambda: outcome.append(upgrade_or_error(logs_target, "logs_0003")))
    build.start()
    try:
        wait_until_the_migrator_waits(provisioned)
        with provisioned.connect_as(writer_role, DatabaseKey.LOGS) as later_writer:
            later_writer.execute("SET lock_timeout = '5s'")
            later_writer.execute("INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'w', 'later')")
    finally:
        open_writer.commit()
        open_writer.close()
        build.join(timeout=120)
    assert [getattr(result, "applied", result) for result in outcome] == [("logs_0003",)]


def upgrade_or_error(target: runner.Target, revision: str = "head") -> object:
    try:
        return runner.upgrade(target, revision)
    except Exception as error:  # reported by the test's assertion, not lost in the thread
        return error


def wait_until_the_migrator_waits(provisioned: ProvisionedDatabases) -> None:
    """Until the index revision's session waits on a lock (behind the open writer's transaction)."""
    migrator = provisioned.names.migrator(DatabaseKey.LOGS)
    deadline = time.monotonic() + 60
    with provisioned.server.connect() as admin:
        while not scalar(
            admin,
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'",
            (migrator,),
        ):
            assert time.monotonic() < deadline, "the index revision never waited for the open writer"
            time.sleep(0.05)


def test_a_run_in_another_process_waits_while_this_session_holds_the_trees_lock(
    provisioned: ProvisionedDatabases,
) -> None:
    """Deterministic where two racing runs are not: a key computed per process would let it through."""
    logs = provisioned.databases[DatabaseKey.LOGS]
    with provisioned.server.connect(logs) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOGS.advisory_lock_key,))
        run = start_upgrade_process(provisioned, DatabaseKey.LOGS)
        time.sleep(5)  # far longer than a run of the logs tree on an empty database takes
        assert run.poll() is None, "the other run did not wait for the lock"
        assert "alembic_version_logs" not in catalog.tables(holder), "it applied a revision under our lock"
        holder.execute("SELECT pg_advisory_unlock(%s)", (LOGS.advisory_lock_key,))
    code = run.wait(timeout=120)
    stdout, stderr = run.stdout.read(), run.stderr.read()  # type: ignore[union-attr]
    assert code == 0, stderr
    assert json.loads(stdout) == runner.revisions_in_order(LOGS)
    assert "waiting for another migration run of the logs tree to finish" in stderr


def test_a_run_waits_a_bounded_time_for_another_runs_lock_then_says_so(
    provisioned: ProvisionedDatabases, capfd: pytest.CaptureFixture[str]
) -> None:
    logs = provisioned.databases[DatabaseKey.LOGS]
    engine = create_engine(provisioned.migrator_url(DatabaseKey.LOGS), poolclass=NullPool)
    outcome: list[BaseException | None] = []

    def second_run() -> None:
        try:
            with engine.connect() as connection, tree_run_lock(connection, LOGS, wait_s=1.2):
                outcome.append(None)  # taken while the other session holds it
        except LockTimeoutError as error:
            outcome.append(error)

    with provisioned.server.connect(logs) as other_run:
        other_run.execute("SELECT pg_advisory_lock(%s)", (LOGS.advisory_lock_key,))
        waiting = threading.Thread(target=second_run, daemon=True)
        waiting.start()
        waiting.join(timeout=20)  # far past its 1.2 s: a run that never gives up fails here, not in an hour
        assert not waiting.is_alive(), "the second run still waits for the lock"
    assert len(outcome) == 1 and isinstance(outcome[0], LockTimeoutError), outcome
    assert "another migration run of the logs tree held its lock for over 1s" in str(outcome[0])
    said = capfd.readouterr().err
    assert said.count("waiting for another migration run of the logs tree to finish") == 1, said


def test_a_run_whose_connection_died_leaves_the_lock_without_an_error(provisioned: ProvisionedDatabases) -> None:
    """The lock dies with its backend: releasing it on a dead connection is no error of the run's."""
    logs = provisioned.databases[DatabaseKey.LOGS]
    engine = create_engine(provisioned.migrator_url(DatabaseKey.LOGS), poolclass=NullPool)
    with provisioned.server.connect(logs) as admin, engine.connect() as connection:
        with tree_run_lock(connection, LOGS, wait_s=1):
            backend = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            connection.commit()
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (backend,))
        assert admin.execute("SELECT pg_try_advisory_lock(%s)", (LOGS.advisory_lock_key,)).fetchone() == (True,)


LOCKING_REVISION = revision_file(
    "{tree}_9998",
    "A revision that needs ACCESS EXCLUSIVE on a table, for the lock_timeout test.",
    'op.execute("ALTER TABLE {table} ADD COLUMN waited_for_a_lock text")',
    'op.execute("ALTER TABLE {table} DROP COLUMN waited_for_a_lock")',
)
# Per tree: a table of its own and an insert its runtime writer may make, again and again (a new token each).
LOCKED_TABLES = {
    DatabaseKey.MAIN: (
        "user_invitations",
        "app",
        "INSERT INTO user_invitations (email, token_hash, role, expires_at) SELECT 'w' || u || '@example.com', "
        "sha256(u::text::bytea), 'viewer', now() + interval '1 day' FROM gen_random_uuid() AS u",
    ),
    DatabaseKey.LOGS: (
        "llm_logs",
        "logs_writer",
        "INSERT INTO llm_logs (component, provider, model, status, latency_ms) "
        "VALUES ('test', 'vendor', 'model', 'success', 120)",
    ),
}


REPORT = "long report"  # the application_name of the long reader, which the failure must name


def tree_with_locking_revision(provisioned: ProvisionedDatabases, key: DatabaseKey, tmp_path: Path) -> runner.Target:
    """The tree at head, and a copy of it whose next revision needs ACCESS EXCLUSIVE on the tree's table."""
    table, _, _ = LOCKED_TABLES[key]
    tree = runner.Target(TREES[key.value], provisioned.migrator_url(key), provisioned.databases[key])
    runner.upgrade(tree)
    tree_copy = tmp_path / key.value
    shutil.copytree(REPO_ROOT / "migrations" / key.value, tree_copy)
    revision = LOCKING_REVISION.format(tree=key.value, down=runner.head_revision(tree.tree), table=table)
    (tree_copy / "versions" / f"{key.value}_9998_waits.py").write_text(revision)
    return runner.Target(tree.tree, tree.url, tree.expected_database, tree_copy)


@contextmanager
def long_reader(provisioned: ProvisionedDatabases, key: DatabaseKey) -> Iterator[psycopg.Connection]:
    """A report's transaction that has read the table: its ACCESS SHARE lock is held until it ends."""
    table, _, _ = LOCKED_TABLES[key]
    with provisioned.server.connect(provisioned.databases[key], autocommit=False) as reader:
        reader.execute(sql.SQL("SET application_name = {}").format(sql.Literal(REPORT)))
        reader.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        yield reader


class Writer:
    """Inserts one row after another, each allowed to wait for a lock a little over one of the migration's tries."""

    LOCK_TIMEOUT = "1s"  # one try is lock_retry.TRY_LOCK_TIMEOUT (50 ms); the old single wait was 5 s

    def __init__(self, provisioned: ProvisionedDatabases, key: DatabaseKey) -> None:
        _, self.role, self.insert = LOCKED_TABLES[key]
        self.provisioned, self.key = provisioned, key
        self.inserted, self.failed = 0, list[BaseException]()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        try:
            with self.provisioned.connect_as(self.provisioned.names.of(self.role), self.key) as writer:
                writer.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(self.LOCK_TIMEOUT)))
                while not self.stop.wait(0.01):
                    writer.execute(self.insert)
                    self.inserted += 1
        except BaseException as error:  # seen by the test, not lost in the thread
            self.failed.append(error)


def tries_seen(provisioned: ProvisionedDatabases, key: DatabaseKey, wanted: int) -> int:
    """Watch the migrator's session until it has waited for a lock in `wanted` separate tries (each try's
    ALTER is a new statement: a new query_start); how many were seen."""
    migrator = provisioned.names.migrator(key)
    starts: set[object] = set()
    deadline = time.monotonic() + 60
    with provisioned.server.connect(provisioned.databases[key]) as admin:
        while len(starts) < wanted and time.monotonic() < deadline:
            row = admin.execute(
                "SELECT query_start FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock' "
                "AND query LIKE 'ALTER TABLE%%'",
                (migrator,),
            ).fetchone()
            if row is not None:
                starts.add(row[0])
            time.sleep(0.01)
    return len(starts)


@pytest.mark.parametrize("key", list(DatabaseKey), ids=[key.value for key in DatabaseKey])
def test_a_revision_behind_a_long_reader_waits_in_short_tries_that_never_hold_writers_and_applies_when_it_ends(
    provisioned: ProvisionedDatabases, tmp_path: Path, key: DatabaseKey, capfd: pytest.CaptureFixture[str]
) -> None:
    """A long reader holds the table: the revision's ALTER waits one short try at a time, rolled back in
    between, so an INSERT queued behind a try waits less than its own lock_timeout (1 s, where a single
    5 s wait would fail it); once the reader ends, the next try applies the revision."""
    locking = tree_with_locking_revision(provisioned, key, tmp_path)
    writer = Writer(provisioned, key)
    outcome: list[object] = []
    with long_reader(provisioned, key) as reader:
        migration = threading.Thread(target=lambda: outcome.append(upgrade_or_error(locking)), daemon=True)
        writer.thread.start()
        migration.start()
        seen = tries_seen(provisioned, key, wanted=4)
        inserted_while_it_tried = writer.inserted
        reader.rollback()
        migration.join(timeout=60)
    writer.stop.set()
    writer.thread.join(timeout=10)
    assert seen == 4, f"the revision waited in {seen} tries"
    assert writer.failed == [], f"a writer waited behind the revision for longer than its lock_timeout: {writer.failed}"
    assert inserted_while_it_tried > 0
    assert [getattr(result, "applied", result) for result in outcome] == [(f"{key.value}_9998",)]
    said = capfd.readouterr().err
    assert f"revision {key.value}_9998 (upgrade" in said and f"lock not granted within {LOCK_TIMEOUT}" in said, said


def test_a_revision_whose_reader_never_ends_fails_naming_the_holder_and_keeps_the_previous_revision(
    provisioned: ProvisionedDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its retry budget the run fails with the revision, the session holding the lock (pid,
    application_name, when its query started) and the fix; the database stays at the revision before."""
    key = DatabaseKey.MAIN
    monkeypatch.setattr(lock_retry, "RETRY_BUDGET_S", 3.0)  # two minutes in production
    locking = tree_with_locking_revision(provisioned, key, tmp_path)
    head = runner.head_revision(locking.tree)
    migrator = provisioned.names.migrator(key)
    with provisioned.server.connect(provisioned.databases[key]) as admin:  # what the report runs, and since when
        admin.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(migrator)))
    with long_reader(provisioned, key) as reader:
        reader_pid = reader.info.backend_pid
        with pytest.raises(lock_retry.LockRetriesExhaustedError) as failed:
            runner.upgrade(locking)
        reader.rollback()
    said = str(failed.value)
    assert said.startswith("revision main_9998 (upgrade main_0001 -> main_9998) did not get its lock"), said
    assert f"pid {reader_pid} (application_name {REPORT!r}" in said, said
    assert "holds AccessShareLock on user_invitations, which conflicts with AccessExclusiveLock" in said, said
    assert "query started" in said and 'SELECT count(*) FROM "user_invitations"' in said, said
    assert f"SELECT pg_terminate_backend(pid) for {reader_pid}" in said, said
    assert runner.current_revision(locking) == head
    with provisioned.server.connect(provisioned.databases[key]) as main:
        column = "SELECT count(*) FROM pg_attribute WHERE attrelid = 'user_invitations'::regclass AND attname = %s"
        assert scalar(main, column, ("waited_for_a_lock",)) == 0


SLOW_STATEMENT = 'op.execute("SELECT pg_sleep(2)")'
SLOW_REVISIONS = {
    "in the revision's transaction": revision_file(
        "logs_9997", "A slow statement under the revision's locks.", SLOW_STATEMENT
    ),
    "in an autocommit block": revision_file(
        "logs_9997",
        "A slow statement outside the revision's transaction, as a concurrent build runs.",
        f"with op.get_context().autocommit_block():\n    {SLOW_STATEMENT}",
    ),
}


@pytest.mark.parametrize("where", list(SLOW_REVISIONS))
def test_a_statement_inside_a_revisions_transaction_gets_the_short_budget_and_one_outside_the_sessions(
    provisioned: ProvisionedDatabases,
    logs_target: runner.Target,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """Inside the revision's transaction every lock is held to COMMIT: its statements are stopped at
    REVISION_STATEMENT_TIMEOUT (10 s; 500 ms here, against a 2 s statement). Outside it (an autocommit
    block: concurrent builds, VALIDATE, batched backfills) the session's 30 min apply."""
    monkeypatch.setattr(environment, "REVISION_STATEMENT_TIMEOUT", "500ms")
    runner.upgrade(logs_target)
    head = runner.head_revision(logs_target.tree)
    tree_copy = tmp_path / "logs"
    shutil.copytree(REPO_ROOT / "migrations" / "logs", tree_copy)
    (tree_copy / "versions" / "logs_9997_slow.py").write_text(SLOW_REVISIONS[where].replace("{down}", head))
    slow = runner.Target(logs_target.tree, logs_target.url, logs_target.expected_database, tree_copy)
    if where == "in an autocommit block":
        assert runner.upgrade(slow).applied == ("logs_9997",)
        return
    with pytest.raises(Exception, match="canceling statement due to statement timeout"):
        runner.upgrade(slow)
    assert runner.current_revision(logs_target) == head
