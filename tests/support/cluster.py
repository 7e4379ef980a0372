"""Test access to PostgreSQL: the embedded server, and databases provisioned for one test session."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from infra.plain_sql import provisioning_statements
from infra.privileges import RUNTIME_ACCESS, DatabaseKey, RoleNames
from ops import localpg
from ops.deployment import DeployedStack


def scalar(connection: psycopg.Connection, query: str, params: tuple[object, ...] | None = None) -> object:
    """The single value a query returns."""
    row = connection.execute(query, params).fetchone()
    assert row is not None, query
    return row[0]


@dataclass(frozen=True)
class Server:
    connection: localpg.Connection

    def connect(
        self, database: str = "postgres", user: str | None = None, password: str | None = None, autocommit: bool = True
    ) -> psycopg.Connection:
        return psycopg.connect(
            host=self.connection.host,
            port=self.connection.port,
            dbname=database,
            user=user or self.connection.user,
            password=password if user is not None else self.connection.password,
            autocommit=autocommit,
            connect_timeout=10,
        )

    def url(self, database: str, user: str | None = None, password: str | None = None) -> URL:
        return URL.create(
            "postgresql+psycopg",
            host=self.connection.host,
            port=self.connection.port,
            database=database,
            username=user or self.connection.user,
            password=password if user is not None else self.connection.password,
        )


@dataclass(frozen=True)
class Deployment:
    """Names and credentials of one provisioned pair of databases."""

    server: Server
    names: RoleNames
    databases: dict[DatabaseKey, str]
    passwords: dict[str, str] = field(repr=False)

    def connect_as(self, role: str, database: DatabaseKey | str, autocommit: bool = True) -> psycopg.Connection:
        name = self.databases[database] if isinstance(database, DatabaseKey) else database
        return self.server.connect(name, user=role, password=self.passwords[role], autocommit=autocommit)

    def described(self) -> DeployedStack:
        """This deployment as scripts/verify reads a deployed stack (its outputs)."""
        urls = {f"{key}_migrator": self.migrator_url(key) for key in DatabaseKey}
        urls |= {
            a.role_key: self.server.url(
                self.databases[a.database],
                self.names.runtime(a.role_key),
                self.passwords[self.names.runtime(a.role_key)],
            )
            for a in RUNTIME_ACCESS
        }
        return DeployedStack(
            stack="test",
            host=self.server.connection.host,
            port=self.server.connection.port,
            sslmode="disable",
            role_prefix=self.names.prefix,
            databases={key.value: name for key, name in self.databases.items()},
            read_only_roles=[],
            connection_limits={},
            connection_urls={
                key: url.set(drivername="postgresql").render_as_string(hide_password=False) for key, url in urls.items()
            },
        )

    def migrator_url(self, database: DatabaseKey) -> URL:
        migrator = self.names.migrator(database)
        return self.server.url(self.databases[database], migrator, self.passwords[migrator])


def login_roles(names: RoleNames) -> list[str]:
    return [names.migrator(db) for db in DatabaseKey] + [names.runtime(a.role_key) for a in RUNTIME_ACCESS]


def provision_with_sql(server: Server, prefix: str | None = None) -> Deployment:
    """A fresh pair of databases with the model's roles and grants, under a prefix of its own."""
    prefix = prefix or f"t{secrets.token_hex(3)}"
    names = RoleNames(prefix)
    databases = {DatabaseKey.MAIN: f"{prefix}_main", DatabaseKey.LOGS: f"{prefix}_logs"}
    passwords = {role: secrets.token_urlsafe(18) for role in login_roles(names)}
    for statement in provisioning_statements(names, databases, passwords):
        with server.connect(statement.database or "postgres") as connection:
            connection.execute(statement.sql)
    return Deployment(server, names, databases, passwords)


def drop_deployment(deployment: Deployment) -> None:
    with deployment.server.connect() as connection:
        for database in deployment.databases.values():
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        for role in deployment.names.all_names():
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@contextmanager
def sql_deployment(server: Server) -> Iterator[Deployment]:
    deployment = provision_with_sql(server)
    try:
        yield deployment
    finally:
        drop_deployment(deployment)
