"""Fixtures for the migration trees: targets for each tree, as its migrator, on fresh databases."""

from __future__ import annotations

import pytest

from fixtures.cluster import ProvisionedDatabases
from migrations import runner
from model.names import DatabaseKey


@pytest.fixture
def main_target(provisioned: ProvisionedDatabases) -> runner.Target:
    return provisioned.migration_target(DatabaseKey.MAIN)


@pytest.fixture
def logs_target(provisioned: ProvisionedDatabases) -> runner.Target:
    return provisioned.migration_target(DatabaseKey.LOGS)


@pytest.fixture
def migrated(provisioned: ProvisionedDatabases) -> ProvisionedDatabases:
    """Both trees at head."""
    for key in DatabaseKey:
        runner.upgrade(provisioned.migration_target(key))
    return provisioned
