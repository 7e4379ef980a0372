"""The dev stack's embedded server as data: the connection file that `scripts/localpg start` writes.

The program reads where the server listens and its admin password from `.state/localpg/` (the
password in a file of its own, mode 0600); it never imports the tooling that runs the server.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = Path(os.environ.get("HEADHUNTER_STATE_DIR", Path(__file__).resolve().parent.parent / ".state"))
FOLDER = STATE_DIR / "localpg"
CONNECTION_FILE = FOLDER / "connection.json"
PASSWORD_FILE = FOLDER / "superuser.password"


class EmbeddedServerMissingError(RuntimeError):
    """The stack uses the embedded server, and it has not been started on this checkout."""


@dataclass(frozen=True)
class EmbeddedServer:
    host: str
    port: int
    user: str

    @property
    def password(self) -> str:
        return PASSWORD_FILE.read_text()


def read() -> EmbeddedServer:
    if not CONNECTION_FILE.exists() or not PASSWORD_FILE.exists():
        raise EmbeddedServerMissingError(
            "the embedded PostgreSQL of this checkout has not been started: run `scripts/localpg start`."
        )
    described = json.loads(CONNECTION_FILE.read_text())
    return EmbeddedServer(host=described["host"], port=int(described["port"]), user=described["user"])


def write(server: EmbeddedServer) -> None:
    """Called by scripts/localpg whenever the server starts (its port may change then)."""
    CONNECTION_FILE.write_text(json.dumps({"host": server.host, "port": server.port, "user": server.user}) + "\n")
