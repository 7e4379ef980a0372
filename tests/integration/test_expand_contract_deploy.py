"""Expand/contract through the real engine and program, as a pipeline runs it: scripts/deploy of a brand-new
stack (made with `pulumi stack init`, never deployed) running the worked example's tree copy
(fixtures/expand_contract) applies the expand revisions, lists the contract revision as waiting and
verifies the stack at the plan's target; once `pulumi config set headhunter-db:contractThrough` lets it,
the next scripts/deploy runs it and verifies, and scripts/up's role check still writes after the contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster import Server
from fixtures.expand_contract import CHECK_REVISION, CONTRACT_REVISION, EXPAND_REVISION, example_trees
from fixtures.project_stack import ProjectStack, cleanup, project_stack
from infra.migration_preview import NO_LOGIN_YET
from migrations.shared.heads import MIGRATIONS_COPY_ENV_VAR
from migrations.shared.phases import CONTRACT_KEY
from ops.errors import ExitCode

pytestmark = [
    pytest.mark.engine,
    pytest.mark.provider,
    pytest.mark.timeout(1200),
]  # two deploys (preview, up, verify), a preview and an up of a whole stack: several minutes on a busy machine


@pytest.fixture
def expanding(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    (tmp_path / "project").mkdir()
    project = project_stack(tmp_path / "project", "expanding", "expanding")
    project.env[MIGRATIONS_COPY_ENV_VAR] = str(example_trees(tmp_path / "trees"))
    cleanup(project, server)  # a run that was killed before its own cleanup
    yield project
    cleanup(project, server)


def main_revision(server: Server) -> str:
    with server.connect("expanding_db") as main:
        row = main.execute("SELECT version_num FROM alembic_version_main").fetchone()
    assert row is not None
    return str(row[0])


def test_contract_revisions_wait_for_the_stack_key_and_run_once_it_is_set(
    server: Server, expanding: ProjectStack
) -> None:
    # A stack that exists but was never deployed: the engine's preview of each migration step cannot log in
    # as the migrator, whose role this deploy makes, so every revision is pending and judged.
    assert expanding.pulumi("stack", "init").returncode == 0
    first = expanding.script("ops.commands.deploy", expanding.stack)
    output = first.stdout + first.stderr
    assert first.returncode == ExitCode.OK, output[-4000:]
    assert main_revision(server) == CHECK_REVISION
    assert NO_LOGIN_YET in output, f"the engine's preview does not say why all is pending: {output[-4000:]}"
    assert f"to run: {EXPAND_REVISION}" in output or f", {EXPAND_REVISION}," in output, output[-4000:]
    assert waiting_line(output), f"scripts/deploy does not list {CONTRACT_REVISION} waiting: {output[-4000:]}"
    assert " 0 differ" in output, output[-4000:]  # verify holds the main tree to the plan's target, not its head

    # Plain `pulumi preview`: the engine's preview of the migration step says the same, and nothing runs.
    preview = expanding.pulumi("preview", "--diff")
    assert preview.returncode == 0, (preview.stdout + preview.stderr)[-4000:]
    assert waiting_line(preview.stdout + preview.stderr), (preview.stdout + preview.stderr)[-4000:]
    assert main_revision(server) == CHECK_REVISION, "the key unset, the contract revision waits"

    set_key = expanding.pulumi("config", "set", CONTRACT_KEY, CONTRACT_REVISION)
    assert set_key.returncode == 0, set_key.stderr
    contracted = expanding.script("ops.commands.deploy", expanding.stack)
    output = contracted.stdout + contracted.stderr
    assert contracted.returncode == ExitCode.OK, output[-4000:]
    assert main_revision(server) == CONTRACT_REVISION
    assert f"to run: {CONTRACT_REVISION}" in output and " 0 differ" in output, output[-4000:]
    with server.connect("expanding_db") as main:
        rows = main.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'user_invitations'"
        ).fetchall()
    columns = {row[0] for row in rows}
    assert "invited_by" not in columns and {"inviter_id", "email_normalized"} <= columns

    # scripts/up's role check writes user_invitations as the app: with the columns the contract left.
    checked = expanding.script("ops.commands.up", expanding.stack)
    assert checked.returncode == ExitCode.OK, (checked.stdout + checked.stderr)[-4000:]
    assert "checked    the app can write user_invitations" in checked.stdout


def waiting_line(output: str) -> list[str]:
    return [line for line in output.splitlines() if f"waiting {CONTRACT_REVISION}" in line and CONTRACT_KEY in line]
