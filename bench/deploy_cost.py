"""What a deploy costs: the engine's floor, the post-provision step, and plain SQL as the physical floor.

A no-op `up` of the dev stack (roles, grants and migrations with nothing to change) needs the
postgresql provider plugin; where it is not installed that row is reported as not measured.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.stats import Spread
from fixtures.cluster import Deployment, Server, drop_deployment, login_roles
from fixtures.plain_sql import provisioning_statements
from fixtures.programs import engine_project, open_engine_stack
from model.names import DatabaseKey, RoleNames
from ops.localpg import find_bin_dir


def timed_noop_ups(program: Callable[[], None], repeats: int) -> Spread:
    """The first `up` creates; the next ones find nothing to change and are timed."""
    folder = engine_project(Path(tempfile.mkdtemp(prefix="bench-engine-")), os.environ)
    stack = open_engine_stack(folder, program, "bench")
    stack.up(color="never")
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        stack.up(color="never")
        samples.append(time.perf_counter() - started)
    return Spread.of(samples)


def empty_program() -> None:
    """The engine's floor: a Python program that declares nothing."""


def plain_sql_provisioning(server: Server, repeats: int) -> Spread:
    """The same databases, roles and grants as one psql session runs them (no migrations)."""
    samples = []
    for attempt in range(repeats):
        names = RoleNames(f"sqlfloor{attempt}")
        databases = {key: f"{names.prefix}_{key}" for key in DatabaseKey}
        passwords = {role: "unused-password" for role in login_roles(names)}
        script = []
        for statement in provisioning_statements(names, databases, passwords):
            script.append(f"\\connect {statement.database or 'postgres'}")
            script.append(statement.sql.as_string(None) + ";")
        connection = server.connection
        started = time.perf_counter()
        subprocess.run(
            [
                str(find_bin_dir() / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                connection.host,
                "-p",
                str(connection.port),
                "-U",
                connection.user,
                "-d",
                "postgres",
            ],
            input="\n".join(script),
            text=True,
            check=True,
            capture_output=True,
            env={"PGPASSWORD": connection.password, "PATH": "/usr/bin:/bin"},
        )
        samples.append(time.perf_counter() - started)
        drop_deployment(Deployment(server, names, databases, passwords))
    return Spread.of(samples)
