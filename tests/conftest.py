"""Fixtures shared by every suite: the embedded PostgreSQL, started once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ops import localpg
from tests.support.cluster import Deployment, Server, sql_deployment


@pytest.fixture(scope="session")
def server() -> Server:
    return Server(localpg.start())


@pytest.fixture
def fresh_deployment(server: Server) -> Iterator[Deployment]:
    """Databases and roles provisioned from the privilege model as plain SQL, dropped afterwards."""
    with sql_deployment(server) as deployment:
        yield deployment
