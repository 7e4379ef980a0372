"""A runtime login role confined to one database, with its grants and default privileges."""

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
    """The login role's name, validated by infra.settings."""
    model: privileges.RuntimeRole
    """The role in the privilege model: its database and what it may do there."""
    database: OwnedDatabase
    """The only database the role may connect to."""
    login: LoginSettings
    elsewhere: tuple[OwnedDatabase, ...] = ()
    """The other databases: the role holds nothing there, and a grant made there by hand is revoked."""


class RuntimeRole(pulumi.ComponentResource):
    """A LOGIN role with a generated password, CONNECT on one database and default table privileges."""

    role_name: pulumi.Output[str]
    password: pulumi.Output[str]
    model: privileges.RuntimeRole
    database: OwnedDatabase
    role_key: str

    def __init__(self, name: str, args: RuntimeRoleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headhunter:db:RuntimeRole", name, None, opts)
        database, model = args.database, args.model
        self.model, self.database, self.role_key = model, database, name
        rules = privileges.runtime_rules(model)
        granted = {rule.kind: sorted(rule.privileges) for rule in rules if rule.database == model.database}
        password = GeneratedPassword(
            f"{name}-password", str(args.login.password_rotation), opts=pulumi.ResourceOptions(parent=self)
        )
        role = postgresql.Role(
            f"{name}-role",
            name=args.role_name,
            login=True,
            password=password.scram_verifier,
            connection_limit=args.login.connection_limit,
            statement_timeout=args.login.statement_timeout_ms,
            opts=pulumi.ResourceOptions(parent=self),
        )
        acl = database.acl
        on_database = GrantTarget(database.database_name, role.name, "database")
        acl.grant(self, f"{name}-database-grant", on_database, granted[ObjectKind.DATABASE])
        on_schema = GrantTarget(database.database_name, role.name, "schema", schema=SCHEMA)
        acl.grant(self, f"{name}-schema-grant", on_schema, granted[ObjectKind.SCHEMA])
        for other in args.elsewhere:
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

        self.role_name = role.name
        self.password = password.result
        self.register_outputs({"role_name": self.role_name})


def grant_existing_tables(login: RuntimeRole, tables: pulumi.Output[list[str]]) -> postgresql.Grant:
    """The role's verbs on the tables that exist, as the migration reports them (so it runs after it).

    Default privileges reach only tables created later: a role added to a running stack (a new
    read-only login) would see none of today's tables without this grant. Deleting it revokes them,
    so a removed role leaves no ACL entry behind to block its DROP ROLE.
    """
    on_tables = GrantTarget(login.database.database_name, login.role_name, "table", SCHEMA, tables)
    return login.database.acl.grant(login, f"{login.role_key}-table-grant", on_tables, login.model.table_privileges)
