"""Read the server to adopt and build the plan. Nothing on that server is changed here.

The revision shapes the tables are compared with are measured on the project's embedded PostgreSQL
(scripts/localpg), in scratch databases there, so the server being adopted is only read; both must
run the same major version, since catalog text may differ between majors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from migrations.shared.tree import TREES
from model.names import DatabaseKey, RoleNames
from ops.adoption.catalog import DatabaseInventory, read_database
from ops.adoption.move import retired_not_owned_by
from ops.adoption.move_progress import unfinished_moves
from ops.adoption.plan import DatabasePlan, Plan, RoleAction, RoleReport, plan_database
from ops.adoption.revision_shapes import RevisionShape, revision_shapes
from ops.adoption.server_access import AdminAccess
from ops.errors import ExitCode, UserError


@dataclass(frozen=True)
class StackView:
    """What the plan needs from the stack: its name, names, legacyRoles and what its state holds."""

    name: str
    database_names: Mapping[DatabaseKey, str]
    role_names: RoleNames
    legacy_roles: Mapping[str, str]
    in_state: Callable[[DatabaseKey], bool]
    deployed: bool
    """A deploy of the stack has succeeded (its outputs exist)."""


def build_plan(stack: StackView, admin: AdminAccess, scratch: AdminAccess) -> Plan:
    """`scratch`: the server whose scratch databases measure the revision shapes."""
    _check_same_major(admin, scratch)
    shapes = {key: revision_shapes(scratch, TREES[key.value]) for key in DatabaseKey}
    return plan_from(stack, admin, shapes)


def plan_from(stack: StackView, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]) -> Plan:
    names = stack.database_names
    _check_admin_acts_as_owners(admin, list(names.values()))
    inventories = {key: inventory(admin, name) for key, name in names.items()}

    def count_rows(database: str, table: str) -> int:
        with admin.connect(database) as connection:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table))
            row = connection.execute(query).fetchone()
            assert row is not None
            return int(row[0])

    databases = tuple(
        plan_database(
            key,
            names[key],
            stack.role_names.owner(key),
            inventories,
            stack.in_state(key),
            shapes,
            count_rows,
            _retired_unfinished(admin, names, key, inventories),
            _retired_foreign_owned(admin, names[key], stack.role_names.owner(key), inventories[key]),
        )
        for key in DatabaseKey
    )
    in_state = any(stack.in_state(key) for key in DatabaseKey)
    with admin.connect() as connection:
        can_login: dict[str, bool] = dict(connection.execute("SELECT rolname, rolcanlogin FROM pg_roles").fetchall())
    return Plan(
        stack.name,
        f"{admin.host}:{admin.port}",
        databases,
        legacy_roles(admin, databases, stack.role_names, can_login),
        pending_role_actions(admin, stack.legacy_roles, list(names.values()), can_login),
        deploy_pending=in_state and not stack.deployed,
    )


def _retired_unfinished(
    admin: AdminAccess,
    names: Mapping[DatabaseKey, str],
    key: DatabaseKey,
    inventories: Mapping[DatabaseKey, DatabaseInventory | None],
) -> tuple[str, ...]:
    """Moves into this database whose source table is retired already but whose last check never ran."""
    if inventories[key] is None:
        return ()
    with admin.connect(names[key]) as connection:
        begun = unfinished_moves(connection)
    by_name = {name: inventories[other] for other, name in names.items()}
    return tuple(
        f"{database}.{table}"
        for database, table in begun
        if (source := by_name.get(database)) is not None and table not in source.tables
    )


def _retired_foreign_owned(
    admin: AdminAccess, database: str, owner: str, inventory: DatabaseInventory | None
) -> tuple[str, ...]:
    if inventory is None:
        return ()
    with admin.connect(database) as connection:
        return retired_not_owned_by(connection, owner)


def pending_role_actions(
    admin: AdminAccess, role_actions: Mapping[str, str], databases: list[str], can_login: Mapping[str, bool]
) -> tuple[RoleAction, ...]:
    """The stack's `legacyRoles` entries not carried out yet (a role already gone needs nothing).
    `can_login`: every role of the server and whether it may log in."""
    with admin.connect() as connection:
        pending = []
        for role, action in sorted(role_actions.items()):
            if role in can_login and (action == "drop" or (action == "nologin" and can_login[role])):
                pending.append(RoleAction(role, action, _reached_elsewhere(connection, role, databases)))
    return tuple(pending)


def _reached_elsewhere(connection: psycopg.Connection[Any], role: str, databases: list[str]) -> tuple[str, ...]:
    """Databases other than the stack's that the role owns, or where it owns or is granted something."""
    rows = connection.execute(
        "SELECT datname FROM pg_database WHERE datdba = %s::regrole AND datname <> ALL(%s) "
        "UNION SELECT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid "
        "WHERE s.refobjid = %s::regrole AND d.datname <> ALL(%s) ORDER BY 1",
        (role, databases, role, databases),
    ).fetchall()
    return tuple(row[0] for row in rows)


