"""scripts/deploy's flow with the real engine: preview, up, verify; twice at once; killed half-way.

The stack is tests/support/contract_stack.py: the post-provision steps with the real program's
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

from fixtures.cluster import Deployment, scalar
from migrations import runner
from migrations.shared.tree import LOGS, TREES
from model.names import DatabaseKey
from ops.deploy.deployed_stack import ENV_VAR
from ops.errors import ExitCode
from ops.paths import REPO_ROOT
from tests.support.fault_log import SeenFunction

pytestmark = pytest.mark.engine


@pytest.fixture
def project(tmp_path: Path) -> Iterator[dict[str, str]]:
    (tmp_path / "Pulumi.yaml").write_text("name: contract-stack\nruntime: python\n")
    (tmp_path / "state").mkdir()
    yield dict(
        os.environ,
        HEADHUNTER_PROJECT_DIR=str(tmp_path),
        PULUMI_BACKEND_URL=f"file://{tmp_path / 'state'}",
        PULUMI_CONFIG_PASSPHRASE="test-only",
    )


def start_deploy(deployment: Deployment, env: dict[str, str]) -> subprocess.Popen[str]:
    env = {**env, ENV_VAR: deployment.described().to_json()}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.contract_stack", "test"],
        cwd=REPO_ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=300)
    return process.returncode, output


def hold_logs_migrations(deployment: Deployment) -> psycopg.Connection:
    """Take the logs tree's advisory lock, so a deploy's logs migration waits inside its `up`."""
    connection = deployment.server.connect(deployment.databases[DatabaseKey.LOGS])
    assert scalar(connection, "SELECT pg_try_advisory_lock(%s)", (LOGS.advisory_lock_key,)) is True
    return connection


def wait_until_waiting_for_the_lock(deployment: Deployment, timeout_s: float = 60) -> None:
    """Until the logs migrator is connected: the deploy is inside its `up`, at the logs migration."""
    deadline = time.monotonic() + timeout_s
    with deployment.server.connect() as admin:
        while time.monotonic() < deadline:
            connected = scalar(
                admin,
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND datname = %s",
                (deployment.names.migrator(DatabaseKey.LOGS), deployment.databases[DatabaseKey.LOGS]),
            )
            if connected:
                return
            time.sleep(0.2)
    raise AssertionError("the deploy never reached the logs migration")


def at_head(deployment: Deployment) -> bool:
    return all(
        runner.current_revision(runner.Target(TREES[key.value], deployment.migrator_url(key)))
        == runner.head_revision(TREES[key.value])
        for key in DatabaseKey
    )


def test_a_deploy_migrates_and_verifies_and_a_second_changes_nothing(
    fresh_deployment: Deployment, project: dict[str, str]
) -> None:
    code, output = finish(start_deploy(fresh_deployment, project))
    assert code == ExitCode.OK, output[-4000:]
    assert "deploy: 4 to create" in output and "verified" in output and "0 differ" in output
    assert at_head(fresh_deployment)

    code, output = finish(start_deploy(fresh_deployment, project))
    assert code == ExitCode.OK, output[-4000:]
    assert "deploy: no changes" in output


@contextmanager
def a_deploy_held_in_the_logs_migration(
    deployment: Deployment, project: dict[str, str]
) -> Iterator[subprocess.Popen[str]]:
    """A deploy that holds the stack's lock, waiting for the logs tree's run lock until the block ends."""
    blocker = hold_logs_migrations(deployment)
    deploy = start_deploy(deployment, project)
    try:
        wait_until_waiting_for_the_lock(deployment)
        yield deploy
    finally:
        blocker.close()


@pytest.mark.fault(
    what="two deploys of one stack at once", recovery="nothing to recover: the first deploy's result stands"
)
def test_two_deploys_at_once_one_runs_the_other_names_the_lock(
    fresh_deployment: Deployment, project: dict[str, str], fault_seen: SeenFunction
) -> None:
    with a_deploy_held_in_the_logs_migration(fresh_deployment, project) as first:
        second_code, second_output = finish(start_deploy(fresh_deployment, project))
    first_code, first_output = finish(first)

    assert first_code == ExitCode.OK, first_output[-4000:]
    assert second_code == ExitCode.STACK_LOCKED, second_output[-4000:]
    assert "is locked by another deploy (" in second_output and "created by" in second_output
    assert "(pid " in second_output
    fault_seen("the second scripts/deploy", second_code, second_output, "is locked by another deploy")
    assert at_head(fresh_deployment)


@pytest.mark.slow
@pytest.mark.fault(
    what="a deploy is killed (SIGKILL of it and its children) while it migrates",
    recovery="the next deploy removes the dead deploy's lock (its process is gone), clears its pending "
    "operations and converges",
)
def test_a_killed_deploy_leaves_a_lock_the_next_deploy_recovers(
    fresh_deployment: Deployment, project: dict[str, str], fault_seen: SeenFunction
) -> None:
    with a_deploy_held_in_the_logs_migration(fresh_deployment, project) as doomed:
        kill_process_tree(doomed.pid)
        doomed.wait(timeout=30)

    code, output = finish(start_deploy(fresh_deployment, project))
    assert code == ExitCode.OK, output[-4000:]
    assert "removing the lock of a deploy that no longer runs" in output
    fault_seen("the next scripts/deploy", code, output, "removing the lock of a deploy that no longer runs")
    assert at_head(fresh_deployment)
    with fresh_deployment.server.connect(fresh_deployment.databases[DatabaseKey.LOGS]) as logs:
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
