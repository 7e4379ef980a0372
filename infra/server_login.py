"""Where a dynamic step of the stack connects, and as whom: one database of the server, one login.

The migration steps, the log maintenance, the login handovers and the role retirements each
connect on their own (the engine runs them in its dynamic-provider process). They keep the same
keys in their state: `ServerLogin.props()` writes them in the program, `connect()` reads them
back in the provider, with the password kept a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi

if TYPE_CHECKING:
    from psycopg import Connection


@dataclass(frozen=True)
class ServerLogin:
    host: pulumi.Input[str]
    port: pulumi.Input[int]
    sslmode: str
    database: pulumi.Input[str]
    """For a migrator, the database it migrates; the placement guard checks it before anything runs."""
    user: pulumi.Input[str]
    password: pulumi.Input[str]
    tls: dict[str, str] = field(default_factory=dict)
    """sslrootcert, sslcert and sslkey (those the stack sets), as libpq names them."""

    def props(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "sslmode": self.sslmode,
            "tls": self.tls,
            "database": self.database,
            "user": self.user,
            "password": pulumi.Output.secret(self.password),
        }


def connect(props: dict[str, Any], database: str | None = None, autocommit: bool = False) -> Connection[Any]:
    """A psycopg connection as a step's state says (to `database` instead of its own, when given)."""
    import psycopg

    return psycopg.connect(
        host=props["host"],
        port=int(props["port"]),
        dbname=database or props["database"],
        user=props["user"],
        password=props["password"],
        sslmode=props["sslmode"],
        connect_timeout=10,
        autocommit=autocommit,
        **(props.get("tls") or {}),
    )
