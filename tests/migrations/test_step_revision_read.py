"""How the migration step's preview reads its database's revision (infra/migration_step.py) on a real server,
with the inputs as the engine hands them to the provider (numbers as floats): a step being created, whose
migrator the deploy makes, has every revision pending; an existing step's failed read names the login."""

from __future__ import annotations

from typing import Any

import pytest

from fixtures.cluster import ProvisionedDatabases
from infra.migration_preview import NO_LOGIN_YET, NOT_ANSWERING_YET
from infra.migration_step import RevisionUnreadableError, database_revision, step_preview
from migrations.shared.heads import declared_head, default_location
from migrations.shared.phases import revision_files
from model.names import DatabaseKey

NOT_YET_A_ROLE = "step_read_migrator_to_come"


def step_props(provisioned: ProvisionedDatabases, user: str, password: str) -> dict[str, Any]:
    server = provisioned.server.connection
    return {
        "tree": "main",
        "host": server.host,
        "port": float(server.port),  # as the engine's protobuf numbers reach a dynamic provider
        "database": provisioned.databases[DatabaseKey.MAIN],
        "user": user,
        "password": password,
        "sslmode": "disable",
        "tls": None,
        "script_location": None,
        "contract_through": None,
    }


def test_a_step_being_created_before_its_migrator_exists_has_every_revision_pending(
    provisioned: ProvisionedDatabases,
) -> None:
    props = step_props(provisioned, NOT_YET_A_ROLE, "made-by-this-deploy")
    assert database_revision(props, None, creating=True).read_from == NO_LOGIN_YET
    preview = step_preview(props, None, creating=True)
    every = tuple(file.revision for file in revision_files(default_location("main")))
    assert preview.plan.pending == every
    assert f"at base ({NO_LOGIN_YET}); to run: {', '.join(every)}" in preview.lines()[0]


def test_a_step_being_created_on_a_server_that_does_not_answer_has_every_revision_pending(
    provisioned: ProvisionedDatabases,
) -> None:
    """A new stack's plain `pulumi preview` needs no server (tests/integration/test_stack_files.py previews
    the shipped prod and staging stacks, whose hosts are not there)."""
    props = {**step_props(provisioned, NOT_YET_A_ROLE, "made-by-this-deploy"), "port": 1.0}  # nothing listens
    read = database_revision(props, None, creating=True)
    assert read.revision is None
    assert read.read_from.startswith(f"{NOT_ANSWERING_YET} (") and "port 1 failed" in read.read_from
    with pytest.raises(RevisionUnreadableError):
        database_revision(props, "main_0001", creating=False)


def test_an_existing_step_whose_login_is_refused_names_host_port_database_and_user(
    provisioned: ProvisionedDatabases,
) -> None:
    props = step_props(provisioned, NOT_YET_A_ROLE, "made-by-this-deploy")
    with pytest.raises(RevisionUnreadableError) as refused:
        database_revision(props, "main_0001", creating=False)
    address = f"{props['host']}:{provisioned.server.connection.port} as {NOT_YET_A_ROLE}"
    assert f"database {props['database']!r} at {address}" in str(refused.value)


def test_a_step_being_created_on_a_database_its_migrator_reaches_reads_its_revision(
    migrated: ProvisionedDatabases,
) -> None:
    migrator = migrated.names.migrator(DatabaseKey.MAIN)
    props = step_props(migrated, migrator, migrated.passwords[migrator])
    at = database_revision(props, None, creating=True)
    assert (at.revision, at.read_from) == (declared_head(default_location("main")), "read from the database")
