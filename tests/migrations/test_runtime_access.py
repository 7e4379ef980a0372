"""What the runtime roles can do with the migrated tables: behaviour, not only catalogs.

The databases here are provisioned from the privilege model as plain SQL (fixtures.plain_sql); the
same checks against a Pulumi-provisioned stack live in tests/integration. A denied statement must
fail with SQLSTATE 42501, and a database a role may not use must refuse the connection.
"""

from __future__ import annotations

import hashlib

import psycopg
import pytest

from fixtures import observed
from fixtures.cluster import ProvisionedDatabases, Server, drop_provisioned, provision_with_sql, scalar
from model.names import DatabaseKey

INSERT_LOG = "INSERT INTO system_logs (level, component, message, metadata) VALUES ('ERROR', 'worker', 'boom', '{}')"
INSERT_LLM_LOG = (
    "INSERT INTO llm_logs (component, provider, model, status, prompt_tokens, completion_tokens, latency_ms, cost_usd)"
    " VALUES ('screening', 'openai', 'gpt-x', 'success', 120, 30, 850, 0.0021)"
)


def writer(provisioned: ProvisionedDatabases) -> psycopg.Connection:
    return provisioned.connect_as(provisioned.names.of("logs_writer"), DatabaseKey.LOGS)


def test_the_logs_writer_appends_to_both_log_tables(migrated: ProvisionedDatabases) -> None:
    with writer(migrated) as connection:
        connection.execute(INSERT_LOG)
        connection.execute(INSERT_LLM_LOG)
    with migrated.connect_as(migrated.names.of("logs_reader"), DatabaseKey.LOGS) as reader:
        assert reader.execute("SELECT level, component FROM system_logs").fetchall() == [("ERROR", "worker")]
        assert reader.execute("SELECT total_tokens FROM llm_logs").fetchall() == [(150,)]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE system_logs SET message = 'rewritten'",
        "DELETE FROM system_logs",
        "TRUNCATE system_logs",
        "SELECT * FROM system_logs",
        "UPDATE llm_logs SET cost_usd = 0",
        "DELETE FROM llm_logs",
    ],
)
def test_the_logs_writer_cannot_change_or_read_what_was_written(migrated: ProvisionedDatabases, statement: str) -> None:
    with writer(migrated) as connection:
        connection.execute(INSERT_LOG)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute(statement)


def test_insert_returning_needs_select_so_the_writer_inserts_without_it(migrated: ProvisionedDatabases) -> None:
    """SQLAlchemy returns primary keys by default; an insert-only writer must turn that off."""
    with writer(migrated) as connection, pytest.raises(psycopg.errors.InsufficientPrivilege):
        connection.execute(INSERT_LOG + " RETURNING id")


def test_identity_columns_need_no_sequence_privilege(migrated: ProvisionedDatabases) -> None:
    with migrated.server.connect(migrated.databases[DatabaseKey.LOGS]) as admin:
        sequence_grants = scalar(
            admin,
            "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) acl "
            "WHERE c.relkind = 'S' AND acl.grantee <> c.relowner",
        )
    assert sequence_grants == 0
    with writer(migrated) as connection:
        connection.execute(INSERT_LOG)
        connection.execute(INSERT_LOG)
    with migrated.connect_as(migrated.names.of("logs_reader"), DatabaseKey.LOGS) as reader:
        assert scalar(reader, "SELECT array_agg(id ORDER BY id) FROM system_logs") == [1, 2]


def test_the_logs_reader_cannot_write(migrated: ProvisionedDatabases) -> None:
    with (
        migrated.connect_as(migrated.names.of("logs_reader"), DatabaseKey.LOGS) as reader,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        reader.execute(INSERT_LOG)


def test_the_app_writes_user_invitations_but_cannot_change_the_schema(migrated: ProvisionedDatabases) -> None:
    token_hash = hashlib.sha256(b"invitation token").digest()
    with migrated.connect_as(migrated.names.of("app"), DatabaseKey.MAIN) as app:
        invitation_id = scalar(
            app,
            "INSERT INTO user_invitations (email, token_hash, role, expires_at) "
            "VALUES ('Ada@example.com', %s, 'recruiter', now() + interval '7 days') RETURNING id",
            (token_hash,),
        )
        app.execute("UPDATE user_invitations SET accepted_at = now() WHERE id = %s", (invitation_id,))
        assert scalar(app, "SELECT count(*) FROM user_invitations WHERE accepted_at IS NOT NULL") == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("CREATE TABLE system_logs (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("DROP TABLE user_invitations")


@pytest.mark.parametrize(
    ("role_key", "database"),
    [
        ("app", DatabaseKey.LOGS),
        ("logs_writer", DatabaseKey.MAIN),
        ("logs_reader", DatabaseKey.MAIN),
    ],
)
def test_no_runtime_role_can_connect_to_the_other_database(
    migrated: ProvisionedDatabases, role_key: str, database: DatabaseKey
) -> None:
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        migrated.connect_as(migrated.names.of(role_key), database)


def test_public_cannot_connect_or_create_temporary_tables(migrated: ProvisionedDatabases) -> None:
    with migrated.server.connect() as admin:
        rows = admin.execute(
            "SELECT datname, has_database_privilege('public', datname, 'CONNECT'), "
            "has_database_privilege('public', datname, 'TEMPORARY') FROM pg_database WHERE datname = ANY(%s)",
            (list(migrated.databases.values()),),
        ).fetchall()
    assert rows and all(not connect and not temporary for _, connect, temporary in rows)


@pytest.mark.fault(
    what="the server logs every statement (`log_statement = 'all'`)",
    recovery="none needed: the log shows SCRAM verifiers, never a password",
)
def test_role_passwords_never_reach_the_server_log(server: Server) -> None:
    """Roles are created with SCRAM verifiers, so even log_statement = 'all' records no password."""
    with observed.statements_logged(server) as log:
        provisioned = provision_with_sql(server)
    try:
        logged = log[0]
        assert "CREATE ROLE" in logged and "SCRAM-SHA-256$" in logged  # the statements were logged
        for password in provisioned.passwords.values():
            assert password not in logged
        with provisioned.connect_as(provisioned.names.of("logs_reader"), DatabaseKey.LOGS) as reader:
            assert scalar(reader, "SELECT current_user") == provisioned.login_of(provisioned.names.of("logs_reader"))
    finally:
        drop_provisioned(provisioned)
