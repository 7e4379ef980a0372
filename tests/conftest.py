"""Fixtures shared by every suite: the embedded PostgreSQL, started once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster import Deployment, Server, sql_deployment
from fixtures.programs import engine_project
from ops import localpg
from ops.deployed_stack import ENV_VAR

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


@pytest.fixture
def engine_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder and a state backend of the test's own, for the engine tests."""
    environ: dict[str, str] = {}
    folder = engine_project(tmp_path, environ)
    for key, value in environ.items():
        if key not in os.environ or key == "PULUMI_BACKEND_URL":
            monkeypatch.setenv(key, value)
    yield folder
