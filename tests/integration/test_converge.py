"""A tree converges to its target whatever the state says: scripts/deploy's flow with the real engine.

The stack is fixtures/contract_stack.py (the migration steps and the log maintenance with the real
program's outputs, on databases provisioned from the model as plain SQL), deployed by
ops.commands.deploy's own preview, up and verify. The migration step's preview reads each
database's revision as its migrator (infra/migration_preview.py): a database behind its state (a
backup restored) is brought to head by the next deploy; one at a revision this checkout's tree
does not hold is refused by name, and nothing changes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from psycopg import sql

from fixtures import catalog
from fixtures.cluster import ProvisionedDatabases
from fixtures.contract_stack import contract_project
from migrations import runner
from migrations.shared.tree import LOGS, MAIN
from model.names import DatabaseKey
from ops.deploy.deployed_stack import ENV_VAR
from ops.errors import ExitCode
from ops.paths import REPO_ROOT

pytestmark = pytest.mark.engine
DEPLOY_TIMEOUT_S = 300


@pytest.fixture
def project(tmp_path: Path) -> dict[str, str]:
    return contract_project(tmp_path)


def deploy(provisioned: ProvisionedDatabases, env: dict[str, str]) -> tuple[int, str]:
    """scripts/deploy's flow on the contract stack: preview, up, verify; its exit code and its output."""
    done = subprocess.run(
        [sys.executable, "-m", "fixtures.contract_stack", "test"],
        cwd=REPO_ROOT,
        env={**env, ENV_VAR: provisioned.described().to_json()},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=DEPLOY_TIMEOUT_S,
    )
    return done.returncode, done.stdout


def restore_logs_from_before_0004(provisioned: ProvisionedDatabases) -> None:
    """The logs database as a backup taken before logs_0004 restores it: the version table at logs_0003
    and the log tables as logs_0003 left them (not partitioned)."""
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        logs.execute("DROP TABLE system_logs, llm_logs, alembic_version_logs CASCADE")
    runner.upgrade(runner.Target(LOGS, provisioned.migrator_url(DatabaseKey.LOGS)), "logs_0003")


def logs_revision(provisioned: ProvisionedDatabases) -> str | None:
    return runner.current_revision(runner.Target(LOGS, provisioned.migrator_url(DatabaseKey.LOGS)))


def partitioned_tables(provisioned: ProvisionedDatabases) -> set[str]:
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        rows = logs.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'p' AND relnamespace = 'public'::regnamespace"
        )
        return {row[0] for row in rows}


def test_a_database_behind_its_state_is_brought_to_head_and_one_ahead_of_the_tree_is_refused_by_name(
    provisioned: ProvisionedDatabases, project: dict[str, str]
) -> None:
    code, output = deploy(provisioned, project)
    assert code == ExitCode.OK, output[-4000:]
    restore_logs_from_before_0004(provisioned)
    assert logs_revision(provisioned) == "logs_0003" and partitioned_tables(provisioned) == set()

    # The state says logs_0004; the database says logs_0003: the preview shows the step's update.
    code, output = deploy(provisioned, project)
    assert code == ExitCode.OK, output[-4000:]
    preview = output.split("deploy: up of stack", 1)[0]
    assert "logs-migration-step]" in preview and "deploy: 2 to update" in preview, preview  # and the maintenance
    assert "at logs_0003 (read from the database); to run: logs_0004" in output, output[-4000:]
    assert logs_revision(provisioned) == runner.head_revision(LOGS) == "logs_0004"
    assert partitioned_tables(provisioned) == {"system_logs", "llm_logs"}
    assert " 0 differ" in output, output[-4000:]  # verify: the trees at head, the grants as the model says

    # A version row no revision of this checkout names: refused by name, at the preview, nothing changed.
    with provisioned.server.connect(provisioned.databases[DatabaseKey.MAIN]) as main:
        main.execute(sql.SQL("UPDATE {} SET version_num = 'main_9999'").format(sql.Identifier(MAIN.version_table)))
        tables_before = catalog.tables(main)
    code, output = deploy(provisioned, project)
    assert code == ExitCode.BAD_INPUT, output[-4000:]
    assert "is at revision main_9999, which this checkout's main tree" in output, output[-4000:]
    assert "Deploy from a checkout that has main_9999" in output, output[-4000:]
    assert "deploy: up of stack" not in output
    with provisioned.server.connect(provisioned.databases[DatabaseKey.MAIN]) as main:
        version_rows = main.execute(sql.SQL("SELECT version_num FROM {}").format(sql.Identifier(MAIN.version_table)))
        assert version_rows.fetchall() == [("main_9999",)]
        assert catalog.tables(main) == tables_before
