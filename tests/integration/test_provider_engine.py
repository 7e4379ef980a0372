"""The real engine and the real postgresql provider plugin: create a database and a role, then destroy.

Bootstrap installs the plugin (README, "The toolchain"); where it is missing this test fails: a
green run means the provider ran.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_postgresql as postgresql
import pytest

from fixtures.cluster import Server, scalar
from fixtures.programs import open_engine_stack

pytestmark = [pytest.mark.engine, pytest.mark.provider]


def test_up_creates_a_database_and_a_role_and_destroy_removes_them(server: Server, engine_workspace: Path) -> None:
    admin = server.connection

    def program() -> None:
        provider = postgresql.Provider(
            "server",
            host=admin.host,
            port=admin.port,
            username=admin.user,
            password=pulumi.Output.secret(admin.password),
            sslmode="disable",
            superuser=True,
        )
        role = postgresql.Role(
            "smoke-role", name="provider_smoke_owner", login=False, opts=pulumi.ResourceOptions(provider=provider)
        )
        postgresql.Database(
            "smoke-db", name="provider_smoke_db", owner=role.name, opts=pulumi.ResourceOptions(provider=provider)
        )

    stack = open_engine_stack(engine_workspace, program)
    stack.up(color="never")
    with server.connect() as connection:
        owner = scalar(
            connection, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'provider_smoke_db'"
        )
        assert owner == "provider_smoke_owner"
    stack.destroy(color="never")
    with server.connect() as connection:
        assert scalar(connection, "SELECT count(*) FROM pg_database WHERE datname = 'provider_smoke_db'") == 0
        assert scalar(connection, "SELECT count(*) FROM pg_roles WHERE rolname = 'provider_smoke_owner'") == 0
