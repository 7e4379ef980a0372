"""What the recovery after a killed deploy ends: the dead deploy's plugins, never the operator's processes.

The processes here are real and reparented to init, as a killed deploy's plugins are; the recovery's
own entry (recovery.end_orphaned_plugins, with the environment a deploy gives its engine) runs on
them directly. The killed deploys themselves, whose plugins the same call ends, are in
test_killed_provisioning.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.bystanders import detached_server, has_ended, is_running, parent_of, start_detached
from ops.deploy import deploy_processes, recovery
from ops.paths import REPO_ROOT
from ops.toolchain import pinned

STACK = "bystanders"
VENV_PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
WAITING = ["-c", "import time; time.sleep(600)"]


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """The environment of the operator's shell after `eval "$(scripts/env)"`, on the stack's backend."""
    return pinned.pulumi_env() | {"PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}"}


def dead_deploy_marker() -> str:
    """What a deploy of the stack that has since exited set in its engine's environment."""
    finished = subprocess.Popen(["true"])
    finished.wait()
    return f"{STACK}:{finished.pid}:1"


@pytest.fixture
def started() -> Iterator[list[int]]:
    """The pids a test starts, each ended afterwards if the recovery left it running."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if is_running(pid):
            subprocess.run(["kill", "-KILL", str(pid)], check=False)


def test_a_server_started_from_the_scripts_env_shell_survives_the_recovery(shell_env: dict[str, str]) -> None:
    """The issue's case: `pg_ctl start` in that shell, then the next `scripts/deploy` after a killed one."""
    with detached_server(shell_env) as postmaster:
        assert parent_of(postmaster) == 1, "reparented to init, as a killed deploy's plugins are"
        recovery.end_orphaned_plugins(STACK, shell_env)
        assert not has_ended(postmaster), "the operator's PostgreSQL server was ended by the recovery"


@pytest.mark.parametrize(
    ("what", "command", "marker"),
    [
        # The toolchain's own python, from the operator's shell: only the deploy's marker tells it apart.
        ("a job of the virtualenv's python from the scripts/env shell", [VENV_PYTHON, *WAITING], None),
        ("a plain program that a dead deploy's marker reached", ["sleep", "600"], "dead"),
        ("a job of the virtualenv's python with a marker no deploy wrote", [VENV_PYTHON, *WAITING], STACK),
    ],
)
def test_a_process_that_is_not_a_dead_deploys_plugin_survives_the_recovery(
    shell_env: dict[str, str], started: list[int], what: str, command: list[str], marker: str | None
) -> None:
    if marker is not None:
        shell_env = shell_env | {deploy_processes.DEPLOY_VARIABLE: dead_deploy_marker() if marker == "dead" else marker}
    started.append(start_detached(command, shell_env))
    recovery.end_orphaned_plugins(STACK, shell_env)
    assert not has_ended(started[0]), f"{what} was ended by the recovery"


def test_a_plugin_of_a_dead_deploy_is_ended_and_one_of_a_running_deploy_is_not(
    shell_env: dict[str, str], started: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    """The virtualenv's python as the language host starts it, with the marker a deploy gives its engine."""
    running = shell_env | {deploy_processes.DEPLOY_VARIABLE: deploy_processes.deploy_marker(STACK)}
    dead = shell_env | {deploy_processes.DEPLOY_VARIABLE: dead_deploy_marker()}
    other_stack = dead | {deploy_processes.DEPLOY_VARIABLE: dead[deploy_processes.DEPLOY_VARIABLE].replace(STACK, "x")}
    for env in (dead, running, other_stack):
        started.append(start_detached([VENV_PYTHON, *WAITING], env))
    orphan, ours, of_another_stack = started

    recovery.end_orphaned_plugins(STACK, shell_env)

    assert has_ended(orphan), "the dead deploy's plugin still runs"
    assert f"(pid {orphan}), left running by the killed deploy" in capsys.readouterr().out
    assert not has_ended(ours), "a plugin of the deploy that runs (this one) was ended"
    assert not has_ended(of_another_stack), "a plugin of another stack's deploy was ended"
