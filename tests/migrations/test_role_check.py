"""scripts/up's role check (ops/deploy/role_check.py) as the application's roles, on databases provisioned
from the model: it passes before and after the worked example's contract revision (docs/expand-contract.md),
which tightens and drops columns of user_invitations, and still fails when the app may not write."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from psycopg import sql

from fixtures.cluster import ProvisionedDatabases
from fixtures.expand_contract import CHECK_REVISION, CONTRACT_REVISION, example_trees
from migrations import runner
from model.names import DatabaseKey
from ops.deploy.role_check import run_checks


def failures(provisioned: ProvisionedDatabases) -> dict[str, str]:
    results = run_checks(provisioned.described().connection_urls)
    return {check.description: error for check, error in results if error is not None}


def test_the_checks_pass_before_and_after_a_contract_revision(tmp_path: Path, migrated: ProvisionedDatabases) -> None:
    main = dataclasses.replace(
        migrated.migration_target(DatabaseKey.MAIN), script_location=example_trees(tmp_path) / "main"
    )
    runner.upgrade(main, CHECK_REVISION)
    assert failures(migrated) == {}
    runner.upgrade(main, CONTRACT_REVISION)  # email_normalized NOT NULL, its filling trigger and invited_by gone
    assert failures(migrated) == {}


def test_the_app_s_write_check_fails_when_the_app_may_not_insert(migrated: ProvisionedDatabases) -> None:
    with migrated.server.connect(migrated.databases[DatabaseKey.MAIN]) as main:
        app = sql.Identifier(migrated.names.of("app"))
        main.execute(sql.SQL("REVOKE INSERT ON user_invitations FROM {}").format(app))
    assert list(failures(migrated)) == ["the app can write user_invitations"]
    assert "permission denied for table user_invitations" in failures(migrated)["the app can write user_invitations"]
