"""The dev stack's embedded server as data: the connection file that `scripts/localpg start` writes.

The program reads where the server listens and its admin password from `<state folder>/localpg/`
(the password in a file of its own, mode 0600); it never imports the tooling that runs the server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

STATE_DIR_ENV_VAR = "HEADHUNTER_STATE_DIR"
"""The checkout's state folder (the embedded server, the file backend); .state/ when unset. Tests give
each run a folder of its own."""
DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / ".state"


def state_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get(STATE_DIR_ENV_VAR) or DEFAULT_STATE_DIR)


def folder(state: Path) -> Path:
    """Where scripts/localpg keeps the server's connection file and password, under a state folder."""
    return state / "localpg"


def password_file(state: Path) -> Path:
    return folder(state) / "superuser.password"


def _connection_file(state: Path) -> Path:
    return folder(state) / "connection.json"


class EmbeddedServerMissingError(RuntimeError):
    """The stack uses the embedded server, and it has not been started on this checkout."""


@dataclass(frozen=True)
class EmbeddedServer:
    host: str
    port: int
    user: str
    state: Path
    major: int | None = None
    """The server's PostgreSQL major; None in a connection file written before it was recorded."""

    @property
    def password(self) -> str:
        return password_file(self.state).read_text()


def read(state: Path) -> EmbeddedServer:
    if not _connection_file(state).exists() or not password_file(state).exists():
        raise EmbeddedServerMissingError(
            "the embedded PostgreSQL of this checkout has not been started: run `scripts/localpg start`."
        )
    described = json.loads(_connection_file(state).read_text())
    return EmbeddedServer(described["host"], int(described["port"]), described["user"], state, described.get("major"))


def write(server: EmbeddedServer) -> None:
    """Called by scripts/localpg whenever the server starts (its port may change then)."""
    _connection_file(server.state).write_text(
        json.dumps({"host": server.host, "port": server.port, "user": server.user, "major": server.major}) + "\n"
    )
