"""A deploy killed at any moment of provisioning from an empty stack: the next one finishes the job alone.

The kill (SIGKILL of the deploy's whole process group, as a cancelled CI job gets) lands at several
points: among the first creates, among the grants, during the migration steps. The next
`scripts/up` must settle what the killed one left (its lock, its pending creates: the roles and
databases it made are adopted, not created twice) and end with exit 0 and a stack that verifies,
with no command typed in between.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.bystanders import detached_server, has_ended
from fixtures.cluster import Server
from fixtures.fault_log import SeenFunction
from fixtures.project_stack import (
    KILL_POINTS,
    ProjectStack,
    cleanup,
    leftover_objects,
    on_backend,
    project_stack,
    start_up,
)
from fixtures.shared_backend import SharedBackend
from ops.errors import ExitCode

pytestmark = [pytest.mark.engine, pytest.mark.provider, pytest.mark.slow]


@pytest.fixture
def killed(tmp_path: Path, server: Server, state_backend: SharedBackend | None) -> Iterator[ProjectStack]:
    project = on_backend(project_stack(tmp_path, "killed", "killed"), state_backend)
    cleanup(project, server)
    yield project
    cleanup(project, server)


def kill_while_deploying(project: ProjectStack, server: Server, moment: str) -> None:
    deploy = start_up(project, server, KILL_POINTS[moment])
    os.killpg(deploy.pid, signal.SIGKILL)
    deploy.communicate(timeout=30)


def stray_plugins(project: ProjectStack) -> list[str]:
    """Plugins of the killed deploy still running: Pulumi's programs with its state backend in their environment."""
    marker = f"PULUMI_BACKEND_URL={project.env['PULUMI_BACKEND_URL']}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append((proc / "cmdline").read_text().replace("\0", " ").strip())
        except OSError:
            continue
    return [command for command in found if "pulumi" in command]


@pytest.mark.fault(
    what="a deploy is killed (SIGKILL of its process group) while provisioning from an empty stack: after the "
    "first role, after a database, among the grants, during the logs migration",
    recovery="the next `scripts/up` or `scripts/deploy` removes the dead deploy's lock (on the shared backend with "
    "`pulumi cancel`, safe under the stack's turn), ends the plugins it left running (and no other process, such as a "
    "server started from the shell of `scripts/env`), imports the roles and databases "
    "it had created into the state by name, retries the rest, and exits 0 with a stack that verifies; no command in "
    "between",
)
@pytest.mark.parametrize(
    ("moment", "state_backend"),
    [(moment, "file") for moment in KILL_POINTS]
    # On the shared backend: killed while creating roles and databases, and in a migration step.
    + [("a runtime role got CONNECT", "postgres"), ("the logs tree is migrating", "postgres")],
    indirect=["state_backend"],
)
def test_the_next_deploy_converges_after_a_kill(
    server: Server, killed: ProjectStack, moment: str, fault_seen: SeenFunction
) -> None:
    kill_while_deploying(killed, server, moment)
    strays = stray_plugins(killed)

    # The operator's PostgreSQL server, started from the shell of `eval "$(scripts/env)"` on the stack's
    # backend and adopted by init, as the plugins are: the recovery must tell it from them.
    with detached_server(killed.env) as bystander:
        recovered = killed.script("ops.commands.up", killed.stack)
        assert not has_ended(bystander), "the recovery ended the operator's server: " + recovered.stdout[-3000:]
    assert recovered.returncode == ExitCode.OK, recovered.stdout[-4000:] + recovered.stderr[-2000:]
    fault_seen("the next scripts/up", recovered.returncode, recovered.stdout, "removing the lock of a deploy")
    assert "up: removing the lock of a deploy" in recovered.stdout, "the recovery speaks for the command that runs it"
    # The plugins the killed deploy left running are named and ended by the next one.
    assert stray_plugins(killed) == []
    assert not strays or "left running by the killed deploy" in recovered.stdout, recovered.stdout[-3000:]
    verified = killed.script("ops.commands.verify", killed.stack)
    assert verified.returncode == ExitCode.OK, verified.stdout[-3000:]
    fault_seen("scripts/verify", verified.returncode)
    again = killed.script("ops.commands.deploy", killed.stack)
    assert again.returncode == ExitCode.OK, again.stdout[-3000:]
    assert "deploy: no changes" in again.stdout
    destroyed = killed.pulumi("destroy", "--yes", "--skip-preview")
    assert destroyed.returncode == 0, destroyed.stdout[-3000:]
    assert leftover_objects(killed, server) == []


@pytest.mark.fault(
    what="`destroy` right after a killed deploy (whose lock and lost creates plain `pulumi destroy` stops at), "
    "with a role of the stack's prefix made by hand",
    recovery="`scripts/destroy STACK --yes` settles the killed deploy first, destroys what the stack created, and "
    "names what remains with the SQL that removes it (exit 3)",
)
def test_destroy_after_a_killed_deploy_removes_what_it_created_and_names_what_it_did_not(
    server: Server, killed: ProjectStack, fault_seen: SeenFunction
) -> None:
    """Plain `pulumi destroy` stops at the killed deploy's lock; scripts/destroy settles it first."""
    kill_while_deploying(killed, server, "a runtime role got CONNECT")
    assert leftover_objects(killed, server), "the killed deploy created nothing to destroy"
    with server.connect() as admin:
        admin.execute("CREATE ROLE killed_by_hand")

    destroyed = killed.script("ops.commands.destroy", killed.stack, "--yes")

    assert destroyed.returncode == ExitCode.VERIFY_FAILED, destroyed.stdout[-3000:] + destroyed.stderr[-2000:]
    assert 'left on the server: role killed_by_hand: DROP ROLE "killed_by_hand";' in destroyed.stdout
    assert leftover_objects(killed, server) == ["killed_by_hand"]
    fault_seen("scripts/destroy", destroyed.returncode, destroyed.stdout, "left on the server")
