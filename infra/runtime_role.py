"""A runtime role confined to one database, with its two logins; or a readers group with its grants."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_postgresql as postgresql

from infra.acl_chain import AclRow, GrantTarget
from infra.database import OwnedDatabase
from infra.generated_password import GeneratedPassword
from infra.login_handover import LoginHandover, LoginHandoverArgs
from infra.server_login import ServerLogin
from infra.settings import LoginSettings
from model import privileges
from model.names import SCHEMA
from model.privileges import ObjectKind
from model.rotation import SLOTS, Slot, handed_out, member_name, password_generation


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
    """A read-only role's readers group: the role holds nothing of its own, all through the group."""
    migrator: ServerLogin | None = None
    """Its database's migrator, as whom the role's login handover reads pg_roles; None for a readers group."""


class RuntimeRole(pulumi.ComponentResource):
    """A role confined to one database: a runtime role with its two logins, or a NOLOGIN readers group.

    A role of its own holds CONNECT on its database, USAGE on its schema and default table
    privileges; a member of a readers group holds none of these itself (a new reader changes no ACL).
    A runtime role never logs in: its two LOGIN members `<role>_a` and `<role>_b` do, holding
    nothing of their own, and `login_name` and `password` are those of the one the stack hands out
    (model/rotation.py).
    """

    role_name: pulumi.Output[str]
    every_name: list[pulumi.Output[str]]
    """The role and its two logins: what a retirement clears before they are dropped."""
    login_name: pulumi.Output[str] | None
    handover_open: pulumi.Output[bool] | None
    """Whether the role's own login is still open (infra/login_handover.py); None for a readers group."""
    password: pulumi.Output[str] | None
    standby: tuple[pulumi.Output[str], pulumi.Output[str]] | None
    """The other login's name and password: not handed out, it still works until the next rotation."""
    model: privileges.RuntimeRoleSpec
    database: OwnedDatabase
    role_key: str

    def __init__(self, name: str, args: RuntimeRoleArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headhunter:db:RuntimeRole", name, None, opts)
        self.model, self.database, self.role_key = args.model, args.database, name
        child = pulumi.ResourceOptions(parent=self)
        self.login_name, self.password, self.handover_open, self.standby = None, None, None, None
        if args.login is None:
            role = postgresql.Role(f"{name}-role", name=args.role_name, login=False, opts=child)
            self.every_name = [role.name]
        else:
            role = self._runtime_role(name, args, args.login)
            members = {slot: self._login_member(name, args, args.login, role, slot) for slot in SLOTS}
            handed_slot = handed_out(args.login.password_rotation)
            handed, standby = members[handed_slot], next(members[s] for s in SLOTS if s is not handed_slot)
            self.login_name, self.password = handed[0].name, handed[1].result
            self.standby = standby[0].name, standby[1].result
            self.every_name = [role.name, *(member.name for member, _ in members.values())]
        if args.member_of is None:
            self._grant(name, role, args.elsewhere)
        self.role_name = role.name
        self.register_outputs({"role_name": self.role_name, "login_name": self.login_name})

    def _runtime_role(self, name: str, args: RuntimeRoleArgs, login: LoginSettings) -> postgresql.Role:
        """NOLOGIN, but for the handover of a stack that had one login per role (infra/login_handover.py).

        Its password is left as it is (ignore_changes): during the handover it is the one its clients
        hold, and a NOLOGIN role's password lets nobody in. Its limits stay those of its logins.
        """
        assert args.migrator is not None, "a runtime role's handover reads pg_roles as its database's migrator"
        handover = LoginHandover(
            f"{name}-handover",
            LoginHandoverArgs(role=args.role_name, rotation=login.password_rotation, login=args.migrator),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.handover_open = handover.open
        return postgresql.Role(
            f"{name}-role",
            name=args.role_name,
            login=handover.open,
            roles=[args.member_of.role_name] if args.member_of else None,
            connection_limit=login.connection_limit,
            statement_timeout=login.statement_timeout_ms,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["password"]),
        )

    def _login_member(
        self, name: str, args: RuntimeRoleArgs, login: LoginSettings, role: postgresql.Role, slot: Slot
    ) -> tuple[postgresql.Role, GeneratedPassword]:
        """One of the two logins: a member of the role, with its own password and the role's limits."""
        child = pulumi.ResourceOptions(parent=self)
        generation = password_generation(login.password_rotation, slot)
        password = GeneratedPassword(f"{name}-{slot}-password", str(generation), opts=child)
        member = postgresql.Role(
            f"{name}-{slot}-role",
            name=member_name(args.role_name, slot),
            login=True,
            password=password.scram_verifier,
            roles=[role.name],
            connection_limit=login.connection_limit,
            statement_timeout=login.statement_timeout_ms,
            opts=child,
        )
        return member, password

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
