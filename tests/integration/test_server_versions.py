"""A server of a PostgreSQL major this project does not test is refused before anything is changed.

The server is real: PostgreSQL 14 (community support ended in November 2026), from its pinned
build, on a cluster of the test's own (deleted afterwards, with all it holds). A stack that opts in
with allowUntestedServerVersion passes the check and deploys, and meets what makes 14 unsupported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster import Server
from fixtures.project_stack import ProjectStack, leftover_objects, project_stack, set_config
from infra import embedded_server
from ops.errors import ExitCode
from ops.localpg import embedded
from ops.paths import REPO_ROOT

pytestmark = [pytest.mark.engine, pytest.mark.provider]
UNSUPPORTED = 14


@pytest.fixture
def old_server(tmp_path: Path) -> Iterator[Server]:
    env = dict(os.environ, HEADHUNTER_STATE_DIR=str(tmp_path / "state"), HEADHUNTER_SERVER_MAJOR=str(UNSUPPORTED))
    localpg = [sys.executable, "-m", "ops.commands.localpg"]
    subprocess.run([*localpg, "start"], cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    started = embedded_server.read(tmp_path / "state")
    try:
        yield Server(embedded.Connection(started.host, started.port, started.user, started.password))
    finally:
        subprocess.run([*localpg, "reset"], cwd=REPO_ROOT, env=env, capture_output=True)


@pytest.fixture
def untested(tmp_path: Path, old_server: Server) -> ProjectStack:
    (tmp_path / "project").mkdir()
    project = project_stack(
        tmp_path / "project",
        "untested",
        "untested",
        embeddedServer="false",
        host=old_server.connection.host,
        port=old_server.connection.port,
        sslmode="disable",
        adminUser=old_server.connection.user,
    )
    assert project.pulumi("stack", "init").returncode == 0
    password = old_server.connection.password
    secret = project.pulumi("config", "set", "--secret", "headhunter-db:adminPassword", stdin=password)
    assert secret.returncode == 0, secret.stderr
    return project


def test_a_server_of_an_unsupported_major_is_refused_unless_the_stack_opts_in(
    old_server: Server, untested: ProjectStack
) -> None:
    with old_server.connect() as admin:
        assert admin.info.server_version // 10000 == UNSUPPORTED

    refused = untested.script("ops.commands.up", untested.stack)
    assert refused.returncode == ExitCode.BAD_INPUT, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert (
        f"runs PostgreSQL {UNSUPPORTED}, which this project does not test (it supports 15, 16, 17, 18)"
        in refused.stderr
    ), refused.stderr
    assert "allowUntestedServerVersion" in refused.stderr and "Nothing was changed" in refused.stderr
    assert leftover_objects(untested, old_server) == []

    set_config(untested, allowUntestedServerVersion=True, minServerVersion=UNSUPPORTED)
    opted_in = untested.script("ops.commands.up", untested.stack)
    assert "which this project does not test" not in opted_in.stderr, opted_in.stderr[-3000:]
    # It deploys, untested, and meets why 14 is not supported: its public schema belongs to the bootstrap
    # superuser, not to the database's owner (pg_database_owner came in 15), so the owner cannot create there.
    assert opted_in.returncode == ExitCode.MIGRATION_FAILED, opted_in.stdout[-3000:] + opted_in.stderr[-3000:]
    assert "permission denied for schema public" in opted_in.stdout + opted_in.stderr
