"""The server answers where the stack says, and both databases exist with the right owners."""

from __future__ import annotations

import psycopg
import testinfra

from model.names import DatabaseKey
from ops.deployed_stack import DeployedStack


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
