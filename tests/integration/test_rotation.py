"""Password rotation with two logins per role, through the real engine and provider, with real clients.

Clients log in every 20 ms and re-read the stack's outputs every second while every login of the
stack is rotated four times in a row (each of a role's two logins gets a new password twice): none may
fail. A client that keeps the URL it started with works through one rotation and fails after the
second, with PostgreSQL's own message. A number lowered or skipped by hand is refused before anything
changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from fixtures import observed
from fixtures.clients import ReconnectingClients, connection_urls, log_in
from fixtures.cluster import Server
from fixtures.one_login import one_login_stack, use_program
from fixtures.project_stack import ProjectStack, cleanup, project_stack, set_config
from ops.errors import ExitCode
from ops.paths import REPO_ROOT

pytestmark = [pytest.mark.engine, pytest.mark.provider, pytest.mark.slow]

RUNTIME_LOGINS = ("app", "logs_writer", "logs_reader")
# Four: each login of a pair is rotated twice, both turns of the pair twice over. Ten rotations (300 s, the
# suite's slowest test) checked nothing more.
ROTATIONS = 4


@pytest.fixture
def rotating(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    project = project_stack(tmp_path, "rotating", "rotating")
    cleanup(project, server)
    yield project
    cleanup(project, server)


def rotate(project: ProjectStack, *logins: str) -> None:
    rotated = project.script("ops.commands.rotate", project.stack, *logins)
    assert rotated.returncode == ExitCode.OK, rotated.stdout[-3000:] + rotated.stderr[-3000:]


def test_repeated_rotations_of_every_login_fail_no_login_of_clients_that_reread_the_outputs(
    server: Server, rotating: ProjectStack
) -> None:
    up = rotating.script("ops.commands.up", rotating.stack)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    kept = connection_urls(rotating)  # a client that never re-reads them
    handed: list[str] = []
    with observed.statements_logged(server) as logged, ReconnectingClients(rotating, RUNTIME_LOGINS) as clients:
        for rotation in range(1, ROTATIONS + 1):
            rotate(rotating)
            handed.append(str(urlparse(connection_urls(rotating)["app"]).username))
            stale = {key: log_in(kept[key]) for key in RUNTIME_LOGINS}
            if rotation == 1:
                assert stale == dict.fromkeys(RUNTIME_LOGINS), stale  # through one rotation: still in
            if rotation == 2:
                for key, failure in stale.items():
                    assert failure is not None and "password authentication failed" in failure, (key, failure)
        clients.wait_for_reread()
    assert handed == ["rotating_app_b", "rotating_app_a"] * (ROTATIONS // 2)
    for key, tally in clients.tallies.items():
        assert tally.failures == [], (key, tally.failures[:5])
        assert tally.logins > 50 * ROTATIONS, (key, tally.logins)  # it kept logging in the whole time
    passwords = [str(urlparse(url).password) for url in (*kept.values(), *connection_urls(rotating).values())]
    assert [password for password in passwords if password in logged[0]] == []


def test_a_rotation_of_one_login_changes_no_other_password(rotating: ProjectStack) -> None:
    up = rotating.script("ops.commands.up", rotating.stack)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    before = connection_urls(rotating)
    rotate(rotating, "logs_writer")
    after = connection_urls(rotating)
    assert {key for key in before if before[key] != after[key]} == {"logs_writer"}
    preview = rotating.pulumi("preview", "--expect-no-changes")
    assert preview.returncode == 0, preview.stdout[-3000:]  # a deploy that rotates nothing changes nothing

    # A number lowered by hand would renew logs_writer_b, the login in use; one skipped, both logins at once.
    for written, says in ((1, "gives logs_writer 1, lower than 2"), (4, "gives logs_writer 4, more than one above 2")):
        set_config(rotating, passwordRotations={"logs_writer": written})
        refused = rotating.script("ops.commands.deploy", rotating.stack)
        assert refused.returncode == ExitCode.BAD_INPUT, refused.stdout[-3000:] + refused.stderr[-3000:]
        assert says in refused.stderr and "Nothing was changed." in refused.stderr, refused.stderr
        assert connection_urls(rotating) == after


def test_a_login_the_stack_does_not_rotate_is_refused_and_nothing_changes(rotating: ProjectStack) -> None:
    up = rotating.script("ops.commands.up", rotating.stack)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    before = (rotating.folder / f"Pulumi.{rotating.stack}.yaml").read_text()
    refused = rotating.script("ops.commands.rotate", rotating.stack, "app", "main_migrator")
    assert refused.returncode == ExitCode.BAD_INPUT, refused.stdout + refused.stderr
    assert "main_migrator: not a login of stack rotating that rotates" in refused.stderr
    assert (rotating.folder / f"Pulumi.{rotating.stack}.yaml").read_text() == before


def test_a_stack_deployed_with_one_login_per_role_moves_to_two_with_no_failed_login(
    server: Server, rotating: ProjectStack, tmp_path: Path
) -> None:
    one_login_stack(rotating, tmp_path)
    kept = connection_urls(rotating)
    assert {str(urlparse(kept[key]).username) for key in RUNTIME_LOGINS} == {f"rotating_{k}" for k in RUNTIME_LOGINS}

    use_program(rotating, REPO_ROOT)  # today's program, from here on
    with ReconnectingClients(rotating, RUNTIME_LOGINS) as clients:
        moved = rotating.script("ops.commands.deploy", rotating.stack)  # deploys and verifies
        assert moved.returncode == ExitCode.OK, moved.stdout[-3000:] + moved.stderr[-3000:]
        handed = connection_urls(rotating)
        assert {str(urlparse(handed[key]).username) for key in RUNTIME_LOGINS} == {
            f"rotating_{key}_a" for key in RUNTIME_LOGINS
        }
        assert {key: log_in(kept[key]) for key in RUNTIME_LOGINS} == dict.fromkeys(RUNTIME_LOGINS)  # still in
        rotate(rotating)  # the first rotation after the move closes the roles' own logins
        clients.wait_for_reread()
    for key, tally in clients.tallies.items():
        assert tally.failures == [], (key, tally.failures[:5])
    for key in RUNTIME_LOGINS:
        failure = log_in(kept[key])
        assert failure is not None and "is not permitted to log in" in failure, (key, failure)
