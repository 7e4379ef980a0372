"""A rotation killed part way, a rotation against a server that cannot be reached, or while another deploy runs.

`scripts/rotate` is killed (SIGKILL of its process group, as a cancelled CI job gets) right after
the server holds the new password of the login not in use, and right after the stack's outputs
hand it out. At each moment the logins the outputs hand out and the one clients held before still
log in (never both logins of a pair unusable), and the next `scripts/deploy` converges: the new
login handed out, the old one still working, a preview with no change after it. Killed right after
it wrote the raised numbers into the stack file, before its deploy, it is run again and deploys
those numbers rather than raising them once more. A rotation while the server is down, or while
another deploy holds the stack, changes nothing: not the stack file, not the state, not a password.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from fixtures.clients import connection_urls, log_in, reread_urls
from fixtures.cluster import Server
from fixtures.fault_log import SeenFunction
from fixtures.project_stack import ProjectStack, cleanup, on_backend, project_stack
from fixtures.shared_backend import STATE_DATABASE, STATE_ROLE, SharedBackend
from infra.settings import NAMESPACE
from ops.deploy.state_backend import TURN_NAMESPACE, turn_key
from ops.errors import ExitCode
from ops.localpg import embedded

pytestmark = [pytest.mark.engine, pytest.mark.provider, pytest.mark.slow]
STANDBY = "rotated_app_b"  # the app's login not in use at rotation 1, renewed by the rotation to 2


@pytest.fixture
def rotated(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    project = project_stack(tmp_path, "rotated", "rotated")
    cleanup(project, server)
    up = project.script("ops.commands.up", project.stack)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    yield project
    embedded.start()
    cleanup(project, server)


def stored_password(server: Server, role: str) -> str:
    with server.connect() as admin:
        row = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    assert row is not None
    return str(row[0])


def new_password_is_set(server: Server, project: ProjectStack) -> Callable[[], bool]:
    before = stored_password(server, STANDBY)
    return lambda: stored_password(server, STANDBY) != before


def outputs_hand_it_out(server: Server, project: ProjectStack) -> Callable[[], bool]:
    def handed() -> bool:
        urls = reread_urls(project)  # None while the checkpoint is being rewritten
        return urls is not None and urlparse(urls["app"]).username == STANDBY

    return handed


def rotations(project: ProjectStack) -> dict[str, int]:
    """The stack file's passwordRotations."""
    stack_file = yaml.safe_load((project.folder / f"Pulumi.{project.stack}.yaml").read_text())
    return dict(stack_file["config"].get(f"{NAMESPACE}:passwordRotations") or {})


def app_is_raised_in_the_stack_file(server: Server, project: ProjectStack) -> Callable[[], bool]:
    """The stack file, whole, gives the app rotation 2 (`pulumi config set` truncates it before it writes it)."""

    def raised() -> bool:
        try:
            return rotations(project).get("app") == 2
        except (TypeError, KeyError, yaml.YAMLError):
            return False

    return raised


MOMENTS = {"the new password is set": new_password_is_set, "the outputs hand it out": outputs_hand_it_out}


def kill_rotation_when(project: ProjectStack, reached: Callable[[], bool]) -> None:
    rotation = project.start("ops.commands.rotate", project.stack)
    deadline = time.monotonic() + 300
    while not reached():
        assert rotation.poll() is None, "the rotation ended before the moment: " + rotation.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the rotation never reached the moment"
        time.sleep(0.02)
    os.killpg(rotation.pid, signal.SIGKILL)
    rotation.communicate(timeout=30)


@pytest.mark.fault(
    what="`scripts/rotate` is killed right after the server holds the new password of the login not in use, "
    "or right after the outputs hand it out",
    recovery="none needed by clients: both logins of each pair keep working; the next `scripts/deploy` finishes "
    "the rotation",
)
@pytest.mark.parametrize("moment", MOMENTS)
def test_a_killed_rotation_keeps_a_login_of_every_pair_and_converges_with_the_next_deploy(
    server: Server, rotated: ProjectStack, moment: str, fault_seen: SeenFunction
) -> None:
    held = connection_urls(rotated)
    kill_rotation_when(rotated, MOMENTS[moment](server, rotated))

    handed = reread_urls(rotated) or connection_urls(rotated)
    for key, url in (*held.items(), *handed.items()):
        assert log_in(url) is None, (key, urlparse(url).username, moment)
    fault_seen("the clients' logins, old and handed out", "all log in")

    finished = rotated.script("ops.commands.deploy", rotated.stack)
    assert finished.returncode == ExitCode.OK, finished.stdout[-3000:] + finished.stderr[-3000:]
    fault_seen("the next scripts/deploy", finished.returncode)
    after = connection_urls(rotated)
    assert urlparse(after["app"]).username == STANDBY
    assert [key for key, url in (*held.items(), *after.items()) if log_in(url) is not None] == []
    preview = rotated.pulumi("preview", "--expect-no-changes")
    assert preview.returncode == 0, preview.stdout[-3000:]


