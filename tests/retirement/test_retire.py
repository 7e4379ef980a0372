"""The retirement step's own code (infra/role_retirement.py retire()), called directly against the embedded server.

What a deploy's retirement promises, checked without the engine: a refusal changes nothing (the
role's logins still log in), and sessions get their grace period before they are ended. The engine
cases, which also check the step's place in the deploy, are in tests/integration/test_retirement.py.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from fixtures.cluster import Server
from infra.role_retirement import retire

GRACE_SECONDS = 3


@dataclass(frozen=True)
class RetiringRole:
    """A read-only role with its two logins, in a stack database, and a database outside the stack."""

    server: Server
    role: str
    password: str
    stack_database: str
    stack_owner: str
    foreign_database: str

    @property
    def logins(self) -> tuple[str, str]:
        return f"{self.role}_a", f"{self.role}_b"

    def props(self, grace_seconds: int = GRACE_SECONDS) -> dict[str, Any]:
        """The step's state, as the program writes it: the stack's one database, the admin on postgres."""
        admin = self.server.connection
        return {
            "roles": [self.role, *self.logins],
            "databases": [{"name": self.stack_database, "owner": self.stack_owner}],
            "host": admin.host,
            "port": admin.port,
            "sslmode": "disable",
            "tls": {},
            "database": "postgres",
            "user": admin.user,
            "password": admin.password,
            "grace_seconds": grace_seconds,
        }

    def log_in(self, login: str) -> psycopg.Connection:
        return self.server.connect(self.stack_database, user=login, password=self.password)


@pytest.fixture
def retiring(server: Server) -> Iterator[RetiringRole]:
    prefix = f"t{secrets.token_hex(3)}"
    password, stack_database, foreign_database = secrets.token_urlsafe(18), f"{prefix}_main", f"{prefix}_other"
    role = RetiringRole(server, f"{prefix}_reader", password, stack_database, f"{prefix}_main_owner", foreign_database)
    name = sql.Identifier
    with server.connect() as admin:
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(name(role.stack_owner)))
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(name(role.role)))
        for login in role.logins:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                    name(login), sql.Literal(role.password), name(role.role)
                )
            )
        for database, owner in ((role.stack_database, role.stack_owner), (role.foreign_database, admin.info.user)):
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name(database), name(owner)))
    try:
        yield role
    finally:
        with server.connect() as admin:
            for database in (role.stack_database, role.foreign_database):
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name(database)))
            for each in (*role.logins, role.role, role.stack_owner):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(name(each)))


def can_log_in(role: RetiringRole, login: str) -> bool:
    try:
        with role.log_in(login) as connection:
            return connection.execute("SELECT current_user").fetchone() == (login,)
    except psycopg.OperationalError:
        return False


def test_a_role_holding_a_grant_in_a_database_outside_the_stack_is_refused_and_nothing_changes(
    server: Server, retiring: RetiringRole
) -> None:
    with server.connect(retiring.foreign_database) as admin:
        admin.execute("CREATE TABLE ledger (line text)")
        admin.execute(sql.SQL("GRANT SELECT ON ledger TO {}").format(sql.Identifier(retiring.role)))
    session = retiring.log_in(retiring.logins[0])

    with pytest.raises(RuntimeError) as refused:
        retire(retiring.props())

    message = str(refused.value)
    assert f"objects in {retiring.foreign_database}, which is not a database of this stack" in message, message
    assert f"DROP OWNED BY {retiring.role}" in message and "nothing was changed" in message, message
    assert [can_log_in(retiring, login) for login in retiring.logins] == [True, True]
    assert session.execute("SELECT 1").fetchone() == (1,), "a session open before the refusal is left alone"
    with server.connect(retiring.foreign_database) as admin:
        held = admin.execute("SELECT has_table_privilege(%s, 'ledger', 'SELECT')", (retiring.role,)).fetchone()
        roles = admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", (retiring.props()["roles"],))
        assert (held, roles.fetchone()) == ((True,), (3,)), "the grant and the three roles are all still there"
    session.close()


def test_a_session_of_a_retired_role_lives_through_the_grace_period_and_is_ended_after_it(
    server: Server, retiring: RetiringRole
) -> None:
    session = retiring.log_in(retiring.logins[0])
    took: list[float] = []

    def run() -> None:
        started = time.monotonic()
        retire(retiring.props(GRACE_SECONDS))
        took.append(time.monotonic() - started)

    retirement = threading.Thread(target=run)
    retirement.start()
    with server.connect() as admin:  # the retirement has begun once it closed the logins
        query = "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s"
        while admin.execute(query, (retiring.logins[0],)).fetchone() == (True,):
            time.sleep(0.05)
    assert session.execute("SELECT 1").fetchone() == (1,), "the session lives on once the retirement has begun"
    retirement.join(timeout=GRACE_SECONDS + 30)

    assert took and took[0] >= GRACE_SECONDS, f"the retirement waited {took} s, not the {GRACE_SECONDS} s of grace"
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    assert not can_log_in(retiring, retiring.logins[1]), "its logins are closed"
