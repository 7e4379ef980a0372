"""The two databases and the roles of a stack, and the one rule that names every role."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DatabaseKey(enum.StrEnum):
    MAIN = "main"
    LOGS = "logs"


class RoleKind(enum.StrEnum):
    OWNER = "owner"
    MIGRATOR = "migrator"
    RUNTIME = "runtime"
    """A NOLOGIN role that holds the grants of one of the application's identities (model.rotation)."""
    LOGIN = "login"
    """One of the two LOGIN members of a runtime role, through which it connects (model.rotation)."""
    READERS = "readers"
    """The NOLOGIN group of a database's read-only roles."""


SCHEMA = "public"
PUBLIC = "public"
"""The pseudo-role every role belongs to, as GRANT and has_*_privilege name it."""


def owner_key(database: DatabaseKey) -> str:
    return f"{database}_{RoleKind.OWNER}"


def migrator_key(database: DatabaseKey) -> str:
    return f"{database}_{RoleKind.MIGRATOR}"


def readers_key(database: DatabaseKey) -> str:
    return f"{database}_{RoleKind.READERS}"


def role_name(prefix: str, key: str) -> str:
    """Every role of a stack is `<prefix>_<key>`: `headhunter_main_owner`, `headhunter_app`, ..."""
    return f"{prefix}_{key}"


@dataclass(frozen=True)
class RoleNames:
    """The role names of one stack, from its prefix."""

    prefix: str

    def of(self, key: str) -> str:
        return role_name(self.prefix, key)

    def owner(self, database: DatabaseKey) -> str:
        return self.of(owner_key(database))

    def migrator(self, database: DatabaseKey) -> str:
        return self.of(migrator_key(database))
