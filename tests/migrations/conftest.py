"""Fixtures for the migration trees: targets for each tree, as its migrator, on fresh databases."""

from __future__ import annotations

import pytest

from fixtures.cluster import Deployment
from migrations import runner
from migrations.shared.tree import TREES
from model.names import DatabaseKey


def target_for(deployment: Deployment, key: DatabaseKey) -> runner.Target:
    return runner.Target(TREES[key.value], deployment.migrator_url(key), deployment.databases[key])


@pytest.fixture
def main_target(fresh_deployment: Deployment) -> runner.Target:
    return target_for(fresh_deployment, DatabaseKey.MAIN)


@pytest.fixture
def logs_target(fresh_deployment: Deployment) -> runner.Target:
    return target_for(fresh_deployment, DatabaseKey.LOGS)


@pytest.fixture
def migrated(fresh_deployment: Deployment) -> Deployment:
    """Both trees at head."""
    for key in DatabaseKey:
        runner.upgrade(target_for(fresh_deployment, key))
    return fresh_deployment
