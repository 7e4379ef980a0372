"""Who may do what, where: the privilege model as one table of rules.

Per database:
- an owner role (NOLOGIN) owns the database, and through PostgreSQL 15's `pg_database_owner` its
  public schema; every table is created by it (the migrator acts as the owner);
- a migrator (LOGIN) is a member of the owner and so holds what the owner holds;
- runtime roles (NOLOGIN) get CONNECT on their one database, USAGE on its public schema, their verbs
  on the tables that exist, and, through default privileges FOR ROLE the owner, the same verbs on
  every table a later migration creates; nothing on the version table or the sequences (identity
  columns need no USAGE for an INSERT that takes the default);
- each runtime role logs in through two LOGIN members, `<role>_a` and `<role>_b`, that hold and own
  nothing of their own (model/rotation.py: a password rotation never fails a login);
- the read-only roles of the stack config (`readOnlyRoles`) hold nothing themselves: each is a member of its
  database's NOLOGIN readers group, which holds a reader's grants once (one ACL entry per table,
  however many readers; adding a reader changes no ACL);
- PUBLIC gets nothing: no CONNECT or TEMPORARY on the databases, nothing on the public schemas.

`rules()` is that table. The program declares its grants from the GRANT, DEFAULT_PRIVILEGES and
REVOKED rows; the verification suite expects exactly what every row says, on every object; the
docs print it. A new runtime role is one more entry in RUNTIME_ROLES.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from model.names import PUBLIC, DatabaseKey, RoleKind, RoleNames, migrator_key, owner_key, readers_key
from model.rotation import SLOTS, Slot, member_name

DATABASE_PRIVILEGES = ("CONNECT", "CREATE", "TEMPORARY")
SCHEMA_PRIVILEGES = ("USAGE", "CREATE")
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")


class ObjectKind(enum.StrEnum):
    DATABASE = "database"
    SCHEMA = "schema"
    TABLES = "tables"
    """The tables the migration trees create."""
    VERSION_TABLE = "version table"
    SEQUENCES = "sequences"
    NEW_TABLES = "new tables"
    """Tables a later migration creates: the owner's default privileges."""

    @property
    def possible_privileges(self) -> tuple[str, ...]:
        return {
            ObjectKind.DATABASE: DATABASE_PRIVILEGES,
            ObjectKind.SCHEMA: SCHEMA_PRIVILEGES,
            ObjectKind.SEQUENCES: SEQUENCE_PRIVILEGES,
        }.get(self, TABLE_PRIVILEGES)


class Via(enum.StrEnum):
    OWNERSHIP = "ownership"
    MEMBERSHIP = "membership of the owner"
    READERS = "membership of the readers group"
    LOGIN = "membership of its runtime role"
    GRANT = "grant"
    DEFAULT_PRIVILEGES = "default privileges"
    REVOKED = "revoked"


@dataclass(frozen=True)
class RuntimeRoleSpec:
    """A login role confined to one database, with the table verbs it needs."""

    key: str
    database: DatabaseKey
    purpose: str
    table_privileges: frozenset[str]
    prefixed: bool = True
    """Named `<prefix>_<key>`; a read-only role of the stack config is named by its key alone."""

    def name(self, names: RoleNames) -> str:
        return names.of(self.key) if self.prefixed else self.key


RUNTIME_ROLES: tuple[RuntimeRoleSpec, ...] = (
    RuntimeRoleSpec(
        "app",
        DatabaseKey.MAIN,
        "the main application: reads and writes its tables, no DDL",
        frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"}),
    ),
    # Append-only: INSERT alone. The writer must insert without RETURNING (RETURNING needs SELECT).
    RuntimeRoleSpec(
        "logs_writer", DatabaseKey.LOGS, "the log worker: appends rows, reads nothing back", frozenset({"INSERT"})
    ),
    RuntimeRoleSpec("logs_reader", DatabaseKey.LOGS, "the admin endpoints: read the logs", frozenset({"SELECT"})),
)


READ_ONLY = frozenset({"SELECT"})


