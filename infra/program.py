"""The stack: both databases, their roles and grants, then both migration trees, and the outputs.

`infra/__main__.py` calls `define_stack()`: the language host runs it for `pulumi up`, and the
project's scripts run the same `pulumi up` through the Automation API.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

import pulumi
import pulumi_postgresql as postgresql

from infra.acl_chain import AclRow
from infra.database import OwnedDatabase, OwnedDatabaseArgs
from infra.log_maintenance import LogMaintenance, LogMaintenanceArgs
from infra.migration_step import MigrationStep, MigrationStepArgs
from infra.outputs import StackOutput
from infra.role_retirement import RoleRetirement, RoleRetirementArgs
from infra.runtime_role import RuntimeRole, RuntimeRoleArgs, grant_existing_tables
from infra.server_login import ServerLogin
from infra.settings import (
    ConfigError,
    Settings,
    admin_password_from_pulumi,
    embedded_major_mismatch,
    parse_settings,
    raw_config_from_pulumi,
)
from migrations.shared.tree import TREES
from model.names import DatabaseKey, migrator_key
from model.privileges import RUNTIME_ROLES, RuntimeRoleSpec, new_table_grants, read_only_role, readers_groups


def define_stack() -> None:
    try:
        settings = parse_settings(pulumi.get_stack(), raw_config_from_pulumi())
    except ConfigError as error:
        # RunError: the engine prints the message alone, with no traceback for a mistake in a stack file.
        raise pulumi.RunError(str(error)) from None
    if mismatch := embedded_major_mismatch(settings):
        raise pulumi.RunError(mismatch)
    provider = server_provider(settings)
    databases = {key: owned_database(settings, key, provider) for key in DatabaseKey}
    roles = runtime_roles(settings, databases, provider)
    migrations = {
        key: MigrationStep(
            MigrationStepArgs(
                tree=TREES[key.value],
                login=migrator_login(settings, database),
                script_location=settings.environment.tree_location(key.value),
                # Contract revisions are the main tree's only (migrations.shared.phases.CONTRACT_TREES).
                contract_through=settings.contract_through if key is DatabaseKey.MAIN else None,
            ),
            # After the database's default privileges: the tables the tree creates must find them in
            # place. Nothing else waits for it, so the other ACL changes of the database go on meanwhile.
            opts=pulumi.ResourceOptions(depends_on=[database.acl.last(AclRow.DEFAULT_PRIVILEGES)]),
        )
        for key, database in databases.items()
    }
    # Each grant on the existing tables takes its migration's `tables`, so it runs after the migration;
    # it still waits for the table grant before it (the writer's and the reader's grants on one table
    # rewrite the same pg_class row).
    for role in roles.with_grants:
        grant_existing_tables(role, migrations[role.model.database].tables)
    partitions = log_maintenance(settings, databases[DatabaseKey.LOGS], migrations[DatabaseKey.LOGS], roles)
    # Last: each retirement depends on every ACL change declared before it, the maintenance step's included.
    retirements(settings, databases, roles)
    export_outputs(settings, databases, roles.logins, migrations)
    pulumi.export(
        StackOutput.LOG_PARTITIONS,
        {"created": partitions.created, "dropped": partitions.dropped, "coverage": partitions.coverage},
    )
    lifecycle = settings.log_lifecycle
    pulumi.export(
        StackOutput.LOG_LIFECYCLE,
        {"retention_days": dict(lifecycle.retention_days), "premake_days": lifecycle.premake_days},
    )


def log_maintenance(
    settings: Settings, logs: OwnedDatabase, migration: MigrationStep, roles: RuntimeRoles
) -> LogMaintenance:
    """The logs tree's partitions kept to the stack's lifecycle, after the tree's own run.

    It depends on the runtime roles too, so that a destroy runs its delete (which takes the roles'
    grants on the partitions back) before the roles are dropped. Its run and its delete rewrite the
    log tables' pg_class rows, as the table grants and the retirements' DROP OWNED do: it is a change
    of the logs database's table row (infra/acl_chain.py), so it waits directly for every grant on
    those tables and every retirement waits directly for it ("tuple concurrently updated" in a destroy
    otherwise: the engine orders the deletes of a deploy by direct dependencies only).
    """
    read_only = tuple(read_only_role(reader.name, reader.database) for reader in settings.read_only_roles)
    args = LogMaintenanceArgs(
        login=migrator_login(settings, logs),
        lifecycle=settings.log_lifecycle,
        revision=migration.revision,
        grants=new_table_grants(settings.role_names, DatabaseKey.LOGS, read_only),
    )
    after = pulumi.ResourceOptions(depends_on=[migration, *roles.with_grants, *roles.read_only])
    return logs.acl.add(
        AclRow.TABLES,
        None,  # the stack's child, as before it joined the chain: its URN, and so its state, unchanged
        lambda chained: LogMaintenance("logs-partitions", args, opts=pulumi.ResourceOptions.merge(chained, after)),
    )


def retirements(settings: Settings, databases: dict[DatabaseKey, OwnedDatabase], roles: RuntimeRoles) -> None:
    """One retirement per role (infra/role_retirement.py), deleted before any resource of its role.

    It depends on all of them, and on both databases it clears. A readers group's retirement also
    waits for its read-only roles: a reader whose retirement is refused keeps the group's grants.
    It also depends on every ACL change of both databases, directly: its DROP OWNED rewrites the
    catalog rows those grants rewrite (a table's, the database's), so no grant may be revoked while
    it runs ("tuple concurrently updated"); only direct edges order the deletes of one deploy.
    """
    server = settings.server
    admin = ServerLogin(
        host=server.host,
        port=server.port,
        sslmode=server.sslmode,
        tls=server.tls.libpq_parameters(),
        database="postgres",
        user=server.admin_user,
        password=admin_password_from_pulumi(settings),
    )
    every_database = [{"name": db.database_name, "owner": db.owner_name} for db in databases.values()]
    acl_changes = [change for database in databases.values() for change in database.acl.changes()]
    for role in (*roles.with_grants, *roles.read_only):
        readers = [reader for reader in roles.read_only if role.login_name is None and reader.database is role.database]
        RoleRetirement(
            f"{role.role_key}-retirement",
            RoleRetirementArgs(
                roles=role.every_name,
                databases=every_database,
                admin=admin,
                grace_seconds=settings.retirement_grace_seconds,
            ),
            opts=pulumi.ResourceOptions(depends_on=[role, *readers, *databases.values(), *acl_changes]),
        )


def migrator_login(settings: Settings, database: OwnedDatabase) -> ServerLogin:
    """The database's migrator, as the steps that act on its database connect (migrations, maintenance)."""
    server = settings.server
    return ServerLogin(
        host=server.host,
        port=server.port,
        sslmode=server.sslmode,
        tls=server.tls.libpq_parameters(),
        database=database.database_name,
        user=database.migrator_name,
        password=database.migrator_password,
    )


