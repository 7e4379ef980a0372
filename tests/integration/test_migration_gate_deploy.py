"""The migration gate on every deploy path, with the project's program, the real engine and provider.

A deployed dev-like stack (fixtures/project_stack.py) is given a copy of both trees
(HEADHUNTER_MIGRATIONS_DIR) whose main tree gains a revision that builds an index without
CONCURRENTLY on user_invitations, a table that holds the application's rows. scripts/deploy stops in
its preflight with exit 9, plain `pulumi up` in the project folder stops at its preview, each naming
the revision, the statement, the rule and the safe rewrite, and nothing changes on the server. The
same revision with a waiver is printed by the preview, then deployed.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from fixtures import catalog
from fixtures.cluster import Server
from fixtures.project_stack import ProjectStack, cleanup, project_stack
from fixtures.revisions import revision_file
from migrations.gate import RULES
from migrations.shared.heads import MIGRATIONS_COPY_ENV_VAR, declared_head, default_location
from migrations.shared.tree import TREES
from ops.errors import ExitCode

pytestmark = [pytest.mark.engine, pytest.mark.provider, pytest.mark.slow]
RULE = "index-not-concurrent"
STATEMENT = "CREATE INDEX IF NOT EXISTS ix_user_invitations_email ON user_invitations (email)"
UNSAFE_INDEX = revision_file(
    "main_9001",
    "An index on user_invitations built the blocking way.",
    f'op.execute("{STATEMENT}")',
    'op.execute("DROP INDEX IF EXISTS ix_user_invitations_email")',
)
REASON = "the test's user_invitations holds no row: the build takes milliseconds"
WAIVER = {"rule": RULE, "statement": "ix_user_invitations_email", "reason": REASON}
WAIVED_INDEX = f"{UNSAFE_INDEX}\n\ngate_waivers = [{WAIVER!r}]\n"  # the waiver form of migrations/gate/waivers.py


@pytest.fixture
def gated(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    (tmp_path / "project").mkdir()
    project = project_stack(tmp_path / "project", "gated", "gated")
    cleanup(project, server)  # a run that was killed before its own cleanup
    yield project
    cleanup(project, server)


def with_trees(project: ProjectStack, folder: Path, revision: str) -> ProjectStack:
    """The project deploying a copy of both trees whose main tree gains `revision` after its head."""
    for key in TREES:
        shutil.copytree(default_location(key), folder / key, dirs_exist_ok=True)
    head = declared_head(default_location("main"))
    (folder / "main" / "versions" / "main_9001_index.py").write_text(revision.replace("{down}", head))
    return dataclasses.replace(project, env={**project.env, MIGRATIONS_COPY_ENV_VAR: str(folder)})


def server_side(server: Server, project: ProjectStack) -> dict[str, object]:
    """What a refused deploy must leave as it was: each tree's version row, its tables and index definitions."""
    seen: dict[str, object] = {}
    for key, database in zip(TREES, project.databases, strict=True):
        with server.connect(database) as session:
            version = sql.SQL("SELECT version_num FROM {}").format(sql.Identifier(TREES[key].version_table))
            seen[key] = (
                session.execute(version).fetchall(),
                catalog.tables(session),
                sorted(session.execute(catalog.INDEX_DEFINITIONS).fetchall()),
            )
    return seen


def names_the_refusal(output: str) -> bool:
    return all(part in output for part in ("main_9001", STATEMENT, RULE, RULES[RULE].rewrite, "REFUSED"))


def test_a_blocking_index_stops_scripts_deploy_and_plain_pulumi_up_at_the_preview_and_a_waiver_is_printed(
    server: Server, gated: ProjectStack, tmp_path: Path
) -> None:
    up = gated.script("ops.commands.up", gated.stack)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    before = server_side(server, gated)

    unsafe = with_trees(gated, tmp_path / "unsafe-trees", UNSAFE_INDEX)
    deploy = unsafe.script("ops.commands.deploy", unsafe.stack)
    assert deploy.returncode == ExitCode.MIGRATION_REFUSED, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    assert names_the_refusal(deploy.stderr), deploy.stderr[-3000:]
    assert "preview of stack" not in deploy.stdout  # stopped in the preflight, before the engine started
    assert server_side(server, gated) == before

    plain_up = unsafe.pulumi("up", "--yes")
    assert plain_up.returncode != 0, plain_up.stdout[-3000:]
    assert names_the_refusal(plain_up.stdout + plain_up.stderr), plain_up.stdout[-3000:] + plain_up.stderr[-3000:]
    assert "Updating (" not in plain_up.stdout  # the preview failed: the update never started
    assert server_side(server, gated) == before

    waived = with_trees(gated, tmp_path / "waived-trees", WAIVED_INDEX)
    preview = waived.pulumi("preview")
    assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr[-3000:]
    assert f"main_9001: {RULE} waived" in preview.stdout + preview.stderr and REASON in preview.stdout + preview.stderr
    deploy = waived.script("ops.commands.deploy", waived.stack)
    assert deploy.returncode == ExitCode.OK, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    assert f"main_9001: {RULE} waived" in deploy.stdout, deploy.stdout[-3000:]
    with server.connect(gated.databases[0]) as main:
        assert "ix_user_invitations_email" in catalog.indexes(main)
