"""scripts/deploy's flow with the real engine: preview, up, verify; twice at once; killed half-way.

The stack is fixtures/contract_stack.py: the migration steps with the real program's
outputs, on databases provisioned from the model as plain SQL (the provider plugin is not needed).
To hold a deploy in the middle of its `up`, a test holds the logs tree's advisory lock: the
migration step then waits for it, as it would for another deploy's migration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from fixtures.cluster import ProvisionedDatabases, scalar
from fixtures.contract_stack import contract_project
from fixtures.fault_log import SeenFunction
from migrations import runner
from migrations.shared.tree import LOGS, TREES
from model.names import DatabaseKey
from ops.deploy.deployed_stack import ENV_VAR
from ops.errors import ExitCode
from ops.paths import REPO_ROOT

pytestmark = pytest.mark.engine


@pytest.fixture
def project(tmp_path: Path) -> dict[str, str]:
    return contract_project(tmp_path)


def start_deploy(provisioned: ProvisionedDatabases, env: dict[str, str]) -> subprocess.Popen[str]:
    env = {**env, ENV_VAR: provisioned.described().to_json()}
    return subprocess.Popen(
        [sys.executable, "-m", "fixtures.contract_stack", "test"],
        cwd=REPO_ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=300)
    return process.returncode, output


def hold_logs_migrations(provisioned: ProvisionedDatabases) -> psycopg.Connection:
    """Take the logs tree's advisory lock, so a deploy's logs migration waits inside its `up`."""
    connection = provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS])
    assert scalar(connection, "SELECT pg_try_advisory_lock(%s)", (LOGS.advisory_lock_key,)) is True
    return connection


def wait_until_waiting_for_the_lock(provisioned: ProvisionedDatabases, timeout_s: float = 60) -> None:
    """Until the logs migrator is connected: the deploy is inside its `up`, at the logs migration."""
    deadline = time.monotonic() + timeout_s
    with provisioned.server.connect() as admin:
        while time.monotonic() < deadline:
            connected = scalar(
                admin,
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND datname = %s",
                (provisioned.names.migrator(DatabaseKey.LOGS), provisioned.databases[DatabaseKey.LOGS]),
            )
            if connected:
                return
            time.sleep(0.2)
    raise AssertionError("the deploy never reached the logs migration")


def at_head(provisioned: ProvisionedDatabases) -> bool:
    return all(
        runner.current_revision(runner.Target(TREES[key.value], provisioned.migrator_url(key)))
        == runner.head_revision(TREES[key.value])
        for key in DatabaseKey
    )


def test_a_deploy_migrates_and_verifies_and_a_second_changes_nothing(
    provisioned: ProvisionedDatabases, project: dict[str, str]
) -> None:
    code, output = finish(start_deploy(provisioned, project))
    assert code == ExitCode.OK, output[-4000:]
    assert "deploy: 4 to create" in output and "verified" in output and "0 differ" in output
    assert at_head(provisioned)

    code, output = finish(start_deploy(provisioned, project))
    assert code == ExitCode.OK, output[-4000:]
    assert "deploy: no changes" in output


@contextmanager
def a_deploy_held_in_the_logs_migration(
    provisioned: ProvisionedDatabases, project: dict[str, str]
) -> Iterator[subprocess.Popen[str]]:
    """A deploy that holds the stack's lock, waiting for the logs tree's run lock until the block ends."""
    blocker = hold_logs_migrations(provisioned)
    deploy = start_deploy(provisioned, project)
    try:
        wait_until_waiting_for_the_lock(provisioned)
        yield deploy
    finally:
        blocker.close()


@pytest.mark.fault(
    what="two deploys of one stack at once", recovery="nothing to recover: the first deploy's result stands"
)
def test_two_deploys_at_once_one_runs_the_other_names_the_lock(
    provisioned: ProvisionedDatabases, project: dict[str, str], fault_seen: SeenFunction
) -> None:
    with a_deploy_held_in_the_logs_migration(provisioned, project) as first:
        second_code, second_output = finish(start_deploy(provisioned, project))
    first_code, first_output = finish(first)

    assert first_code == ExitCode.OK, first_output[-4000:]
    assert "waiting for another migration run of the logs tree" in first_output, "what the first deploy waited for"
    assert second_code == ExitCode.STACK_LOCKED, second_output[-4000:]
    assert "is locked by another deploy (" in second_output and "created by" in second_output
    assert "(pid " in second_output
    fault_seen("the second scripts/deploy", second_code, second_output, "is locked by another deploy")
    assert at_head(provisioned)


@pytest.mark.slow
@pytest.mark.fault(
    what="a deploy is killed (SIGKILL of it and its children) while it migrates",
    recovery="the next deploy removes the dead deploy's lock (its process is gone), clears its pending "
    "operations and converges",
)
def test_a_killed_deploy_leaves_a_lock_the_next_deploy_recovers(
    provisioned: ProvisionedDatabases, project: dict[str, str], fault_seen: SeenFunction
) -> None:
    with a_deploy_held_in_the_logs_migration(provisioned, project) as doomed:
        kill_process_tree(doomed.pid)
        doomed.wait(timeout=30)

    code, output = finish(start_deploy(provisioned, project))
    assert code == ExitCode.OK, output[-4000:]
    assert "removing the lock of a deploy that no longer runs" in output
    fault_seen("the next scripts/deploy", code, output, "removing the lock of a deploy that no longer runs")
    assert at_head(provisioned)
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        assert scalar(logs, "SELECT count(*) FROM alembic_version_logs") == 1


def kill_process_tree(pid: int) -> None:
    """SIGKILL a process and every descendant, as a cancelled CI job's runner does; wait until they are gone."""
    os.kill(pid, signal.SIGSTOP)  # no new children while we collect them
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for child in children:
        kill_process_tree(int(child))
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"
