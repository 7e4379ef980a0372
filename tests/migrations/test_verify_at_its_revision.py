"""Verify's placement checks expect the schema of the revision a database is at, not the head's: while a
contract revision waits for headhunter-db:contractThrough, the table and index it will drop are still the
tree's, neither misplaced nor unexpected (tests/infra/test_placement.py reads them through fixtures.catalog)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fixtures.catalog import INDEXES, TABLES, misplaced_tables, schema_of_its_revision
from fixtures.cluster import ProvisionedDatabases
from fixtures.revisions import revision_file
from migrations import runner
from migrations.shared.heads import MIGRATIONS_COPY_ENV_VAR, declared_head, default_location
from model.names import DatabaseKey

EXPAND = revision_file(
    "main_8001",
    "An audit table the next release stops using.",
    'op.create_table("invitation_audit", sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True))',
)
CONTRACT = revision_file(
    "main_8002", "The audit table dropped, once the release that used it is gone.", 'op.drop_table("invitation_audit")'
).replace("depends_on = None", 'depends_on = None\nphase = "contract"')


@pytest.fixture
def trees_with_a_waiting_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("main", "logs"):
        shutil.copytree(default_location(key), tmp_path / key, ignore=shutil.ignore_patterns("__pycache__"))
    versions = tmp_path / "main" / "versions"
    (versions / "main_8001_audit.py").write_text(EXPAND.replace("{down}", declared_head(default_location("main"))))
    (versions / "main_8002_drop_audit.py").write_text(CONTRACT.replace("{down}", "main_8001"))
    monkeypatch.setenv(MIGRATIONS_COPY_ENV_VAR, str(tmp_path))
    return tmp_path


def test_a_table_a_waiting_contract_drops_is_expected_not_misplaced(
    provisioned: ProvisionedDatabases, trees_with_a_waiting_contract: Path
) -> None:
    target = provisioned.migration_target(DatabaseKey.MAIN)
    copy = runner.Target(target.tree, target.url, target.expected_database, trees_with_a_waiting_contract / "main")
    runner.upgrade(copy, "main_8001")  # the deploy's plan stops here while the contract revision waits
    with provisioned.server.connect(provisioned.databases[DatabaseKey.MAIN]) as catalog:
        assert misplaced_tables(catalog, "main") == set()
        expected = schema_of_its_revision(catalog, DatabaseKey.MAIN)
        assert "invitation_audit" in expected.tables
        assert {row[0] for row in catalog.execute(TABLES).fetchall()} - {"alembic_version_main"} <= expected.tables
        assert {row[0] for row in catalog.execute(INDEXES).fetchall()} == expected.indexes
