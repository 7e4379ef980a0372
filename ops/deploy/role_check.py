"""Application-side proof that the deployed roles work, run by scripts/up after every deploy.

Each check connects as the runtime role with the URL the stack exports and does what the
application does; writes happen in a transaction that is rolled back, so a check leaves no row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psycopg
from psycopg import sql

Check = Callable[[psycopg.Connection], None]


@dataclass(frozen=True)
class RoleCheck:
    role_key: str
    description: str
    run: Check


def _insert_system_log(connection: psycopg.Connection) -> None:
    # No RETURNING: the writer may not SELECT, and RETURNING needs it.
    connection.execute("INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'deploy-check', 'ok')")


def _insert_llm_log(connection: psycopg.Connection) -> None:
    connection.execute(
        "INSERT INTO llm_logs (component, provider, model, status, latency_ms) "
        "VALUES ('deploy-check', 'none', 'none', 'success', 0)"
    )


def _read_logs(connection: psycopg.Connection) -> None:
    connection.execute("SELECT count(*) FROM system_logs").fetchone()
    connection.execute("SELECT count(*) FROM llm_logs").fetchone()


# The columns an INSERT must give a value: NOT NULL, with no default, neither identity nor generated.
REQUIRED_COLUMNS = """
SELECT attname FROM pg_attribute
WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
  AND attnotnull AND NOT atthasdef AND attidentity = '' AND attgenerated = ''
ORDER BY attnum
"""


def _write_invitation(connection: psycopg.Connection) -> None:
    """An INSERT into user_invitations as the app, taken by PostgreSQL as far as the row's constraints.

    Its columns are read from the catalog, not written here: an expand/contract revision renames,
    drops and tightens the table's columns (docs/expand-contract.md), and the check must hold before
    and after it. The row gives NULL to each column that needs a value, so PostgreSQL refuses it with
    a constraint violation (class 23), which it reaches only once the login connected, the role had
    INSERT on the table and those columns, and the row's defaults and BEFORE triggers ran: everything
    the app needs to write. A missing privilege fails with its own error (42501), never class 23.
    """
    rows = connection.execute(REQUIRED_COLUMNS, ("user_invitations",)).fetchall()
    columns = [sql.Identifier(row[0]) for row in rows]
    statement = (
        sql.SQL("INSERT INTO user_invitations ({}) VALUES ({})").format(
            sql.SQL(", ").join(columns), sql.SQL(", ").join([sql.NULL] * len(columns))
        )
        if columns
        else sql.SQL("INSERT INTO user_invitations DEFAULT VALUES")
    )
    # The row reached its constraints: the write itself is allowed (run_checks rolls the transaction back).
    with contextlib.suppress(psycopg.errors.IntegrityError):
        connection.execute(statement)


CHECKS = (
    RoleCheck("logs_writer", "the logs writer can insert into system_logs", _insert_system_log),
    RoleCheck("logs_writer", "the logs writer can insert into llm_logs", _insert_llm_log),
    RoleCheck("logs_reader", "the logs reader can read system_logs and llm_logs", _read_logs),
    RoleCheck("app", "the app can write user_invitations", _write_invitation),
)


def run_checks(connection_urls: Mapping[str, str]) -> list[tuple[RoleCheck, str | None]]:
    """Each check with None when it passed, or the database's error."""
    results: list[tuple[RoleCheck, str | None]] = []
    for check in CHECKS:
        try:
            with psycopg.connect(connection_urls[check.role_key], connect_timeout=10) as connection:
                check.run(connection)
                connection.rollback()
            results.append((check, None))
        except psycopg.Error as error:
            results.append((check, str(error).strip().splitlines()[0]))
    return results
