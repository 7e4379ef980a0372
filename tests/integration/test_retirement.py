"""Retiring a role with one deploy: removed from the stack config, it is cleared out of both databases and dropped.

Through the real engine, provider and server. The roles retired were given a grant and a table by
hand, created a temporary table in a session left open, or just kept a session open: DROP ROLE
fails on each of these unless the deploy clears them first (infra/role_retirement.py). A role that
owns a database is refused, with every resource of it left as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fixtures.clients import connection_urls, log_in
from fixtures.cluster import Server
from fixtures.project_stack import ProjectStack, cleanup, project_stack, set_config
from ops.errors import ExitCode

pytestmark = [pytest.mark.engine, pytest.mark.provider, pytest.mark.slow]

KEPT = {"name": "retiring_kept", "database": "main"}
GRANTED = {"name": "retiring_granted", "database": "main"}
IDLE = {"name": "retiring_idle", "database": "main"}
TEMPORARY = {"name": "retiring_temporary", "database": "logs"}  # the logs database's only reader
OWNING = {"name": "retiring_owning", "database": "main"}
SIDE_DATABASE = "retiring_side"


@pytest.fixture
def retiring(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    project = project_stack(tmp_path, "retiring", "retiring", retirementGraceSeconds=2)
    cleanup(project, server)
    yield project
    with server.connect() as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {SIDE_DATABASE}")
    cleanup(project, server)


def deploy(project: ProjectStack, *read_only: dict[str, str], command: str = "ops.commands.deploy") -> None:
    """The stack deployed with these read-only roles, and verified (scripts/deploy); scripts/up for the first."""
    set_config(project, readOnlyRoles=list(read_only))
    deployed = project.script(command, project.stack)
    assert deployed.returncode == ExitCode.OK, deployed.stdout[-3000:] + deployed.stderr[-3000:]


def roles_named(server: Server, prefix: str) -> list[str]:
    with server.connect() as admin:
        rows = admin.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s) ORDER BY 1", (prefix,))
        return [name for (name,) in rows]


@pytest.mark.matrix
def test_removing_read_only_roles_retires_them_from_both_databases_with_one_deploy(
    server: Server, retiring: ProjectStack
) -> None:
    deploy(retiring, KEPT, GRANTED, IDLE, TEMPORARY, command="ops.commands.up")
    main, logs = retiring.databases
    urls = connection_urls(retiring)
    with server.connect(main) as admin:
        admin.execute("GRANT UPDATE ON user_invitations TO retiring_granted")
        admin.execute("CREATE SEQUENCE scratch; ALTER SEQUENCE scratch OWNER TO retiring_granted_a")
    with server.connect(logs) as admin:
        admin.execute("GRANT SELECT ON system_logs TO retiring_granted")  # a database the model gives it nothing in
        admin.execute(f"GRANT TEMPORARY ON DATABASE {logs} TO retiring_temporary")  # the model gives no TEMP
    temporary = psycopg.connect(urls["retiring_temporary"], autocommit=True)
    temporary.execute("CREATE TEMPORARY TABLE notes (line text)")
    idle = psycopg.connect(urls["retiring_idle"], autocommit=True)

    deploy(retiring, KEPT)

    # The logs database's readers group went with its only reader.
    assert set(roles_named(server, "retiring_")) == {
        "retiring_kept", "retiring_kept_a", "retiring_kept_b", "retiring_main_readers",
        "retiring_main_owner", "retiring_logs_owner", "retiring_main_migrator", "retiring_logs_migrator",
        *(f"retiring_{key}{slot}" for key in ("app", "logs_writer", "logs_reader") for slot in ("", "_a", "_b")),
    }  # fmt: skip
    for session in (temporary, idle):  # ended by the deploy, after the grace period
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    with server.connect(main) as admin:
        owner = admin.execute("SELECT sequenceowner FROM pg_sequences WHERE sequencename = 'scratch'").fetchone()
    assert owner == ("retiring_main_owner",)  # what it owned is the database's owner role's now
    assert log_in(connection_urls(retiring)["retiring_kept"]) is None
    preview = retiring.pulumi("preview", "--expect-no-changes")
    assert preview.returncode == 0, preview.stdout[-3000:]


def test_a_role_that_owns_a_database_is_refused_and_keeps_everything(server: Server, retiring: ProjectStack) -> None:
    deploy(retiring, KEPT, OWNING, command="ops.commands.up")
    url = connection_urls(retiring)["retiring_owning"]
    with server.connect() as admin:
        admin.execute(f"CREATE DATABASE {SIDE_DATABASE} OWNER retiring_owning")

    set_config(retiring, readOnlyRoles=[KEPT])
    refused = retiring.script("ops.commands.deploy", retiring.stack)

    assert refused.returncode == ExitCode.DEPLOY_FAILED, refused.stdout[-3000:] + refused.stderr[-3000:]
    message = refused.stdout + refused.stderr
    assert f"owns the database {SIDE_DATABASE}" in message and "nothing was changed" in message, message[-3000:]
    assert {"retiring_owning", "retiring_owning_a", "retiring_owning_b"} <= set(roles_named(server, "retiring_"))
    assert log_in(url) is None  # its login still works, and it still reads through its group
    with psycopg.connect(url) as reader:
        assert reader.execute("SELECT has_table_privilege('user_invitations', 'SELECT')").fetchone() == (True,)

    with server.connect() as admin:  # the fix the message names
        admin.execute(f"ALTER DATABASE {SIDE_DATABASE} OWNER TO retiring_main_owner")
    deploy(retiring, KEPT)
    assert not {"retiring_owning", "retiring_owning_a", "retiring_owning_b"} & set(roles_named(server, "retiring_"))