def read_only_role(name: str, database: DatabaseKey) -> RuntimeRoleSpec:
    """A read-only role (stack config `readOnlyRoles`): reads like logs_reader, through its readers group."""
    return RuntimeRoleSpec(name, database, "a read-only role", READ_ONLY, prefixed=False)


def readers_group(database: DatabaseKey) -> RuntimeRoleSpec:
    """The NOLOGIN role that holds the grants of `database`'s read-only roles, its members."""
    return RuntimeRoleSpec(readers_key(database), database, "the read-only roles' privileges", READ_ONLY)


def readers_groups(read_only: tuple[RuntimeRoleSpec, ...]) -> tuple[RuntimeRoleSpec, ...]:
    """A group for each database that has a read-only role, and none for the others."""
    return tuple(readers_group(database) for database in DatabaseKey if any(r.database == database for r in read_only))


@dataclass(frozen=True)
class Rule:
    """`grantee` (a role key, or PUBLIC) holds `privileges` on `kind` objects of `database`, through `via`."""

    grantee: str
    database: DatabaseKey
    kind: ObjectKind
    privileges: frozenset[str]
    via: Via


def _everything(grantee: str, database: DatabaseKey, via: Via) -> tuple[Rule, ...]:
    kinds = (ObjectKind.DATABASE, ObjectKind.SCHEMA, ObjectKind.TABLES, ObjectKind.VERSION_TABLE, ObjectKind.SEQUENCES)
    return tuple(Rule(grantee, database, kind, frozenset(kind.possible_privileges), via) for kind in kinds)


def runtime_rules(role: RuntimeRoleSpec) -> tuple[Rule, ...]:
    """Its own database's grants, and nothing on the other: a CONNECT granted there by hand is revoked."""
    database = role.database
    elsewhere = tuple(
        Rule(role.key, other, ObjectKind.DATABASE, frozenset(), Via.REVOKED)
        for other in DatabaseKey
        if other != database
    )
    return (
        Rule(role.key, database, ObjectKind.DATABASE, frozenset({"CONNECT"}), Via.GRANT),
        Rule(role.key, database, ObjectKind.SCHEMA, frozenset({"USAGE"}), Via.GRANT),
        Rule(role.key, database, ObjectKind.TABLES, role.table_privileges, Via.GRANT),
        Rule(role.key, database, ObjectKind.NEW_TABLES, role.table_privileges, Via.DEFAULT_PRIVILEGES),
        *elsewhere,
    )


def member_rules(reader: RuntimeRoleSpec) -> tuple[Rule, ...]:
    """A read-only role's privileges, all through its readers group: none of its own, no defaults."""
    kinds = (ObjectKind.DATABASE, ObjectKind.SCHEMA, ObjectKind.TABLES)
    group = {
        r.kind: r.privileges for r in runtime_rules(readers_group(reader.database)) if r.database == reader.database
    }
    return tuple(Rule(reader.key, reader.database, kind, group[kind], Via.READERS) for kind in kinds)


def login_key(role: RuntimeRoleSpec, slot: Slot) -> str:
    return f"{role.key}_{slot}"


def login_rules(table: list[Rule], role: RuntimeRoleSpec) -> list[Rule]:
    """Each login member holds what its runtime role holds in its database, all through membership."""
    kinds = (ObjectKind.DATABASE, ObjectKind.SCHEMA, ObjectKind.TABLES)
    held = {kind: expected(tuple(table), role.key, role.database, kind) for kind in kinds}
    return [Rule(login_key(role, slot), role.database, kind, held[kind], Via.LOGIN) for slot in SLOTS for kind in kinds]


def rules(read_only: tuple[RuntimeRoleSpec, ...] = ()) -> tuple[Rule, ...]:
    """The whole table, for a stack with these read-only roles. A pair with no row holds nothing."""
    table: list[Rule] = []
    for database in DatabaseKey:
        table += _everything(owner_key(database), database, Via.OWNERSHIP)
        table += _everything(migrator_key(database), database, Via.MEMBERSHIP)
    for role in (*RUNTIME_ROLES, *readers_groups(read_only)):
        table += runtime_rules(role)
    for reader in read_only:
        table += member_rules(reader)
    for role in (*RUNTIME_ROLES, *read_only):
        table += login_rules(table, role)
    for database in DatabaseKey:
        table += [
            Rule(PUBLIC, database, ObjectKind.DATABASE, frozenset(), Via.REVOKED),
            Rule(PUBLIC, database, ObjectKind.SCHEMA, frozenset(), Via.REVOKED),
        ]
    return tuple(table)


