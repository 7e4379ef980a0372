"""Who may do what, where: the one declarative privilege model of the project.

The Pulumi program declares grants from it, the SQL rendering (tests of the migration trees, the
benchmark's floor) applies it as plain statements, and the docs print it as a table. Nothing else
restates it.

The model per database:
- an owner role (NOLOGIN) owns the database, and through PostgreSQL 15's `pg_database_owner` its
  public schema; every table is created by it (the migrator acts as the owner), so
- default privileges FOR ROLE <owner> hand each new table to the runtime roles with the verbs below;
  adding a migration never needs a hand-made grant;
- a migrator (LOGIN) is a member of the owner; migrations run as the migrator;
- runtime login roles get CONNECT on their one database, USAGE on its public schema, and table verbs;
- PUBLIC gets nothing: no CONNECT or TEMPORARY on the databases, nothing on the public schemas.

Tables use identity columns, whose sequences need no privilege for an INSERT that takes the default
(PostgreSQL does not check USAGE on an identity column's sequence), so no role is granted sequences.
"""

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


SCHEMA = "public"


@dataclass(frozen=True)
class Access:
    """What a runtime role may do in its one database."""

    role_key: str
    database: DatabaseKey
    purpose: str
    database_privileges: frozenset[str]
    schema_privileges: frozenset[str]
    table_privileges: frozenset[str]


def _access(role_key: str, database: DatabaseKey, purpose: str, table_privileges: set[str]) -> Access:
    return Access(
        role_key, database, purpose, frozenset({"CONNECT"}), frozenset({"USAGE"}), frozenset(table_privileges)
    )


RUNTIME_ACCESS: tuple[Access, ...] = (
    _access(
        "app",
        DatabaseKey.MAIN,
        "the main application: reads and writes its tables, no DDL",
        {"SELECT", "INSERT", "UPDATE", "DELETE"},
    ),
    # Append-only: INSERT alone. The writer must insert without RETURNING (RETURNING needs SELECT).
    _access("logs_writer", DatabaseKey.LOGS, "the log worker: appends rows, reads nothing back", {"INSERT"}),
    _access("logs_reader", DatabaseKey.LOGS, "the admin endpoints: read the logs", {"SELECT"}),
)


@dataclass(frozen=True)
class RoleNames:
    """Role names derived from the stack's prefix: `<prefix>_main_owner`, `<prefix>_app`, ..."""

    prefix: str

    def owner(self, database: DatabaseKey) -> str:
        return f"{self.prefix}_{database}_owner"

    def migrator(self, database: DatabaseKey) -> str:
        return f"{self.prefix}_{database}_migrator"

    def runtime(self, role_key: str) -> str:
        return f"{self.prefix}_{role_key}"

    def all_keys(self) -> tuple[str, ...]:
        per_database = tuple(f"{db}_{kind}" for db in DatabaseKey for kind in (RoleKind.OWNER, RoleKind.MIGRATOR))
        return per_database + tuple(access.role_key for access in RUNTIME_ACCESS)

    def by_key(self, key: str) -> str:
        return f"{self.prefix}_{key}"

    def all_names(self) -> tuple[str, ...]:
        return tuple(self.by_key(key) for key in self.all_keys())


def read_only_access(role_name: str, database: DatabaseKey) -> Access:
    """An extra reader (stack config `readOnlyRoles`): like logs_reader, on the database it names."""
    return _access(role_name, database, "an extra read-only login", {"SELECT"})


# The expected effective privileges, as PostgreSQL's has_*_privilege functions report them (role
# membership included): the verification suite compares every cell, and the docs print them.
DATABASE_PRIVILEGES = ("CONNECT", "CREATE", "TEMPORARY")
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")
PUBLIC = "public"


@dataclass(frozen=True)
class Grantee:
    """A role of the stack (or PUBLIC) with what it is for."""

    name: str
    kind: RoleKind | None  # None for PUBLIC
    database: DatabaseKey | None
    access: Access | None = None

    @property
    def login(self) -> bool:
        return self.kind in (RoleKind.MIGRATOR, RoleKind.RUNTIME)


def grantees(names: RoleNames, extra: tuple[tuple[str, Access], ...] = ()) -> tuple[Grantee, ...]:
    """Every role of the stack, then PUBLIC."""
    roles = [Grantee(names.owner(db), RoleKind.OWNER, db) for db in DatabaseKey]
    roles += [Grantee(names.migrator(db), RoleKind.MIGRATOR, db) for db in DatabaseKey]
    roles += [Grantee(names.runtime(a.role_key), RoleKind.RUNTIME, a.database, a) for a in RUNTIME_ACCESS]
    roles += [Grantee(name, RoleKind.RUNTIME, access.database, access) for name, access in extra]
    return (*roles, Grantee(PUBLIC, None, None))


def expected_memberships(names: RoleNames) -> dict[str, frozenset[str]]:
    """Role -> the roles it is a member of. Only migrators are members of anything."""
    return {names.migrator(db): frozenset({names.owner(db)}) for db in DatabaseKey}


def expected_database_privileges(grantee: Grantee, database: DatabaseKey) -> frozenset[str]:
    if grantee.database != database:
        return frozenset()
    if grantee.kind in (RoleKind.OWNER, RoleKind.MIGRATOR):
        return frozenset(DATABASE_PRIVILEGES)  # the owner's, inherited by its migrator
    assert grantee.access is not None
    return grantee.access.database_privileges


def expected_table_privileges(
    grantee: Grantee, database: DatabaseKey, table: str, is_version_table: bool
) -> frozenset[str]:
    if grantee.database != database:
        return frozenset()
    if grantee.kind in (RoleKind.OWNER, RoleKind.MIGRATOR):
        return frozenset(TABLE_PRIVILEGES)
    if is_version_table or grantee.access is None:
        return frozenset()  # only the owner touches the version table (see migrations/shared/environment.py)
    return grantee.access.table_privileges


def expected_sequence_privileges(grantee: Grantee, database: DatabaseKey) -> frozenset[str]:
    """Identity sequences: only the owner (and its migrator); inserts need none."""
    if grantee.database == database and grantee.kind in (RoleKind.OWNER, RoleKind.MIGRATOR):
        return frozenset(SEQUENCE_PRIVILEGES)
    return frozenset()


SCHEMA_PRIVILEGES = ("USAGE", "CREATE")


def expected_schema_privileges(grantee: Grantee, database: DatabaseKey) -> frozenset[str]:
    """On the public schema: the owner owns it (pg_database_owner), runtime roles may only use it."""
    if grantee.database != database:
        return frozenset()
    if grantee.kind in (RoleKind.OWNER, RoleKind.MIGRATOR):
        return frozenset(SCHEMA_PRIVILEGES)
    assert grantee.access is not None
    return grantee.access.schema_privileges


def expected_table_defaults(grantees_of_stack: tuple[Grantee, ...], database: DatabaseKey) -> dict[str, frozenset[str]]:
    """pg_default_acl of the database's owner in the public schema: runtime role -> table verbs."""
    return {
        g.name: g.access.table_privileges
        for g in grantees_of_stack
        if g.kind is RoleKind.RUNTIME and g.database == database and g.access is not None
    }
