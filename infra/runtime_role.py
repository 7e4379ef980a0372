"""A runtime role confined to one database: a login or a readers group with its grants, or a group's member."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_postgresql as postgresql

from infra.acl_chain import AclRow, GrantTarget
from infra.database import OwnedDatabase
from infra.generated_password import GeneratedPassword
from infra.settings import LoginSettings
from model import privileges
from model.names import SCHEMA
from model.privileges import ObjectKind


@dataclass(frozen=True)
class RuntimeRoleArgs:
    role_name: str
    """The role's name, validated by infra.settings."""
    model: privileges.RuntimeRoleSpec
    """The role in the privilege model: its database and what it may do there."""
    database: OwnedDatabase
    """The only database the role may connect to."""
    login: LoginSettings | None
    """A login's connection limit, timeout and password rotation; None for a NOLOGIN readers group."""
    elsewhere: tuple[OwnedDatabase, ...] = ()
    """The other databases: the role holds nothing there, and a grant made there by hand is revoked."""
    member_of: RuntimeRole | None = None
    """A read-only role's readers group: the login holds nothing of its own, all through the group."""


class RuntimeRole(pulumi.ComponentResource):
    """A role confined to one database: a login with a generated password, or a NOLOGIN readers group.

    A role of its own holds CONNECT on its database, USAGE on its schema and default table
    privileges; a member of a readers group holds none of these itself (a new reader changes no ACL).
    """

    role_name: pulumi.Output[str]
    password: pulumi.Output[str] | None
    model: privileges.RuntimeRoleSpec
    database: OwnedDatabase
    role_key: str

    def __init__(self, name: str, args: RuntimeRoleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headhunter:db:RuntimeRole", name, None, opts)
        self.model, self.database, self.role_key = args.model, args.database, name
        child = pulumi.ResourceOptions(parent=self)
        self.password = None
        if args.login is None:
            role = postgresql.Role(f"{name}-role", name=args.role_name, login=False, opts=child)
        else:
            password = GeneratedPassword(f"{name}-password", str(args.login.password_rotation), opts=child)
            role = postgresql.Role(
                f"{name}-role",
                name=args.role_name,
                login=True,
                password=password.scram_verifier,
                roles=[args.member_of.role_name] if args.member_of else None,
                connection_limit=args.login.connection_limit,
                statement_timeout=args.login.statement_timeout_ms,
                opts=child,
            )
            self.password = password.result
        if args.member_of is None:
            self._grant(name, role, args.elsewhere)
        self.role_name = role.name
        self.register_outputs({"role_name": self.role_name})

    def _grant(self, name: str, role: postgresql.Role, elsewhere: tuple[OwnedDatabase, ...]) -> None:
        database, model = self.database, self.model
        rules = privileges.runtime_rules(model)
        granted = {rule.kind: sorted(rule.privileges) for rule in rules if rule.database == model.database}
        acl = database.acl
        on_database = GrantTarget(database.database_name, role.name, "database")
        acl.grant(self, f"{name}-database-grant", on_database, granted[ObjectKind.DATABASE])
        on_schema = GrantTarget(database.database_name, role.name, "schema", schema=SCHEMA)
        acl.grant(self, f"{name}-schema-grant", on_schema, granted[ObjectKind.SCHEMA])
        for other in elsewhere:
            # Exactly nothing: a refresh reads what the role holds there, and the next deploy revokes it.
            nothing = sorted(privileges.expected(rules, model.key, other.key, ObjectKind.DATABASE))
            on_other = GrantTarget(other.database_name, role.name, "database")
            other.acl.grant(self, f"{name}-{other.key}-database-revoke", on_other, nothing)
        # FOR ROLE the owner: default privileges apply only to objects created by the role they name,
        # and every table is created by the owner (the migrator acts as the owner).
        acl.add(
            AclRow.DEFAULT_PRIVILEGES,
            self,
            lambda opts: postgresql.DefaultPrivileges(
                f"{name}-table-defaults",
                database=database.database_name,
                schema=SCHEMA,
                owner=database.owner_name,
                role=role.name,
                object_type="table",
                privileges=granted[ObjectKind.NEW_TABLES],
                opts=opts,
            ),
        )


def grant_existing_tables(login: RuntimeRole, tables: pulumi.Output[list[str]]) -> postgresql.Grant:
    """The role's verbs on the tables that exist, as the migration reports them (so it runs after it).

    Default privileges reach only tables created later: a role added to a running stack (the
    readers group of a database's first read-only role) would see none of today's tables without
    this grant. Deleting it revokes them,
    so a removed role leaves no ACL entry behind to block its DROP ROLE.
    """
    on_tables = GrantTarget(login.database.database_name, login.role_name, "table", SCHEMA, tables)
    return login.database.acl.grant(login, f"{login.role_key}-table-grant", on_tables, login.model.table_privileges)
