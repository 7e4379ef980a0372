"""`scripts/state-backend init|check`: the PostgreSQL database that holds a team's stacks (ops/deploy/state_backend.py).

init makes what PULUMI_BACKEND_URL names, as the server's admin, and nothing more: the role (LOGIN,
no other attribute; its password stored as a SCRAM verifier computed here, so the server never sees
the plain text), the database (owned by the admin; CONNECT for that role only, PUBLIC's revoked), and
a schema of the role's own, where the engine creates its table. Run again, it changes only what
differs (the password included). The admin connects with the URL's host, port and TLS parameters.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from infra.scram import scram_sha256_verifier
from ops.commands import cli
from ops.deploy import state_backend
from ops.deploy.state_backend import StateBackend
from ops.errors import ExitCode, UserError, run_main
from ops.localpg import embedded

URL_SHAPE = "postgres://ROLE@HOST:PORT/DATABASE?sslmode=... (the role's password in PGPASSWORD)"


def backend_from_environment() -> StateBackend:
    url = os.environ.get("PULUMI_BACKEND_URL", "")
    backend = StateBackend(url)
    if url:
        state_backend.check_url(backend)  # a URL the engine will read as the backend, before init makes it
    if not backend.is_postgres:
        shown = backend.shown or "not set"
        raise UserError(f"PULUMI_BACKEND_URL is {shown}: set it to the shared backend, {URL_SHAPE}.")
    parts = urlsplit(url)
    if not parts.username or not parts.path.strip("/") or not parts.hostname:
        raise UserError(f"PULUMI_BACKEND_URL ({backend.shown}) must name the role, host and database: {URL_SHAPE}.")
    return backend


def state_password(backend: StateBackend) -> str:
    password = unquote(urlsplit(backend.url).password or "") or os.environ.get("PGPASSWORD", "")
    if not password:
        raise UserError(
            f"the state role of {backend.shown} has no password: set PGPASSWORD (or put it in the URL); init gives "
            "the role that password."
        )
    return password


@dataclass(frozen=True)
class AdminLogin:
    """The server's admin, at the backend's host and port, with the URL's TLS parameters."""

    conninfo: str
    user: str
    password: str = field(repr=False)

    def connect(self, database: str) -> psycopg.Connection:
        try:
            return psycopg.connect(
                self.conninfo,
                dbname=database,
                user=self.user,
                password=self.password,
                autocommit=True,
                connect_timeout=10,
            )
        except psycopg.OperationalError as error:
            raise UserError(
                f"cannot log in to the backend's server as {self.user} ({state_backend.error_reason(error)}); "
                "nothing was changed.",
                ExitCode.SERVER_UNREACHABLE,
            ) from None


def admin_login(backend: StateBackend, admin_user: str | None) -> AdminLogin:
    parts = urlsplit(backend.url)
    port = parts.port or 5432
    if admin_user is None:
        local = embedded.current_connection() if embedded.is_initialized() else None
        if local is None or parts.hostname not in ("127.0.0.1", "localhost") or port != local.port:
            raise UserError(
                f"{backend.shown} is not the embedded server: give --admin-user ROLE, with its password on "
                "standard input."
            )
        admin_user, password = local.user, local.password
    else:
        password = sys.stdin.readline().rstrip("\n")
    server = parts._replace(netloc=f"{parts.hostname}:{port}", path="/postgres")
    return AdminLogin(StateBackend(server.geturl()).conninfo(), admin_user, password)


def init(backend: StateBackend, admin_user: str | None) -> None:
    parts = urlsplit(backend.url)
    role, database = unquote(parts.username or ""), unquote(parts.path.strip("/"))
    verifier = scram_sha256_verifier(state_password(backend))
    admin = admin_login(backend, admin_user)
    with admin.connect("postgres") as session:
        superuser = session.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        make_role(session, role, verifier, superuser == (True,))
        if session.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            session.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            print(f"state-backend: created the database {database}", file=sys.stderr)
        on_database = sql.Identifier(database)
        session.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(on_database))
        session.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(on_database, sql.Identifier(role)))
    with admin.connect(database) as session:
        own_schema(session, role, database)
    state_backend.check(backend)
    print(f"state-backend: {backend.shown} is ready; select it with PULUMI_BACKEND_URL in every shell and pipeline.")


def make_role(admin: psycopg.Connection, role: str, verifier: str, superuser: bool) -> None:
    """The state role: it logs in, and nothing else (no CREATEDB, CREATEROLE, inherited privileges)."""
    exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None
    statement = "ALTER ROLE {} WITH" if exists else "CREATE ROLE {} WITH"
    attributes = " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD {}"
    admin.execute(sql.SQL(statement + attributes).format(sql.Identifier(role), sql.Literal(verifier)))
    print(f"state-backend: {'updated' if exists else 'created'} the role {role}", file=sys.stderr)
    if not superuser:
        # CREATE SCHEMA ... AUTHORIZATION needs the admin to be able to act as the role (PostgreSQL 16+
        # gives the role's creator ADMIN OPTION only).
        admin.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))


def own_schema(session: psycopg.Connection, role: str, database: str) -> None:
    """A schema of the role's own, first in its search_path there; public offers it nothing."""
    ident = sql.Identifier(role)
    session.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
    session.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(ident, ident))
    session.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(ident, ident))
    session.execute(
        sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = {}").format(ident, sql.Identifier(database), ident)
    )


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("state-backend", sys.argv[1:] if argv is None else argv)
    backend = backend_from_environment()
    if args.command == "init":
        init(backend, args.admin_user)
    else:
        state_backend.check(backend)
        print(f"state-backend: {backend.shown} can hold state.")
    return ExitCode.OK


if __name__ == "__main__":
    run_main(main)
