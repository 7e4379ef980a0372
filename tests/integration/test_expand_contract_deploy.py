"""Expand/contract through the real engine and program: scripts/up of a stack running the worked example's
tree copy (fixtures/expand_contract) applies the expand revisions and its preflight lists the contract
revision as waiting; once `pulumi config set headhunter-db:contractThrough` lets it, the next deploy runs it.

scripts/up rather than scripts/deploy: deploy's verify holds each tree to its head
(tests/infra/test_placement.py), where a stack whose contract revision waits is not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster import Server
from fixtures.expand_contract import CHECK_REVISION, CONTRACT_REVISION, EXPAND_REVISION, example_trees
from fixtures.project_stack import ProjectStack, cleanup, project_stack
from migrations.shared.heads import MIGRATIONS_COPY_ENV_VAR
from migrations.shared.phases import CONTRACT_KEY
from ops.errors import ExitCode

pytestmark = [
    pytest.mark.engine,
    pytest.mark.provider,
    pytest.mark.timeout(900),
]  # three deploys of a whole stack: several minutes


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
    first = expanding.script("ops.commands.up", expanding.stack)
    output = first.stdout + first.stderr
    assert first.returncode == ExitCode.OK, output[-4000:]
    assert main_revision(server) == CHECK_REVISION
    assert f"to run: {EXPAND_REVISION}" in output or f", {EXPAND_REVISION}," in output, output[-4000:]
    assert waiting_line(output), f"scripts/up does not list {CONTRACT_REVISION} waiting: {output[-4000:]}"

    # Plain `pulumi preview`: the engine's preview of the migration step says the same, and nothing runs.
    preview = expanding.pulumi("preview", "--diff")
    assert preview.returncode == 0, (preview.stdout + preview.stderr)[-4000:]
    assert waiting_line(preview.stdout + preview.stderr), (preview.stdout + preview.stderr)[-4000:]
    assert main_revision(server) == CHECK_REVISION, "the key unset, the contract revision waits"

    set_key = expanding.pulumi("config", "set", CONTRACT_KEY, CONTRACT_REVISION)
    assert set_key.returncode == 0, set_key.stderr
    # Plain `pulumi up`, as a pipeline may run it: scripts/up's role check writes the previous version's
    # columns (ops/deploy/role_check.py), which the contract revision drops.
    contracted = expanding.pulumi("up", "--yes", "--skip-preview")
    assert contracted.returncode == 0, (contracted.stdout + contracted.stderr)[-4000:]
    assert main_revision(server) == CONTRACT_REVISION
    with server.connect("expanding_db") as main:
        rows = main.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'user_invitations'"
        ).fetchall()
    columns = {row[0] for row in rows}
    assert "invited_by" not in columns and {"inviter_id", "email_normalized"} <= columns


def waiting_line(output: str) -> list[str]:
    return [line for line in output.splitlines() if f"waiting {CONTRACT_REVISION}" in line and CONTRACT_KEY in line]