def server_provider(settings: Settings) -> postgresql.Provider:
    server = settings.server
    return postgresql.Provider(
        "server",
        host=server.host,
        port=server.port,
        username=server.admin_user,
        password=admin_password_from_pulumi(settings),
        sslmode=server.sslmode,
        sslrootcert=server.tls.root_cert or None,
        clientcert=client_certificate(settings),
        superuser=server.admin_is_superuser,
        expected_version=server.min_version,
        database="postgres",
        connect_timeout=15,
    )


def client_certificate(settings: Settings) -> postgresql.ProviderClientcertArgs | None:
    tls = settings.server.tls
    return postgresql.ProviderClientcertArgs(cert=tls.cert, key=tls.key) if tls.cert else None


def owned_database(settings: Settings, key: DatabaseKey, provider: postgresql.Provider) -> OwnedDatabase:
    names = settings.role_names
    return OwnedDatabase(
        key.value,
        OwnedDatabaseArgs(
            key=key,
            name=settings.database_names[key],
            owner_role=names.owner(key),
            migrator_role=names.migrator(key),
            protect=settings.protect_databases,
            migrator=settings.login(migrator_key(key)),
            managed_admin=None if settings.server.admin_is_superuser else settings.server.admin_user,
            import_existing=key in settings.environment.adopt_existing,
        ),
        opts=pulumi.ResourceOptions(providers=[provider]),
    )


@dataclass(frozen=True)
class RuntimeRoles:
    with_grants: list[RuntimeRole]
    """The application's logins and the readers groups: the roles that hold grants."""
    read_only: list[RuntimeRole]
    """The read-only roles, each a member of its database's readers group."""

    @property
    def logins(self) -> list[RuntimeRole]:
        return [role for role in (*self.with_grants, *self.read_only) if role.password is not None]


def runtime_roles(
    settings: Settings, databases: dict[DatabaseKey, OwnedDatabase], provider: postgresql.Provider
) -> RuntimeRoles:
    read_only = tuple(read_only_role(reader.name, reader.database) for reader in settings.read_only_roles)
    groups = readers_groups(read_only)
    with_provider = pulumi.ResourceOptions(providers=[provider])

    def declare(role: RuntimeRoleSpec, member_of: RuntimeRole | None = None) -> RuntimeRole:
        args = RuntimeRoleArgs(
            role_name=role.name(settings.role_names),
            model=role,
            database=databases[role.database],
            login=None if role in groups else settings.login(role.key),
            elsewhere=tuple(database for key, database in databases.items() if key != role.database),
            member_of=member_of,
            migrator=migrator_login(settings, databases[role.database]),
        )
        return RuntimeRole(role.name(settings.role_names), args, opts=with_provider)

    with_grants = [declare(role) for role in (*RUNTIME_ROLES, *groups)]
    group_of = {role.model.database: role for role in with_grants if role.model in groups}
    return RuntimeRoles(with_grants, [declare(reader, group_of[reader.database]) for reader in read_only])


