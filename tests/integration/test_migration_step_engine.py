"""The migration step under the real Pulumi engine, against the embedded server.

The program here holds only the two MigrationStep resources, on databases provisioned from the
privilege model as plain SQL: it exercises the engine, the dynamic provider and Alembic together,
independently of the postgresql provider plugin.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pulumi
import pytest
from pulumi import automation as auto

from fixtures import catalog
from fixtures.cluster import ProvisionedDatabases
from fixtures.fault_log import SeenFunction
from fixtures.programs import migration_steps_program, open_engine_stack
from fixtures.revisions import FAILING_REVISION, NEW_TABLE_REVISION
from infra.migration_step import revision_after_failure, step_name
from migrations import runner
from migrations.schema import head_schema
from migrations.shared.tree import TREES
from model.names import DatabaseKey
from ops.deploy import driver, engine_events
from ops.errors import ExitCode
from ops.paths import REPO_ROOT

pytestmark = pytest.mark.engine


def open_test_stack(workspace: Path, program: driver.Program) -> pulumi.automation.Stack:
    return open_engine_stack(workspace, program)


def test_up_migrates_both_trees_and_a_second_up_changes_nothing(
    provisioned: ProvisionedDatabases, engine_workspace: Path
) -> None:
    stack = open_test_stack(engine_workspace, migration_steps_program(provisioned))
    result = stack.up(color="never")
    assert result.summary.result == "succeeded"
    deployment = stack.export_stack().deployment or {}
    logs_step = next(r for r in deployment["resources"] if r["urn"].endswith(step_name("logs")))
    assert logs_step["outputs"]["applied"] == ["logs_0001", "logs_0002", "logs_0003", "logs_0004"]
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        assert {"system_logs", "llm_logs"} <= catalog.tables(logs)
    with provisioned.server.connect(provisioned.databases[DatabaseKey.MAIN]) as main:
        assert "user_invitations" in catalog.tables(main)

    preview = stack.preview(color="never", expect_no_changes=True)
    assert dict(preview.change_summary) == {"same": 3}  # the stack and both steps


def test_a_stack_that_knows_the_steps_by_their_former_name_keeps_them_and_runs_nothing(
    provisioned: ProvisionedDatabases, engine_workspace: Path
) -> None:
    stack = open_test_stack(engine_workspace, migration_steps_program(provisioned))
    stack.up(color="never")
    exported = stack.export_stack()
    former = json.dumps(exported.deployment).replace("-migration-step", "-migrations")  # as deployed before
    stack.import_stack(auto.Deployment(version=exported.version, deployment=json.loads(former)))

    result = stack.up(color="never")
    assert dict(result.summary.resource_changes or {}) == {"same": 3}, result.stdout  # renamed, not run again
    names = {r["urn"].rsplit("::", 1)[1] for r in (stack.export_stack().deployment or {})["resources"]}
    assert {step_name("main"), step_name("logs")} <= names and not {"main-migrations", "logs-migrations"} & names


@pytest.mark.fault(
    what="a migration raises half-way",
    recovery="fix the revision and deploy again; the database stays at the previous revision, rows written "
    "before are intact",
)
def test_a_failing_revision_fails_the_up_and_leaves_the_previous_revision(
    provisioned: ProvisionedDatabases, engine_workspace: Path, tmp_path: Path, fault_seen: SeenFunction
) -> None:
    stack = open_test_stack(engine_workspace, migration_steps_program(provisioned))
    stack.up(color="never")
    logs_tree = tmp_path / "logs-tree"
    shutil.copytree(REPO_ROOT / "migrations" / "logs", logs_tree)
    head = runner.head_revision(TREES["logs"])
    (logs_tree / "versions" / "logs_9999_fails.py").write_text(FAILING_REVISION.format(down=head))

    failing = open_test_stack(engine_workspace, migration_steps_program(provisioned, logs_tree))
    events = engine_events.EngineEvents()  # the exit code is read from the run's events, not its message
    with pytest.raises(pulumi.automation.CommandError) as failed:
        failing.up(color="never", on_event=events)
    error = driver.translate(failed.value, "test", events.events())

    assert error.exit_code == ExitCode.MIGRATION_FAILED
    assert "division by zero" in str(error) and f"stays at revision {head}" in str(error)
    fault_seen("pulumi up", error.exit_code, str(error), "stays at revision")
    target = runner.Target(TREES["logs"], provisioned.migrator_url(DatabaseKey.LOGS))
    assert runner.current_revision(target) == head


def test_destroy_forgets_the_step_but_never_downgrades(
    provisioned: ProvisionedDatabases, engine_workspace: Path
) -> None:
    stack = open_test_stack(engine_workspace, migration_steps_program(provisioned))
    stack.up(color="never")
    stack.destroy(color="never")
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        assert {"system_logs", "llm_logs"} <= catalog.tables(logs)


def test_no_password_in_plain_text_in_the_state_or_the_output(
    provisioned: ProvisionedDatabases, engine_workspace: Path
) -> None:
    stack = open_test_stack(engine_workspace, migration_steps_program(provisioned))
    result = stack.up(color="never")
    stack.preview(color="never")
    state_files = [path for path in (engine_workspace / "state").rglob("*") if path.is_file()]
    assert state_files
    # Not even encrypted: the step's outputs leave the password out (the engine would keep a copy).
    resources = (stack.export_stack().deployment or {})["resources"]
    steps = [r for r in resources if r["type"] == "pulumi-python:dynamic:Resource"]
    assert len(steps) == 2 and all("password" not in step["outputs"] for step in steps)
    for key in DatabaseKey:
        password = provisioned.passwords[provisioned.names.migrator(key)]
        assert password not in result.stdout + result.stderr
        for path in state_files:
            assert password.encode() not in path.read_bytes(), path


def test_a_table_added_in_a_revision_reaches_the_grants_and_the_expected_placement_with_no_other_edit(
    provisioned: ProvisionedDatabases, engine_workspace: Path, tmp_path: Path
) -> None:
    """The revision is the only edit: the step reports the table from the catalog, the schema reads it."""
    logs_tree = tmp_path / "logs-tree"
    shutil.copytree(REPO_ROOT / "migrations" / "logs", logs_tree)
    head = runner.head_revision(TREES["logs"])
    (logs_tree / "versions" / "logs_9998_audit_events.py").write_text(NEW_TABLE_REVISION.replace("{down}", head))

    stack = open_test_stack(engine_workspace, migration_steps_program(provisioned, logs_tree))
    stack.up(color="never")
    resources = (stack.export_stack().deployment or {})["resources"]
    outputs = {r["urn"].rsplit("::", 1)[1]: r.get("outputs", {}) for r in resources}
    assert outputs[step_name("logs")]["tables"] == ["audit_events", "llm_logs", "system_logs"]
    schema = head_schema(TREES["logs"], logs_tree)
    assert "audit_events" in schema.tables and "audit_events_pkey" in schema.indexes


def test_a_failed_run_says_the_revision_is_unknown_when_the_server_does_not_answer(
    provisioned: ProvisionedDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message after a failure names the database's revision; a server gone away cannot tell it."""
    monkeypatch.setenv("HEADHUNTER_CONNECT_ATTEMPTS", "1")
    nothing_listens = provisioned.migrator_url(DatabaseKey.LOGS).set(port=1)
    said = revision_after_failure(runner.Target(TREES["logs"], nothing_listens))
    assert said.startswith("unknown (the server does not answer")
    up_and_running = runner.Target(TREES["logs"], provisioned.migrator_url(DatabaseKey.LOGS))
    assert revision_after_failure(up_and_running) == "base"
