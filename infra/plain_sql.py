"""The privilege model rendered as plain SQL statements, in the order one psql session would run them.

Not how stacks are deployed (that is the Pulumi program): this rendering is the benchmark's
physical floor (issue: deploy overhead) and the fixture the migration-tree tests provision with, so
the trees are tested against exactly the roles and grants the model prescribes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from psycopg import sql

from infra.generated_password import scram_sha256_verifier
from infra.privileges import RUNTIME_ACCESS, SCHEMA, Access, DatabaseKey, RoleNames


@dataclass(frozen=True)
class Statement:
    database: str | None
    """The database to run it in; None for cluster-wide statements (roles, CREATE DATABASE)."""
    sql: sql.Composed


def provisioning_statements(
    names: RoleNames,
    database_names: Mapping[DatabaseKey, str],
    passwords: Mapping[str, str],
    extra_access: tuple[tuple[str, Access], ...] = (),
) -> list[Statement]:
    """CREATE ROLE, CREATE DATABASE, REVOKE from PUBLIC, GRANT and ALTER DEFAULT PRIVILEGES.

    `passwords` maps every login role's name to its password; only SCRAM verifiers are sent.
    """
    statements: list[Statement] = []

    def cluster(query: sql.Composable) -> None:
        statements.append(Statement(None, sql.Composed([query])))

    def login(role: str) -> sql.Composable:
        verifier = scram_sha256_verifier(passwords[role])
        return sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))

    for database in DatabaseKey:
        owner, migrator = names.owner(database), names.migrator(database)
        cluster(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner)))
        cluster(login(migrator))
        cluster(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(migrator)))
        cluster(
            sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                sql.Identifier(database_names[database]), sql.Identifier(owner)
            )
        )
        cluster(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database_names[database])))
        statements.append(
            Statement(
                database_names[database],
                sql.Composed([sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(SCHEMA))]),
            )
        )

    grantees = [(names.runtime(access.role_key), access) for access in RUNTIME_ACCESS] + list(extra_access)
    for role, access in grantees:
        database_name = database_names[access.database]
        cluster(login(role))
        cluster(
            sql.SQL("GRANT {} ON DATABASE {} TO {}").format(
                _privileges(access.database_privileges), sql.Identifier(database_name), sql.Identifier(role)
            )
        )
        statements.append(
            Statement(
                database_name,
                sql.Composed(
                    [
                        sql.SQL("GRANT {} ON SCHEMA {} TO {}").format(
                            _privileges(access.schema_privileges), sql.Identifier(SCHEMA), sql.Identifier(role)
                        )
                    ]
                ),
            )
        )
        statements.append(
            Statement(
                database_name,
                sql.Composed(
                    [
                        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT {} ON TABLES TO {}").format(
                            sql.Identifier(names.owner(access.database)),
                            sql.Identifier(SCHEMA),
                            _privileges(access.table_privileges),
                            sql.Identifier(role),
                        )
                    ]
                ),
            )
        )
    return statements


def _privileges(privileges: frozenset[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(privilege) for privilege in sorted(privileges))
