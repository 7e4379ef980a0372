"""Fixtures shared by every suite: the embedded PostgreSQL, started once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster import ProvisionedDatabases, Server, provisioned_databases
from fixtures.fault_log import FaultLog, fault_seen
from fixtures.programs import engine_project
from fixtures.shared_backend import SharedBackend, fresh_shared_backend
from ops.deploy.deployed_stack import ENV_VAR
from ops.localpg import embedded

INFRA_SUITE = Path(__file__).resolve().parent / "infra"
__all__ = ["fault_seen"]  # a fixture of every suite: the fault tests record what they saw with it


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(FaultLog(config), "fault_log")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--stack", help="tests/infra: the deployed stack to verify (scripts/verify STACK does the same)")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/infra verifies a deployed stack: it runs when one is named (--stack, or scripts/verify)."""
    if collection_path == INFRA_SUITE and not (config.getoption("--stack") or os.environ.get(ENV_VAR)):
        return True
    return None


@pytest.fixture(scope="session")
def server() -> Server:
    return Server(embedded.start())


@pytest.fixture(scope="session")
def shared_backend(server: Server) -> SharedBackend:
    """A postgres:// state backend on the tests' server, as `scripts/state-backend init` makes one."""
    return fresh_shared_backend(server)


@pytest.fixture(params=["file", pytest.param("postgres", marks=pytest.mark.shared_backend)])
def state_backend(request: pytest.FixtureRequest) -> SharedBackend | None:
    """A test's state backend: its own file backend, or the shared postgres:// one (None for the file backend)."""
    return request.getfixturevalue("shared_backend") if request.param == "postgres" else None


@pytest.fixture
def provisioned(server: Server) -> Iterator[ProvisionedDatabases]:
    """Databases and roles provisioned from the privilege model as plain SQL, dropped afterwards."""
    with provisioned_databases(server) as provisioned:
        yield provisioned


@pytest.fixture
def engine_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder and a state backend of the test's own, for the engine tests."""
    environ: dict[str, str] = {}
    folder = engine_project(tmp_path, environ)
    for key, value in environ.items():
        if key not in os.environ or key == "PULUMI_BACKEND_URL":
            monkeypatch.setenv(key, value)
    yield folder
