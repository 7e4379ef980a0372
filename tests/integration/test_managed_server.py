"""A managed server's admin (RDS, Cloud SQL, Azure): no superuser, yet the same privilege matrix.

The embedded server plays the managed one: the admin is a role with only LOGIN CREATEDB
CREATEROLE, as an RDS master user has, plus a NOLOGIN role standing for `rds_superuser` that it
belongs to (on the embedded server that role carries no power, which is the point: nothing here
may lean on a superuser). The stack deploys with `adminIsSuperuser: false` through the real
provider, and must then pass the whole verification, show no changes to a preview or a refresh,
rotate a password, and destroy cleanly.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from fixtures.cluster import Server
from fixtures.project_stack import ProjectStack, cleanup, leftover_objects, project_stack
from model.names import PUBLIC
from ops.errors import ExitCode

pytestmark = [pytest.mark.engine, pytest.mark.provider, pytest.mark.slow, pytest.mark.matrix]
ADMIN = "rdslike_admin"
ADMIN_GROUP = "rdslike_superuser"


@pytest.fixture
def managed(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    password = secrets.token_urlsafe(24)
    with server.connect() as admin:
        drop_admin_roles(admin)
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(ADMIN_GROUP)))
        # RDS's master user reaches the postgres database; the embedded server lets only its admin in.
        admin.execute(sql.SQL("GRANT CONNECT ON DATABASE postgres TO {}").format(sql.Identifier(ADMIN_GROUP)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE IN ROLE {} PASSWORD {}").format(
                sql.Identifier(ADMIN), sql.Identifier(ADMIN_GROUP), sql.Literal(password)
            )
        )
    config = {
        "embeddedServer": "false",
        "host": server.connection.host,
        "port": server.connection.port,
        "adminUser": ADMIN,
        "adminIsSuperuser": "false",
    }
    project = project_stack(tmp_path, "managed", "managed", **config)
    cleanup(project, server)
    assert project.pulumi("stack", "init").returncode == 0
    secret = project.pulumi("config", "set", "--secret", "headhunter-db:adminPassword", stdin=password)
    assert secret.returncode == 0, secret.stderr
    yield project
    cleanup(project, server)
    with server.connect() as admin:
        drop_admin_roles(admin)


def drop_admin_roles(admin: psycopg.Connection) -> None:
    revoke = sql.SQL("REVOKE CONNECT ON DATABASE postgres FROM {}")  # a grant on a database stops DROP ROLE
    for role in (ADMIN, ADMIN_GROUP):
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            admin.execute(revoke.format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def public_may(server: Server, project: ProjectStack) -> list[tuple[str, bool, bool]]:
    with server.connect() as admin:
        return admin.execute(
            "SELECT datname, has_database_privilege(%s, datname, 'CONNECT'), "
            "has_database_privilege(%s, datname, 'TEMPORARY') FROM pg_database WHERE datname = ANY(%s) ORDER BY 1",
            (PUBLIC.lower(), PUBLIC.lower(), list(project.databases)),
        ).fetchall()


def owner_memberships_of_the_admin(server: Server, project: ProjectStack) -> list[tuple[str, bool]]:
    """Each row of pg_auth_members making the admin a member of an owner role: (role, ADMIN OPTION)."""
    with server.connect() as admin:
        return admin.execute(
            "SELECT r.rolname, m.admin_option FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid"
            " WHERE m.member = %s::regrole AND r.rolname LIKE %s ORDER BY 1, 2",
            (ADMIN, f"{project.prefix}\\_%\\_owner"),
        ).fetchall()


def test_a_managed_admin_reaches_the_same_matrix_and_converges(server: Server, managed: ProjectStack) -> None:
    up = managed.script("ops.commands.up", managed.stack)
    assert up.returncode == ExitCode.OK, up.stdout[-4000:] + up.stderr[-2000:]

    # The stack's own grant of each owner role to the admin; from PostgreSQL 16 on, also the row PostgreSQL
    # makes for a role's creator, with ADMIN OPTION (infra/database.py leaves that option out of the diff).
    with server.connect() as admin:
        major = admin.info.server_version // 10000
    owners = sorted(f"{managed.prefix}_{key}_owner" for key in ("main", "logs"))
    ours = [(owner, False) for owner in owners]
    creators = [(owner, True) for owner in owners] if major >= 16 else []
    assert owner_memberships_of_the_admin(server, managed) == sorted(ours + creators)

    assert public_may(server, managed) == [(name, False, False) for name in sorted(managed.databases)]
    verified = managed.script("ops.commands.verify", managed.stack)
    assert verified.returncode == ExitCode.OK, verified.stdout[-4000:]
    preview = managed.pulumi("preview", "--expect-no-changes")
    assert preview.returncode == 0, preview.stdout[-4000:]
    refreshed = managed.pulumi("refresh", "--expect-no-changes", "--yes")
    assert refreshed.returncode == 0, refreshed.stdout[-4000:]

    managed.pulumi("config", "set", "--path", "headhunter-db:passwordRotations.app", "2")
    rotated = managed.script("ops.commands.deploy", managed.stack)
    assert rotated.returncode == ExitCode.OK, rotated.stdout[-4000:] + rotated.stderr[-2000:]
    assert "1 to update" in rotated.stdout or "to replace" in rotated.stdout, rotated.stdout[-3000:]

    destroyed = managed.script("ops.commands.destroy", managed.stack, "--yes")
    assert destroyed.returncode == ExitCode.OK, destroyed.stdout[-4000:] + destroyed.stderr[-2000:]
    assert leftover_objects(managed, server) == []
