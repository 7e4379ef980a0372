"""Fixtures shared by every suite: the embedded PostgreSQL, started once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ops import localpg
from ops.deployment import ENV_VAR
from tests.support.cluster import Deployment, Server, sql_deployment

# tests/infra verifies a deployed stack and runs through scripts/verify, which names the stack.
collect_ignore = [] if os.environ.get(ENV_VAR) else ["infra"]


@pytest.fixture(scope="session")
def server() -> Server:
    return Server(localpg.start())


@pytest.fixture
def fresh_deployment(server: Server) -> Iterator[Deployment]:
    """Databases and roles provisioned from the privilege model as plain SQL, dropped afterwards."""
    with sql_deployment(server) as deployment:
        yield deployment
