"""A migration tree's identity: which database it belongs to and the names derived from that."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from model.names import DatabaseKey, owner_key, role_name


@dataclass(frozen=True)
class Tree:
    key: str
    """main or logs: the database the tree belongs to, as model.names.DatabaseKey names it."""

    @property
    def version_table(self) -> str:
        # Each tree names its own version table (alembic --name does not change it, alembic#722),
        # so a tree run against the other database finds the other's table and stops.
        return f"alembic_version_{self.key}"

    @property
    def owner_suffix(self) -> str:
        """Provisioning gives the database to `<prefix>_<key>_owner`: that ownership is the marker."""
        return role_name("", owner_key(DatabaseKey(self.key)))

    @property
    def url_env_var(self) -> str:
        return f"HEADHUNTER_{self.key.upper()}_DATABASE_URL"

    @property
    def expected_database_env_var(self) -> str:
        return f"HEADHUNTER_{self.key.upper()}_DATABASE"

    @property
    def advisory_lock_key(self) -> int:
        """A stable 32-bit key per tree for pg_advisory_lock."""
        return zlib.crc32(f"headhunter:alembic:{self.key}".encode())


MAIN = Tree("main")
LOGS = Tree("logs")
TREES = {tree.key: tree for tree in (MAIN, LOGS)}
