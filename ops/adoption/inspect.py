"""Read the server to adopt and build the plan. Nothing on that server is changed here.

The revision shapes the tables are compared with are measured on the project's embedded PostgreSQL
(scripts/localpg), in scratch databases there, so the server being adopted is only read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg import sql

from migrations.shared.tree import TREES
from model.names import DatabaseKey, RoleNames
from ops.adoption.catalog import DatabaseInventory, read_database
from ops.adoption.plan import DatabasePlan, Plan, RoleAction, RoleReport, plan_database
from ops.adoption.revision_shapes import RevisionShape, revision_shapes
from ops.adoption.server_access import AdminAccess


def build_plan(
    stack: str,
    admin: AdminAccess,
    scratch: AdminAccess,
    database_names: dict[DatabaseKey, str],
    names: RoleNames,
    in_stack: Callable[[DatabaseKey], bool],
    role_actions: Mapping[str, str],
) -> Plan:
    """`scratch`: where revision shapes are measured; `in_stack(key)`: the stack's state holds that database."""
    shapes = {key: revision_shapes(scratch, TREES[key.value]) for key in DatabaseKey}
    return plan_from(stack, admin, database_names, names, in_stack, shapes, role_actions)


def plan_from(
    stack: str,
    admin: AdminAccess,
    database_names: dict[DatabaseKey, str],
    names: RoleNames,
    in_stack: Callable[[DatabaseKey], bool],
    shapes: dict[DatabaseKey, list[RevisionShape]],
    role_actions: Mapping[str, str] | None = None,
) -> Plan:
    """`role_actions`: the stack's legacyRoles (role name -> keep, nologin or drop)."""
    role_actions = role_actions or {}
    inventories = {key: inventory(admin, name) for key, name in database_names.items()}

    def count_rows(database: str, table: str) -> int:
        with admin.connect(database) as connection:
            row = connection.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table))
            ).fetchone()
            assert row is not None
            return int(row[0])

    databases = tuple(
        plan_database(key, database_names[key], names.owner(key), inventories, in_stack(key), shapes, count_rows)
        for key in DatabaseKey
    )
    report = legacy_roles(admin, databases, names)
    return Plan(stack, f"{admin.host}:{admin.port}", databases, report, pending_role_actions(admin, role_actions))


def pending_role_actions(admin: AdminAccess, role_actions: Mapping[str, str]) -> tuple[RoleAction, ...]:
    """The stack's `legacyRoles` entries not carried out yet (a role already gone needs nothing)."""
    with admin.connect() as connection:
        can_login = dict(connection.execute("SELECT rolname, rolcanlogin FROM pg_roles").fetchall())
    pending = []
    for role, action in sorted(role_actions.items()):
        if role in can_login and (action == "drop" or (action == "nologin" and can_login[role])):
            pending.append(RoleAction(role, action))
    return tuple(pending)


def inventory(admin: AdminAccess, database: str) -> DatabaseInventory | None:
    with admin.connect() as connection:
        if connection.execute("SELECT FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            return None
    with admin.connect(database) as connection:
        connection.execute("SET default_transaction_read_only = on")
        return read_database(connection)


def legacy_roles(admin: AdminAccess, databases: tuple[DatabasePlan, ...], names: RoleNames) -> tuple[RoleReport, ...]:
    """Roles outside the model that own or reach either database, and what they reach."""
    reach: dict[str, list[str]] = {}
    for database in databases:
        if database.inventory is None:
            continue
        with admin.connect(database.name) as connection:
            for role, what in _reach(connection, database.name):
                if not role.startswith(f"{names.prefix}_") and role != admin.user:
                    reach.setdefault(role, []).append(what)
    if not reach:
        return ()
    with admin.connect() as connection:
        logins = dict(connection.execute("SELECT rolname, rolcanlogin FROM pg_roles").fetchall())
    return tuple(RoleReport(role, bool(logins.get(role)), tuple(reach[role])) for role in sorted(reach))


def _reach(connection: psycopg.Connection[Any], database: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    owner = connection.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    assert owner is not None
    found.append((owner[0], f"owns database {database}"))
    tables = connection.execute(
        "SELECT pg_get_userbyid(relowner), string_agg(relname, ', ' ORDER BY relname) FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') GROUP BY 1"
    ).fetchall()
    found += [(role, f"owns tables {names} in {database}") for role, names in tables]
    grants = connection.execute(
        "SELECT pg_get_userbyid(a.grantee), string_agg(DISTINCT a.privilege_type, ', ') FROM pg_database d, "
        "aclexplode(d.datacl) a WHERE d.datname = current_database() AND a.grantee <> 0 GROUP BY 1"
    ).fetchall()
    found += [(role, f"{privileges} on database {database}") for role, privileges in grants]
    table_grants = connection.execute(
        "SELECT pg_get_userbyid(a.grantee), c.relname, string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type) "
        "FROM pg_class c, aclexplode(c.relacl) a WHERE c.relnamespace = 'public'::regnamespace "
        "AND a.grantee <> 0 AND a.grantee <> c.relowner GROUP BY 1, 2 ORDER BY 2"
    ).fetchall()
    found += [(role, f"{privileges} on {database}.{table}") for role, table, privileges in table_grants]
    return found
