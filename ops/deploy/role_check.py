"""Application-side proof that the deployed roles work, run by scripts/up after every deploy.

Each check connects as the runtime role with the URL the stack exports and does what the
application does; writes happen in a transaction that is rolled back, so a check leaves no row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psycopg

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


def _write_invitation(connection: psycopg.Connection) -> None:
    connection.execute(
        "INSERT INTO user_invitations (email, token_hash, role, expires_at) "
        "VALUES ('deploy-check@example.invalid', %s, 'viewer', now() + interval '1 hour')",
        (hashlib.sha256(b"deploy-check").digest(),),
    )


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