@pytest.mark.fault(
    what="`scripts/rotate` is killed right after it wrote the raised numbers into the stack file, before its deploy",
    recovery="run `scripts/rotate` again (or `scripts/deploy`): it deploys the numbers already written instead of "
    "raising them once more, so the login clients hold keeps its password",
)
def test_a_rotation_killed_after_writing_the_stack_file_is_finished_not_repeated_by_the_next_rotate(
    server: Server, rotated: ProjectStack, fault_seen: SeenFunction
) -> None:
    held = connection_urls(rotated)
    held_password = stored_password(server, "rotated_app_a")
    kill_rotation_when(rotated, app_is_raised_in_the_stack_file(server, rotated))
    assert rotations(rotated).get("app") == 2 and connection_urls(rotated) == held  # killed before its deploy

    again = rotated.script("ops.commands.rotate", rotated.stack)
    assert again.returncode == ExitCode.OK, again.stdout[-3000:] + again.stderr[-3000:]
    assert "rotate: app at rotation 2 is written but not deployed: deploying it hands out rotated_app_b" in again.stdout
    fault_seen("the next scripts/rotate", again.returncode)
    # Written one role at a time: those the kill left at 1 are raised now, and none goes past 2.
    assert rotations(rotated) == {"app": 2, "logs_writer": 2, "logs_reader": 2}
    after = connection_urls(rotated)
    assert urlparse(after["app"]).username == STANDBY
    assert stored_password(server, "rotated_app_a") == held_password  # the login clients held: unchanged
    failed = [key for key, url in (*held.items(), *after.items()) if log_in(url) is not None]
    assert failed == [], failed
    fault_seen("the clients' logins, held and handed out", "all log in")


@pytest.mark.fault(
    what="`scripts/rotate` while the server is down",
    recovery="start the server and rotate again: the stack file, the state and every password are as before",
)
def test_a_rotation_while_the_server_is_down_changes_nothing(
    server: Server, rotated: ProjectStack, fault_seen: SeenFunction
) -> None:
    stack_file = rotated.folder / f"Pulumi.{rotated.stack}.yaml"
    before = stack_file.read_text(), connection_urls(rotated), stored_password(server, STANDBY)
    embedded.stop()
    refused = rotated.script("ops.commands.rotate", rotated.stack)
    embedded.start()

    assert refused.returncode == ExitCode.SERVER_UNREACHABLE, refused.stdout[-3000:] + refused.stderr[-3000:]
    fault_seen("scripts/rotate", refused.returncode, refused.stderr, "error: ")
    assert (stack_file.read_text(), connection_urls(rotated), stored_password(server, STANDBY)) == before
    preview = rotated.pulumi("preview", "--expect-no-changes")
    assert preview.returncode == 0, preview.stdout[-3000:]


@pytest.fixture
def on_shared_backend(tmp_path: Path, server: Server, shared_backend: SharedBackend) -> Iterator[ProjectStack]:
    """A stack of the shared postgres:// backend, created, never deployed: a rotation refused first leaves it so."""
    project = on_backend(project_stack(tmp_path, "turned", "turned"), shared_backend)
    project.pulumi("stack", "rm", "--yes", "--force")  # a killed earlier run's
    created = project.pulumi("stack", "init")
    assert created.returncode == 0, created.stderr
    yield project
    project.pulumi("stack", "rm", "--yes", "--force")


@pytest.mark.shared_backend
@pytest.mark.fault(
    what="`scripts/rotate` while another deploy holds the stack's turn (shared backend)",
    recovery="wait for that deploy to finish and rotate again: the stack file was not touched",
)
def test_a_rotation_while_another_deploy_holds_the_stack_writes_nothing(
    server: Server, shared_backend: SharedBackend, on_shared_backend: ProjectStack, fault_seen: SeenFunction
) -> None:
    stack_file = on_shared_backend.folder / f"Pulumi.{on_shared_backend.stack}.yaml"
    before = stack_file.read_text()
    # The other deploy's session is the state role's, as every deploy's is (an admin's would hide its name).
    with server.connect(STATE_DATABASE, STATE_ROLE, shared_backend.password) as other_deploy:
        other_deploy.execute("SET application_name = 'headhunter deploy turned (the test)'")
        other_deploy.execute(
            "SELECT pg_advisory_lock(%s::int, %s::int)", (TURN_NAMESPACE, turn_key(on_shared_backend.stack))
        )
        refused = on_shared_backend.script("ops.commands.rotate", on_shared_backend.stack)
    assert refused.returncode == ExitCode.STACK_LOCKED, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert "is locked by another deploy (headhunter deploy turned (the test)" in refused.stderr, refused.stderr
    fault_seen("scripts/rotate", refused.returncode, refused.stderr, "is locked by another deploy")
    assert stack_file.read_text() == before
