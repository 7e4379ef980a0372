"""One database with its owner and migrator roles, and PUBLIC shut out."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_postgresql as postgresql

from infra.acl_chain import DatabaseAcl, GrantTarget
from infra.generated_password import GeneratedPassword
from infra.settings import LoginSettings
from model.names import PUBLIC, SCHEMA, DatabaseKey
from model.privileges import ObjectKind, expected, rules


@dataclass(frozen=True)
class OwnedDatabaseArgs:
    key: DatabaseKey
    """Which of the two databases this is: main or logs."""
    name: str
    """The database name, validated by infra.settings."""
    owner_role: str
    """NOLOGIN role that owns the database and, through pg_database_owner, its public schema."""
    migrator_role: str
    """LOGIN role, member of the owner, that runs this database's Alembic tree."""
    protect: bool
    """Refuse `pulumi destroy` and replacement (a rename) of the database, and keep it if removed."""
    migrator: LoginSettings
    managed_admin: str | None = None
    """The admin's name on a managed server (RDS, Cloud SQL, Azure), whose admin is no superuser."""
    import_existing: bool = False
    """The database and its owner role exist on the server already (scripts/adopt made them ready):
    import them into the stack, then update them to the model, instead of creating them."""


class OwnedDatabase(pulumi.ComponentResource):
    """A database owned by a NOLOGIN owner role, migrated by a LOGIN migrator acting as the owner."""

    database_name: pulumi.Output[str]
    owner_name: pulumi.Output[str]
    migrator_name: pulumi.Output[str]
    migrator_password: pulumi.Output[str]
    acl: DatabaseAcl
    key: DatabaseKey

    def __init__(self, name: str, args: OwnedDatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("headhunter:db:OwnedDatabase", name, None, opts)
        self.key = args.key
        child = pulumi.ResourceOptions(parent=self)
        # Deleting a Role runs REASSIGN OWNED and DROP OWNED: an owner role goes with its database.
        keep = pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect)

        owner = postgresql.Role(
            f"{name}-owner",
            name=args.owner_role,
            login=False,
            inherit=True,
            opts=_imported(keep, args, args.owner_role),
        )
        password = GeneratedPassword(f"{name}-migrator-password", str(args.migrator.password_rotation), opts=child)
        migrator = postgresql.Role(
            f"{name}-migrator",
            name=args.migrator_role,
            login=True,
            inherit=True,  # the migrator acts with the owner's privileges, so new tables belong to the owner
            roles=[owner.name],
            password=password.scram_verifier,
            connection_limit=args.migrator.connection_limit,
            statement_timeout=args.migrator.statement_timeout_ms,
            opts=child,
        )
        database = postgresql.Database(
            f"{name}-database",
            name=args.name,
            owner=owner.name,
            encoding="UTF8",
            template="template0",
            opts=pulumi.ResourceOptions.merge(
                _imported(keep, args, args.name), pulumi.ResourceOptions(depends_on=[migrator])
            ),
        )
        # Every ACL change on this database goes through the chain of the catalog row it rewrites:
        # concurrent GRANTs on one row fail with "tuple concurrently updated" (pulumi-postgresql#126).
        # On a managed server every chain starts after the admin's membership in the owner role.
        first: pulumi.Resource = database
        if args.managed_admin is not None:
            after_database = pulumi.ResourceOptions(parent=self, depends_on=[database], delete_before_replace=True)
            first = admin_acts_as_owner(name, args.managed_admin, owner, after_database)
        self.acl = DatabaseAcl(start=first)
        model = rules()
        # PUBLIC keeps exactly what the model leaves it (nothing): a Grant to PUBLIC with fewer
        # privileges revokes the rest.
        public_on_database = sorted(expected(model, PUBLIC, args.key, ObjectKind.DATABASE))
        public_on_schema = sorted(expected(model, PUBLIC, args.key, ObjectKind.SCHEMA))
        on_database = GrantTarget(database.name, PUBLIC, "database")
        self.acl.grant(self, f"{name}-public-database-revoke", on_database, public_on_database)
        on_schema = GrantTarget(database.name, PUBLIC, "schema", schema=SCHEMA)
        self.acl.grant(self, f"{name}-public-schema-revoke", on_schema, public_on_schema)

        self.database_name = database.name
        self.owner_name = owner.name
        self.migrator_name = migrator.name
        self.migrator_password = password.result
        self.register_outputs(
            {
                "database_name": self.database_name,
                "owner_name": self.owner_name,
                "migrator_name": self.migrator_name,
                # What the database and its owner role were given: a policy sees a resource's protect but
                # not its retain_on_delete, so the pack reads both here too (policy/rules.py).
                "protect": bool(keep.protect),
                "retain_on_delete": bool(keep.retain_on_delete),
            }
        )


def _imported(opts: pulumi.ResourceOptions, args: OwnedDatabaseArgs, name: str) -> pulumi.ResourceOptions:
    # Both the database and a role are imported by name. Once in the state, the option changes nothing.
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(import_=name)) if args.import_existing else opts


def admin_acts_as_owner(
    name: str, admin: str, owner: postgresql.Role, opts: pulumi.ResourceOptions
) -> postgresql.GrantRole:
    """Make a managed server's admin a member of the owner role, before any ACL change of the database.

    Only the owner may revoke what the owner granted: PUBLIC's CONNECT and TEMPORARY on a new
    database are the owner's grants, so a REVOKE by an admin that is no superuser and no member of
    the owner changes nothing ("no privileges could be revoked"). A member's REVOKE acts as the
    owner. PostgreSQL 15 lets a CREATEROLE admin grant any role that is not a superuser; from 16 on,
    the role's creator holds ADMIN OPTION on it, which allows the same GRANT.
    The provider grants the owner to itself around a database's create and revokes it afterwards
    unless the admin is already a member: this grant therefore comes after the database's create,
    and every ACL change of the database after it (the provider then finds a member, and leaves it one).
    """
    # From PostgreSQL 16 on, pg_auth_members holds two rows for (owner, admin): this grant, and the one
    # PostgreSQL makes for the role's creator (ADMIN OPTION, granted by the bootstrap superuser). The
    # provider reads whichever comes first, so it may see ADMIN OPTION that this grant never asked for and
    # propose to replace it on every preview: the option is left out of the diff (tests/integration/
    # test_managed_server.py shows the creator's row on 16 and later, and its absence on 15).
    creator_row = pulumi.ResourceOptions(ignore_changes=["withAdminOption"])
    return postgresql.GrantRole(
        f"{name}-admin-acts-as-owner",
        role=admin,
        grant_role=owner.name,
        opts=pulumi.ResourceOptions.merge(opts, creator_row),
    )