def expected(table: tuple[Rule, ...], grantee: str, database: DatabaseKey, kind: ObjectKind) -> frozenset[str]:
    """What `grantee` holds on `kind` objects of `database` by the model."""
    found = [rule.privileges for rule in table if (rule.grantee, rule.database, rule.kind) == (grantee, database, kind)]
    return found[0] if found else frozenset()


@dataclass(frozen=True)
class Grantee:
    """A role of a deployed stack (or PUBLIC): its key in the model and its name on the server."""

    key: str
    name: str
    kind: RoleKind | None  # None for PUBLIC
    database: DatabaseKey | None
    runtime_role: str | None = None
    """A login member's runtime role (its key); None for every other role."""

    @property
    def config_key(self) -> str:
        """The key the stack config's per-role maps (connection limits, timeouts) name it by."""
        return self.runtime_role or self.key

    @property
    def login(self) -> bool:
        return self.kind in (RoleKind.MIGRATOR, RoleKind.LOGIN)

    @property
    def group(self) -> bool:
        """A NOLOGIN role that holds privileges for its members (an owner, a runtime role, a readers group)."""
        return self.kind in (RoleKind.OWNER, RoleKind.RUNTIME, RoleKind.READERS)


def grantees(names: RoleNames, read_only: tuple[RuntimeRoleSpec, ...] = ()) -> tuple[Grantee, ...]:
    """Every role of the stack, then PUBLIC."""
    roles = [Grantee(owner_key(db), names.owner(db), RoleKind.OWNER, db) for db in DatabaseKey]
    roles += [Grantee(migrator_key(db), names.migrator(db), RoleKind.MIGRATOR, db) for db in DatabaseKey]
    roles += [Grantee(r.key, r.name(names), RoleKind.RUNTIME, r.database) for r in (*RUNTIME_ROLES, *read_only)]
    roles += [
        Grantee(login_key(r, slot), member_name(r.name(names), slot), RoleKind.LOGIN, r.database, runtime_role=r.key)
        for r in (*RUNTIME_ROLES, *read_only)
        for slot in SLOTS
    ]
    roles += [Grantee(g.key, g.name(names), RoleKind.READERS, g.database) for g in readers_groups(read_only)]
    return (*roles, Grantee(PUBLIC, PUBLIC, None, None))


def role_keys() -> tuple[str, ...]:
    """The keys of the stack's own roles, as the stack config's per-role maps name them."""
    per_database = tuple(key for db in DatabaseKey for key in (owner_key(db), migrator_key(db)))
    return per_database + tuple(role.key for role in RUNTIME_ROLES)


def expected_memberships(names: RoleNames, read_only: tuple[RuntimeRoleSpec, ...] = ()) -> dict[str, frozenset[str]]:
    """Role -> the roles it is a member of: migrators of their owners, read-only roles of their group,
    login members of their runtime role."""
    memberships = {names.migrator(db): frozenset({names.owner(db)}) for db in DatabaseKey}
    for reader in read_only:
        memberships[reader.name(names)] = frozenset({readers_group(reader.database).name(names)})
    for role in (*RUNTIME_ROLES, *read_only):
        for slot in SLOTS:
            memberships[member_name(role.name(names), slot)] = frozenset({role.name(names)})
    return memberships


def new_table_grants(
    names: RoleNames, database: DatabaseKey, read_only: tuple[RuntimeRoleSpec, ...] = ()
) -> dict[str, list[str]]:
    """Role name -> the privileges every table the owner creates in `database` gets (its default privileges):
    what each log table and each of its partitions must hold, and nothing else."""
    table = rules(read_only)
    grants = {
        grantee.name: sorted(expected(table, grantee.key, database, ObjectKind.NEW_TABLES))
        for grantee in grantees(names, read_only)
        if grantee.kind is not None
    }
    return {name: privileges for name, privileges in grants.items() if privileges and name != names.owner(database)}
