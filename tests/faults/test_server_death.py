"""The server dies (an immediate stop, as a crash or a failover does) in the middle of a deploy.

The deploy that was running fails with an exit code a pipeline can act on and no traceback; once
the server is back, the next `scripts/up` converges alone: what the server had committed survives
(the embedded server is durable), and the deploy picks up from there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster import Server
from fixtures.fault_log import SeenFunction
from fixtures.project_stack import KILL_POINTS, ProjectStack, cleanup, leftover_objects, project_stack, start_up
from ops.errors import ExitCode
from ops.localpg import embedded

pytestmark = [pytest.mark.engine, pytest.mark.provider, pytest.mark.slow]
MOMENTS = ("a database exists", "the logs tree is migrating")


@pytest.fixture
def crashed(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    project = project_stack(tmp_path, "killed", "killed")  # the same names, so the same moments apply
    cleanup(project, server)
    yield project
    embedded.start()
    cleanup(project, server)


def crash_server() -> None:
    pg_ctl = str(embedded.find_bin_dir() / "pg_ctl")
    embedded.run_as_server([pg_ctl, "stop", "-D", str(embedded.data_dir()), "-m", "immediate"], capture_output=True)


@pytest.mark.fault(
    what="the server stops at once (`pg_ctl -m immediate`: a crash or a failover) while a deploy provisions "
    "or migrates",
    recovery="start the server; the next `scripts/up` converges: what the server committed survives (the embedded "
    "server is durable), the rest is redone",
)
@pytest.mark.parametrize("moment", MOMENTS)
def test_a_deploy_outlives_a_server_crash(
    server: Server, crashed: ProjectStack, moment: str, fault_seen: SeenFunction
) -> None:
    deploy = start_up(crashed, server, KILL_POINTS[moment])
    crash_server()
    _, err = deploy.communicate(timeout=300)
    assert deploy.returncode in (ExitCode.SERVER_UNREACHABLE, ExitCode.MIGRATION_FAILED), err[-3000:]
    assert "PostgreSQL went away" in err or "a migration failed" in err, err[-3000:]
    assert "Traceback" not in err, err[-3000:]  # our own message; the engine's stream is the engine's
    fault_seen("scripts/up", deploy.returncode, err, "error: ")

    embedded.start()
    recovered = crashed.script("ops.commands.up", crashed.stack)
    assert recovered.returncode == ExitCode.OK, recovered.stdout[-4000:] + recovered.stderr[-2000:]
    fault_seen("the next scripts/up", recovered.returncode)
    verified = crashed.script("ops.commands.verify", crashed.stack)
    assert verified.returncode == ExitCode.OK, verified.stdout[-3000:]
    destroyed = crashed.pulumi("destroy", "--yes", "--skip-preview")
    assert destroyed.returncode == 0, destroyed.stdout[-3000:]
    assert leftover_objects(crashed, server) == []
