"""scripts/verify on databases provisioned from the model: clean, then with each drift made by hand."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

from fixtures.cluster import ProvisionedDatabases
from migrations import runner
from migrations.shared.tree import TREES
from model.names import DatabaseKey
from ops.errors import ExitCode
from ops.paths import REPO_ROOT


@pytest.fixture
def deployed(provisioned: ProvisionedDatabases) -> ProvisionedDatabases:
    for key in DatabaseKey:
        runner.upgrade(runner.Target(TREES[key.value], provisioned.migrator_url(key)))
    return provisioned


def run_verify(provisioned: ProvisionedDatabases) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.commands.verify", "test", "--description-stdin"],
        cwd=REPO_ROOT,
        text=True,
        input=provisioned.described().to_json(),
        capture_output=True,
        timeout=300,
    )


def test_a_clean_deployment_passes_and_the_report_lists_every_check(deployed: ProvisionedDatabases) -> None:
    reports = [REPO_ROOT / "reports" / name for name in ("verify-test.json", "verify-test.xml")]
    for stale in reports:  # an earlier run's report must not pass for this one's
        stale.unlink(missing_ok=True)
    result = run_verify(deployed)
    assert result.returncode == ExitCode.OK, result.stdout[-3000:]
    report = json.loads((REPO_ROOT / "reports" / "verify-test.json").read_text())
    checks = {entry["check"].split("[")[0] for entry in report["checks"]}
    assert {
        "test_privileges",
        "test_tables",
        "test_indexes",
        "test_the_tree_is_at_head",
        "test_the_role_exists_with_its_attributes",
        "test_postgresql_answers_on_the_configured_address",
    } <= checks
    assert report["differences"] == 0 and len(report["checks"]) > 80
    assert "<testsuite" in reports[1].read_text()


def grant_select_to_app(d: ProvisionedDatabases) -> None:
    with d.server.connect(d.databases[DatabaseKey.LOGS]) as logs:
        app = sql.Identifier(d.names.of("app"))
        logs.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(d.databases[DatabaseKey.LOGS]), app)
        )
        logs.execute(sql.SQL("GRANT SELECT ON system_logs TO {}").format(app))


def table_in_the_wrong_database(d: ProvisionedDatabases) -> None:
    with d.server.connect(d.databases[DatabaseKey.MAIN]) as main:
        main.execute("CREATE TABLE system_logs (id bigint)")
        main.execute("INSERT INTO system_logs VALUES (1)")


def drop_an_index(d: ProvisionedDatabases) -> None:
    with d.server.connect(d.databases[DatabaseKey.LOGS]) as logs:
        logs.execute("DROP INDEX idx_system_logs_errors")


def give_createdb(d: ProvisionedDatabases) -> None:
    with d.server.connect() as admin:
        admin.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(sql.Identifier(d.names.of("logs_writer"))))


def public_may_create_in_the_schema(d: ProvisionedDatabases) -> None:
    with d.server.connect(d.databases[DatabaseKey.LOGS]) as logs:
        logs.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")


def drop_a_default_privilege(d: ProvisionedDatabases) -> None:
    with d.server.connect(d.databases[DatabaseKey.LOGS]) as logs:
        logs.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public REVOKE INSERT ON TABLES FROM {}").format(
                sql.Identifier(d.names.owner(DatabaseKey.LOGS)), sql.Identifier(d.names.of("logs_writer"))
            )
        )


@pytest.mark.parametrize(
    ("drift", "named"),
    [
        (grant_select_to_app, "has SELECT on system_logs"),
        (table_in_the_wrong_database, "tables that do not belong in"),
        (drop_an_index, "lacks the indexes ['idx_system_logs_errors']"),
        (give_createdb, "has CREATEDB"),
        (public_may_create_in_the_schema, "public has CREATE on public"),
        (drop_a_default_privilege, "default table privileges of"),
    ],
)
def test_each_drift_fails_verification_and_is_named(
    deployed: ProvisionedDatabases, drift: Callable[[ProvisionedDatabases], None], named: str
) -> None:
    drift(deployed)
    result = run_verify(deployed)
    assert result.returncode == ExitCode.VERIFY_FAILED, result.stdout[-3000:]
    assert named in result.stdout


def test_a_table_in_the_wrong_database_is_named_as_misplaced_and_given_no_grant_advice(
    deployed: ProvisionedDatabases,
) -> None:
    table_in_the_wrong_database(deployed)
    with deployed.server.connect(deployed.databases[DatabaseKey.MAIN]) as main:
        main.execute("CREATE TABLE llm_logs (id bigint GENERATED ALWAYS AS IDENTITY, created_at timestamptz)")
    result = run_verify(deployed)
    assert result.returncode == ExitCode.VERIFY_FAILED, result.stdout[-3000:]
    assert "tables that do not belong in" in result.stdout and "['llm_logs', 'system_logs']" in result.stdout
    advice = [line for line in result.stdout.splitlines() if "grants it" in line or "beyond the model" in line]
    assert advice == [], advice


@pytest.mark.parametrize("drift", [grant_select_to_app, public_may_create_in_the_schema])
def test_the_printed_fixes_are_sql_that_repairs_the_drift(
    deployed: ProvisionedDatabases, drift: Callable[[ProvisionedDatabases], None]
) -> None:
    drift(deployed)
    found = run_verify(deployed)
    fixes = re.findall(r"\((REVOKE [^)]*;)\)", found.stdout)
    assert fixes, found.stdout[-3000:]
    with deployed.server.connect(deployed.databases[DatabaseKey.LOGS]) as logs:
        for fix in fixes:
            logs.execute(fix)
    repaired = run_verify(deployed)
    assert repaired.returncode == ExitCode.OK, repaired.stdout[-3000:]


@pytest.mark.matrix
def test_maintain_granted_by_hand_is_a_difference_from_postgresql_17_on(deployed: ProvisionedDatabases) -> None:
    """17 added the MAINTAIN table privilege (ALL includes it): verify checks it there; before 17 the
    server refuses to grant it at all."""
    writer = deployed.names.of("logs_writer")
    grant = sql.SQL("GRANT MAINTAIN ON system_logs TO {}").format(sql.Identifier(writer))
    with deployed.server.connect(deployed.databases[DatabaseKey.LOGS]) as logs:
        if logs.info.server_version < 170000:
            with pytest.raises(psycopg.errors.SyntaxError, match='unrecognized privilege type "maintain"'):
                logs.execute(grant)
            return
        logs.execute(grant)
    found = run_verify(deployed)
    assert found.returncode == ExitCode.VERIFY_FAILED, found.stdout[-3000:]
    assert f"{writer} has MAINTAIN on system_logs" in found.stdout, found.stdout[-3000:]
    with deployed.server.connect(deployed.databases[DatabaseKey.LOGS]) as logs:
        for fix in re.findall(r"\((REVOKE [^)]*;)\)", found.stdout):
            logs.execute(fix)
    repaired = run_verify(deployed)
    assert repaired.returncode == ExitCode.OK, repaired.stdout[-3000:]


def test_an_unreachable_testinfra_host_is_named_not_reported_as_a_difference(deployed: ProvisionedDatabases) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ops.commands.verify",
            "test",
            "--description-stdin",
            "--hosts=ssh://nobody@127.0.0.1:1",
        ],
        cwd=REPO_ROOT,
        text=True,
        input=deployed.described().to_json(),
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == ExitCode.BAD_INPUT
    assert "cannot reach the testinfra host ssh://nobody@127.0.0.1:1" in result.stdout + result.stderr
    assert "DIFFERS" not in result.stdout
