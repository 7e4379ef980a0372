"""The server answers where the stack says, and both databases exist with the right owners."""

from __future__ import annotations

import ipaddress
import socket

import psycopg
import pytest
import testinfra

from infra.settings import MIN_SUPPORTED_SERVER_VERSION
from model.names import DatabaseKey
from ops.deploy.deployed_stack import DeployedStack


def test_postgresql_answers_on_the_configured_address(host: testinfra.host.Host, stack: DeployedStack) -> None:
    ready = host.run(f"pg_isready --host={stack.host} --port={stack.port} --timeout=10")
    assert ready.rc == 0, (
        f"PostgreSQL does not answer at {stack.host}:{stack.port} from {host.backend.hostname}: "
        f"{ready.stdout.strip()}; start the server or fix headhunter-db:host/port"
    )


def test_the_database_exists_with_its_owner(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, database: DatabaseKey
) -> None:
    name, owner = stack.database(database), stack.names.owner(database)
    row = (
        catalogs[database]
        .execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,))
        .fetchone()
    )
    assert row is not None, f"database {name} does not exist: run scripts/deploy {stack.stack}"
    assert row[0] == owner, f"database {name} is owned by {row[0]}, not {owner}: ALTER DATABASE {name} OWNER TO {owner}"


def test_the_two_databases_are_different(stack: DeployedStack) -> None:
    names = {stack.database(key) for key in DatabaseKey}
    assert len(names) == 2, "main and logs must be different databases"


def test_the_server_runs_a_supported_version(catalogs: dict[DatabaseKey, psycopg.Connection]) -> None:
    version = int(catalogs[DatabaseKey.MAIN].execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
    assert version >= MIN_SUPPORTED_SERVER_VERSION * 10000, (
        f"the server runs PostgreSQL {version // 10000}; this stack needs {MIN_SUPPORTED_SERVER_VERSION} or later"
    )


def test_passwords_are_stored_as_scram(catalogs: dict[DatabaseKey, psycopg.Connection]) -> None:
    setting = catalogs[DatabaseKey.MAIN].execute("SHOW password_encryption").fetchone()[0]  # type: ignore[index]
    assert setting == "scram-sha-256", (
        f"password_encryption is {setting}: set it to scram-sha-256 in postgresql.conf (md5 hashes can be replayed)"
    )


def test_connections_are_encrypted_when_the_stack_asks(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack
) -> None:
    row = catalogs[DatabaseKey.MAIN].execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row is not None
    if stack.sslmode in ("require", "verify-ca", "verify-full"):
        assert row[0], f"sslmode is {stack.sslmode}, but the connection is not encrypted: enable ssl on the server"


def test_the_server_listens_only_where_the_stack_says(host: testinfra.host.Host, stack: DeployedStack) -> None:
    """Checked on the testinfra host that runs the server: a loopback server must not listen on every address."""
    address = socket.gethostbyname(stack.host)  # testinfra's socket check takes an address, not a name
    if not ipaddress.ip_address(address).is_loopback or host.backend.NAME != "local":
        pytest.skip(f"{stack.host} is not served by this testinfra host ({host.backend.hostname})")
    assert host.socket(f"tcp://{address}:{stack.port}").is_listening, (
        f"nothing listens on {stack.host} ({address}) port {stack.port}: start the server"
    )
    assert not host.socket(f"tcp://0.0.0.0:{stack.port}").is_listening, (
        f"the server listens on every address at port {stack.port}: set listen_addresses to {stack.host}"
    )