def export_outputs(
    settings: Settings,
    databases: dict[DatabaseKey, OwnedDatabase],
    logins: list[RuntimeRole],
    migrations: dict[DatabaseKey, MigrationStep],
) -> None:
    """What the CD stage and the verification suite read: names, address, per-role URLs (secret)."""
    server = settings.server
    pulumi.export(StackOutput.HOST, server.host)
    pulumi.export(StackOutput.PORT, server.port)
    pulumi.export(StackOutput.SSLMODE, server.sslmode)
    pulumi.export(StackOutput.DATABASES, {key.value: database.database_name for key, database in databases.items()})
    pulumi.export(StackOutput.OWNER_ROLES, {key.value: database.owner_name for key, database in databases.items()})
    pulumi.export(
        StackOutput.MIGRATOR_ROLES, {key.value: database.migrator_name for key, database in databases.items()}
    )
    pulumi.export(StackOutput.RUNTIME_ROLES, {login.model.key: login.role_name for login in logins})
    pulumi.export(StackOutput.ROLE_PREFIX, settings.role_names.prefix)
    pulumi.export(StackOutput.LEGACY_ROLES, dict(settings.legacy_roles))
    pulumi.export(
        StackOutput.READ_ONLY_ROLES, [{"name": r.name, "database": r.database.value} for r in settings.read_only_roles]
    )
    pulumi.export(StackOutput.CONNECTION_LIMITS, dict(settings.connection_limits))
    pulumi.export(StackOutput.STATEMENT_TIMEOUTS, dict(settings.statement_timeouts_ms))
    # Each pair's rotation number as deployed: the next deploy may take it or one more (ops/deploy/rotation_check.py).
    # Exported with the URLs, so a deploy killed before it hands out a rotation's login leaves the number before it.
    pulumi.export(
        StackOutput.PASSWORD_ROTATIONS,
        {login.model.key: settings.login(login.model.key).password_rotation for login in logins},
    )
    # Runtime roles whose own login stays open until their next rotation (infra/login_handover.py).
    handovers = {login.model.key: login.handover_open for login in logins if login.handover_open is not None}
    pulumi.export(
        StackOutput.OPEN_HANDOVERS,
        pulumi.Output.all(**handovers).apply(lambda open_: sorted(key for key, is_open in open_.items() if is_open)),
    )
    pulumi.export(StackOutput.MIGRATION_REVISIONS, {key.value: run.revision for key, run in migrations.items()})
    # The headhunter-db:contractThrough this deploy ran the main tree with: verify expects its plan's target,
    # the value the deploy used rather than one set since (none when unset).
    pulumi.export(StackOutput.CONTRACT_THROUGH, settings.contract_through)
    urls: dict[str, pulumi.Output[str]] = {}
    for key, database in databases.items():
        urls[f"{key}_migrator"] = connection_url(
            settings, database.migrator_name, database.migrator_password, database.database_name
        )
    for login in logins:
        assert login.login_name is not None and login.password is not None  # a login, never a group
        urls[login.model.key] = connection_url(settings, login.login_name, login.password, login.database.database_name)
    pulumi.export(StackOutput.CONNECTION_URLS, pulumi.Output.secret(urls))
    # The login of each pair not handed out: what a client that has not re-read the outputs since the last
    # rotation still uses. Only scripts/verify reads it, to check that both logins of a pair work.
    standby: dict[str, pulumi.Output[str]] = {}
    for login in logins:
        assert login.standby is not None
        standby[login.model.key] = connection_url(settings, *login.standby, login.database.database_name)
    pulumi.export(StackOutput.STANDBY_CONNECTION_URLS, pulumi.Output.secret(standby))


def connection_url(
    settings: Settings, user: pulumi.Output[str], password: pulumi.Output[str], database: pulumi.Output[str]
) -> pulumi.Output[str]:
    server = settings.server
    # The TLS files go into the URL, so every client of it (the migrations, the verification, a
    # person's psql) checks the server as the provider does.
    query = urllib.parse.urlencode({"sslmode": server.sslmode, **server.tls.libpq_parameters()})
    return pulumi.Output.secret(
        pulumi.Output.format(
            "postgresql://{0}:{1}@{2}:{3}/{4}?{5}",
            user,
            password,
            server.host,
            server.port,
            database,
            query,
        )
    )
