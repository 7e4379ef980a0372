"""The real engine and the real postgresql provider plugin: create a database and a role, then destroy.

Bootstrap installs the plugin (README, "The toolchain"); where it is missing this test fails: a
green run means the provider ran.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pulumi
import pulumi_postgresql as postgresql
import pytest

from fixtures.cluster import ProvisionedDatabases, Server, scalar
from fixtures.programs import open_engine_stack
from infra.acl_chain import AclChain, GrantTarget
from model.names import DatabaseKey

pytestmark = [pytest.mark.engine, pytest.mark.provider, pytest.mark.matrix]


def admin_provider(server: Server) -> postgresql.Provider:
    """The provider as the embedded server's superuser sees it (inside a program)."""
    admin = server.connection
    return postgresql.Provider(
        "server",
        host=admin.host,
        port=admin.port,
        username=admin.user,
        password=pulumi.Output.secret(admin.password),
        sslmode="disable",
        superuser=True,
    )


def test_up_creates_a_database_and_a_role_and_destroy_removes_them(server: Server, engine_workspace: Path) -> None:
    def program() -> None:
        provider = admin_provider(server)
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


def test_a_replaced_grant_keeps_the_privileges_it_grants_again(
    provisioned: ProvisionedDatabases, engine_workspace: Path
) -> None:
    """A Grant's `objects` cannot change in place: a new table replaces the grant on the existing ones.

    Replaced create-first, the old grant's delete (a REVOKE) would take back from the kept tables
    what the new grant had just given (pulumi-postgresql#233); the ACL chain replaces delete-first.
    """
    logs = provisioned.databases[DatabaseKey.LOGS]
    writer = provisioned.names.of("logs_writer")
    with provisioned.server.connect(logs) as connection:
        connection.execute("CREATE TABLE kept_table (id int); CREATE TABLE added_table (id int)")

    def program_granting(tables: list[str]) -> Callable[[], None]:
        def program() -> None:
            provider = admin_provider(provisioned.server)
            with_provider = pulumi.ResourceOptions(providers=[provider])
            parent = pulumi.ComponentResource("test:acl:Chain", "chain", opts=with_provider)
            chain = AclChain(start=provider)
            target = GrantTarget(logs, writer, "table", schema="public", objects=tables)
            chain.grant(parent, "writer-tables", target, ["INSERT"])

        return program

    open_engine_stack(engine_workspace, program_granting(["kept_table"])).up(color="never")
    replaced = open_engine_stack(engine_workspace, program_granting(["added_table", "kept_table"])).up(color="never")

    changes = {str(operation): count for operation, count in (replaced.summary.resource_changes or {}).items()}
    assert changes.get("replace") == 1, changes
    with provisioned.server.connect(logs) as connection:
        held = connection.execute(
            "SELECT t, has_table_privilege(%s, t, 'INSERT') FROM unnest(ARRAY['kept_table', 'added_table']) AS t",
            (writer,),
        ).fetchall()
    assert held == [("kept_table", True), ("added_table", True)]
