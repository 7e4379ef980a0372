"""How an engine failure becomes one line and an exit code (ops/deploy/driver.translate)."""

from __future__ import annotations

import pytest
from pulumi import automation as auto

from ops.deploy import driver
from ops.errors import ExitCode

# What the engine printed when the server stopped at once (pg_ctl -m immediate) under PostgreSQL 18.
PROVIDER_EOF = (
    "error: sdk-v2/provider2.go:571: sdk.helper_schema: error granting role killed_logs_owner to postgres: EOF: "
    "provider=postgresql@3.18.0"
)


def failure(stderr: str) -> auto.CommandError:
    return auto.CommandError(auto.CommandResult(stdout="", stderr=stderr, code=255))


@pytest.mark.parametrize(
    ("stderr", "code"),
    [
        (PROVIDER_EOF, ExitCode.SERVER_UNREACHABLE),
        ("error: pq: the database system is shutting down", ExitCode.SERVER_UNREACHABLE),
        ("error: failed to load checkpoint: EOF", ExitCode.DEPLOY_FAILED),  # the file backend, not PostgreSQL
    ],
)
def test_an_engine_failure_gets_the_exit_code_of_its_cause(stderr: str, code: ExitCode) -> None:
    assert driver.translate(failure(stderr), "killed").exit_code == code
