"""`scripts/migrate` when the stack's server does not answer: exit 5 at once, not a failed migration."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from fixtures.fault_log import SeenFunction
from migrations import runner
from migrations.shared.tree import TREES
from ops.commands import migrate
from ops.errors import ExitCode, UserError
from ops.localpg import embedded


@pytest.mark.fault(
    what="`scripts/migrate` while the stack's server is stopped or unreachable",
    recovery="start the server (or correct host and port) and run again; no revision ran",
)
@pytest.mark.parametrize("action", [["upgrade"], ["current"], ["history"]])
def test_migrate_names_the_server_that_does_not_answer_and_exits_5(
    action: list[str], monkeypatch: pytest.MonkeyPatch, fault_seen: SeenFunction
) -> None:
    port = embedded.free_port()  # nothing listens there
    url = make_url(f"postgresql+psycopg://headhunter_logs_migrator:not-printed@127.0.0.1:{port}/headhunter_logs")
    target = runner.Target(TREES["logs"], url, "headhunter_logs")
    # The one thing not read from a deployed stack: its outputs, which name the server.
    monkeypatch.setattr(migrate, "targets", lambda _stack, _which: [target])
    with pytest.raises(UserError) as refused:
        migrate.main(["dev", "logs", *action])
    message = str(refused.value)
    assert refused.value.exit_code == ExitCode.SERVER_UNREACHABLE
    assert f"at 127.0.0.1:{port} as the logs tree's migrator (Connection refused)" in message
    assert "scripts/localpg start" in message and "nothing was changed" in message
    assert "not-printed" not in message
    fault_seen(f"scripts/migrate dev logs {action[0]}", refused.value.exit_code, message, "cannot connect")
