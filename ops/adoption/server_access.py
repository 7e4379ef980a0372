"""The admin's way into each database of the server being adopted: psycopg sessions and Alembic URLs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy.engine import URL


@dataclass(frozen=True)
class AdminAccess:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    libpq: Mapping[str, str] = field(default_factory=dict)
    """sslmode and the TLS files, as every other connection of the project passes them."""

    def connect(self, database: str = "postgres", autocommit: bool = True) -> psycopg.Connection[tuple[Any, ...]]:
        parameters: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": database,
            "connect_timeout": 10,
            **self.libpq,
        }
        return psycopg.connect(autocommit=autocommit, **parameters)

    def url(self, database: str) -> URL:
        """The admin's URL for an Alembic run (the password stays inside the URL object)."""
        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            database=database,
            query=dict(self.libpq),
        )
