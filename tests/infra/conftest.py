"""The post-deploy verification suite: `scripts/verify STACK`, or `pytest tests/infra --stack STACK`.

It reads the deployed stack's outputs (names, address, login URLs): from the stack named by
--stack, or from HEADHUNTER_DEPLOYMENT (set by scripts/verify). It checks them with
pytest-testinfra hosts (local:// unless --hosts names others) and by querying PostgreSQL's
catalogs as each database's migrator, and reports every difference with the SQL that fixes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import psycopg
import pytest

from model.names import DatabaseKey, RoleKind
from ops.deploy.deployed_stack import REPORT_ENV_VAR, DeployedStack, from_environment

_RESULTS: list[dict[str, str]] = []


DEPLOYED = pytest.StashKey[DeployedStack]()


def deployed(config: pytest.Config) -> DeployedStack:
    """The stack under verification, read once per session."""
    if DEPLOYED not in config.stash:
        described = from_environment()
        if described is None:
            from ops.commands.verify import describe  # the engine, only when a stack is named

            name = config.getoption("--stack")
            if not name:
                raise pytest.UsageError("tests/infra verifies a deployed stack: name it with --stack STACK.")
            described = describe(name)
        config.stash[DEPLOYED] = described
    return config.stash[DEPLOYED]


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> DeployedStack:
    return deployed(request.config)


def pytest_sessionstart(session: pytest.Session) -> None:
    """No stack named, or an unreachable testinfra host: a usage error before any check, not a difference."""
    import testinfra

    if not (from_environment() or session.config.getoption("--stack")):
        raise pytest.UsageError("tests/infra verifies a deployed stack: name it with --stack STACK.")

    for url in (session.config.getoption("hosts") or "local://").split(","):
        try:
            testinfra.get_host(url).run("true")
        except Exception as error:  # testinfra raises RuntimeError or its backend's own errors
            reason = getattr(error.args[0] if error.args else None, "stderr", str(error)).strip()
            raise pytest.UsageError(f"cannot reach the testinfra host {url} ({reason}): fix --hosts.") from None


@pytest.fixture(scope="session")
def catalogs(stack: DeployedStack) -> Iterator[dict[DatabaseKey, psycopg.Connection]]:
    """One read-only connection per database, as its migrator (who may connect and read catalogs)."""
    connections = {key: psycopg.connect(stack.migrator_url(key), autocommit=True) for key in DatabaseKey}
    try:
        yield connections
    finally:
        for connection in connections.values():
            connection.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "grantee" in metafunc.fixturenames:
        every = deployed(metafunc.config).grantees()
        roles = every if "public_too" in metafunc.fixturenames else tuple(g for g in every if g.kind is not None)
        metafunc.parametrize("grantee", roles, ids=[g.name for g in roles])
    if "member" in metafunc.fixturenames:  # the two logins of each runtime and read-only role
        members = tuple(g for g in deployed(metafunc.config).grantees() if g.kind is RoleKind.LOGIN)
        metafunc.parametrize("member", members, ids=[g.name for g in members])
    if "database" in metafunc.fixturenames:
        metafunc.parametrize("database", list(DatabaseKey), ids=[key.value for key in DatabaseKey])


@pytest.fixture
def public_too() -> bool:
    """Requesting this fixture adds PUBLIC to the grantees a test is parametrized over."""
    return True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One entry per check: its outcome, and for a failure the first line of what differs."""
    if report.when == "call" or (report.failed and report.when == "setup"):
        difference = ""
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            difference = (crash.message if crash is not None else str(report.longrepr)).splitlines()[0]
            difference = difference.removeprefix("AssertionError: ")
        _RESULTS.append(
            {"check": report.nodeid.split("::", 1)[-1], "outcome": report.outcome, "difference": difference}
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    failed = [result for result in _RESULTS if result["outcome"] == "failed"]
    write = terminalreporter.write_line
    write("")
    write(f"verified {len(_RESULTS)} checks: {len(_RESULTS) - len(failed)} as expected, {len(failed)} differ")
    for result in _RESULTS:
        if result["outcome"] == "failed":
            write(f"  DIFFERS  {result['check']}: {result['difference']}")
        else:
            write(f"  ok       {result['check']}")
    path = os.environ.get(REPORT_ENV_VAR)
    if path:
        with open(path, "w") as report:
            json.dump({"checks": _RESULTS, "differences": len(failed)}, report, indent=2)
