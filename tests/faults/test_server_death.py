"""The server dies (an immediate stop, as a crash or a failover does) in the middle of a deploy or a
scheduled maintenance.

The command that was running fails with an exit code a pipeline can act on and no traceback; once
the server is back, the next `scripts/up` converges alone: what the server had committed survives
(the embedded server is durable), and the deploy picks up from there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster import ProvisionedDatabases, Server, scalar
from fixtures.fault_log import SeenFunction
from fixtures.project_stack import KILL_POINTS, ProjectStack, cleanup, leftover_objects, project_stack, start_up
from infra.settings import default_log_lifecycle
from migrations import runner
from migrations.shared.tree import LOGS as LOGS_TREE
from model.names import DatabaseKey
from ops.commands import maintain
from ops.errors import ExitCode, run_main
from ops.localpg import embedded

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
@pytest.mark.engine
@pytest.mark.provider
@pytest.mark.slow
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


def crash_once_maintenance_waits(provisioned: ProvisionedDatabases) -> None:
    """Stops the server once scripts/maintain's session polls for the logs tree's run lock."""
    migrator = provisioned.names.migrator(DatabaseKey.LOGS)
    deadline = time.monotonic() + 60
    with provisioned.server.connect() as connection:
        while not scalar(connection, "SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = %s", (migrator,)):
            assert time.monotonic() < deadline, "maintenance never connected"
            time.sleep(0.05)
    time.sleep(1.0)  # past the placement check, into the lock's polls (every 0.5 s)
    crash_server()


@pytest.mark.fault(
    what="the server stops at once (`pg_ctl -m immediate`) while `scripts/maintain` runs",
    recovery="start the server and run scripts/maintain again: it makes and drops what this run did not",
)
def test_maintain_on_a_server_that_dies_exits_5_with_one_line(
    provisioned: ProvisionedDatabases, capsys: pytest.CaptureFixture[str], fault_seen: SeenFunction
) -> None:
    """Without the engine: the stack's outputs are the one thing not read, the logs database is real."""
    target = provisioned.migration_target(DatabaseKey.LOGS)
    runner.upgrade(target)
    password = str(target.url.password)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(maintain, "deployed_logs", lambda _stack: (target, default_log_lifecycle()))
        # Another run's turn on the logs tree: maintenance waits for it, so the crash comes while it runs.
        holder = provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS])
        holder.execute("SELECT pg_advisory_lock(%s)", (LOGS_TREE.advisory_lock_key,))
        crasher = threading.Thread(target=crash_once_maintenance_waits, args=(provisioned,), daemon=True)
        crasher.start()
        try:
            with pytest.raises(SystemExit) as exited:
                run_main(lambda: maintain.main(["dev"]))
        finally:
            crasher.join(timeout=60)
            holder.close()
            err = capsys.readouterr().err  # what the command printed, before the server's start says its own
            embedded.start()
    assert exited.value.code == ExitCode.SERVER_UNREACHABLE, err
    assert "Traceback" not in err and password not in err, err
    said = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(said) == 1 and err.rstrip().endswith(said[0]), err
    assert said[0].startswith("error: PostgreSQL went away during the log partition maintenance of stack 'dev'")
    assert "run scripts/maintain dev again" in said[0]
    fault_seen("scripts/maintain", exited.value.code, err, "error: ")