def inventory(admin: AdminAccess, database: str) -> DatabaseInventory | None:
    with admin.connect() as connection:
        if connection.execute("SELECT FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            return None
    with admin.connect(database) as connection:
        connection.execute("SET default_transaction_read_only = on")
        return read_database(connection)


def _check_admin_acts_as_owners(admin: AdminAccess, databases: list[str]) -> None:
    """A managed server's admin is no superuser: it reads and hands over only what roles it belongs to own."""
    with admin.connect() as connection:
        present = [
            row[0]
            for row in connection.execute(
                "SELECT datname FROM pg_database WHERE datname = ANY(%s) ORDER BY 1", (databases,)
            ).fetchall()
        ]
    missing: dict[str, list[str]] = {}
    for database in present:
        with admin.connect(database) as connection:
            rows = connection.execute(
                "SELECT pg_get_userbyid(datdba), %s FROM pg_database WHERE datname = current_database() "
                "UNION ALL SELECT pg_get_userbyid(relowner), %s || '.' || relname FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')",
                (database, database),
            ).fetchall()
            for owner, what in rows:
                member = connection.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", (owner,)).fetchone()
                if member != (True,):
                    missing.setdefault(owner, []).append(what)
    if missing:
        grants = "; ".join(f"GRANT {owner} TO {admin.user} (for {', '.join(what)})" for owner, what in missing.items())
        raise UserError(
            f"the admin {admin.user} can neither read nor hand over what other roles own here: {grants}; run "
            "those as the owner or a superuser, then plan again. Nothing was changed.",
            ExitCode.BAD_INPUT,
        )


def _check_same_major(admin: AdminAccess, scratch: AdminAccess) -> None:
    with admin.connect() as adopted, scratch.connect() as embedded:
        theirs, ours = adopted.info.server_version // 10000, embedded.info.server_version // 10000
    if theirs != ours:
        raise UserError(
            f"the server to adopt runs PostgreSQL {theirs} and the embedded one, where the revisions' tables are "
            f"measured, runs {ours}: catalog text differs between majors; put PostgreSQL {theirs}'s binaries on "
            "PATH (scripts/localpg finds them there), `scripts/localpg reset`, and plan again.",
            ExitCode.BAD_INPUT,
        )


def legacy_roles(
    admin: AdminAccess, databases: tuple[DatabasePlan, ...], names: RoleNames, can_login: Mapping[str, bool]
) -> tuple[RoleReport, ...]:
    """Roles outside the model that own or reach either database, and what they reach."""
    reach: dict[str, list[str]] = {}
    for database in databases:
        if database.inventory is None:
            continue
        with admin.connect(database.name) as connection:
            for role, what in _reach(connection, database.name):
                if not role.startswith(f"{names.prefix}_") and role != admin.user:
                    reach.setdefault(role, []).append(what)
    return tuple(RoleReport(role, bool(can_login.get(role)), tuple(reach[role])) for role in sorted(reach))


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
