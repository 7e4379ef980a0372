"""The full privilege matrix, as PostgreSQL reports it, against the model (model/privileges.py).

Every role of the stack and PUBLIC, on every database, schema, table and sequence, and the owner's
default privileges: an extra privilege
fails as loudly as a missing one. Privileges are read with has_*_privilege, which counts role
membership and PUBLIC, so a grant made by hand anywhere shows up.
"""

from __future__ import annotations

import psycopg
import pytest

from fixtures import catalog
from migrations.shared.tree import TREES
from model.names import PUBLIC, SCHEMA, DatabaseKey
from model.privileges import TABLE_PRIVILEGES, Grantee, ObjectKind, expected, rules
from ops.deploy.deployed_stack import DeployedStack

Cells = dict[str, frozenset[str]]


# What has_*_privilege calls each kind, and what GRANT and REVOKE call it.
FUNCTIONS = {
    ObjectKind.DATABASE: ("has_database_privilege", "DATABASE"),
    ObjectKind.SCHEMA: ("has_schema_privilege", "SCHEMA"),
    ObjectKind.TABLES: ("has_table_privilege", "TABLE"),
    ObjectKind.VERSION_TABLE: ("has_table_privilege", "TABLE"),
    ObjectKind.SEQUENCES: ("has_sequence_privilege", "SEQUENCE"),
}


def expected_of(stack: DeployedStack, grantee: Grantee, database: DatabaseKey, kind: ObjectKind) -> frozenset[str]:
    return expected(rules(stack.read_only_specs()), grantee.key, database, kind)


def privileges_of(
    connection: psycopg.Connection, function: str, role: str, objects: list[str], privileges: tuple[str, ...]
) -> Cells:
    cells: Cells = {}
    for name in objects:
        row = connection.execute(
            "SELECT " + ", ".join(f"{function}(%s, %s, '{p}')" for p in privileges),
            [value for _ in privileges for value in (role, name)],
        ).fetchone()
        assert row is not None
        cells[name] = frozenset(p for p, held in zip(privileges, row, strict=True) if held)
    return cells


MAINTAIN_SINCE = 17
"""PostgreSQL 17 added MAINTAIN (VACUUM, ANALYZE, REINDEX, REFRESH, CLUSTER, LOCK) to what a table grants:
from then on ALL includes it, so the owner (and whoever acts as the owner) holds it, and no other role may."""


def checked_privileges(connection: psycopg.Connection, kind: ObjectKind) -> tuple[str, ...]:
    """The privileges the server knows for objects of the kind: MAINTAIN among a table's from 17 on."""
    possible = kind.possible_privileges
    if possible == TABLE_PRIVILEGES and connection.info.server_version >= MAINTAIN_SINCE * 10000:
        return (*possible, "MAINTAIN")
    return possible


def with_maintain(wanted: Cells, possible: tuple[str, ...], checked: tuple[str, ...]) -> Cells:
    """A role the model gives every table privilege holds ALL, which includes MAINTAIN where the server has it."""
    extra = frozenset(checked) - frozenset(possible)
    return {name: cells | extra if cells >= frozenset(possible) else cells for name, cells in wanted.items()}


def assert_cells(
    connection: psycopg.Connection, kind: ObjectKind, grantee: str, wanted: Cells, where: str, stack: str
) -> None:
    """Every cell of `wanted` (object -> privileges) as PostgreSQL reports it, all differences at once."""
    function, _ = FUNCTIONS[kind]
    checked = checked_privileges(connection, kind)
    wanted = with_maintain(wanted, kind.possible_privileges, checked)
    actual = privileges_of(connection, function, grantee, list(wanted), checked)
    diff = differences(kind, grantee, actual, wanted, where, stack)
    assert not diff, "; ".join(diff)


def differences(kind: ObjectKind, grantee: str, actual: Cells, wanted: Cells, where: str, stack: str) -> list[str]:
    """Each difference with the SQL that puts it right (run in `where`), or the deploy that does."""
    _, keyword = FUNCTIONS[kind]
    lines = []
    for name in sorted(actual):
        extra, missing = actual[name] - wanted[name], wanted[name] - actual[name]
        if extra:
            lines.append(
                f"{grantee} has {','.join(sorted(extra))} on {name} in {where} beyond the model "
                f"(REVOKE {', '.join(sorted(extra))} ON {keyword} {name} FROM {grantee};)"
            )
        if missing:
            lines.append(
                f"{grantee} lacks {','.join(sorted(missing))} on {name} in {where} (scripts/deploy {stack} grants it)"
            )
    return lines


def objects_of(
    connection: psycopg.Connection, kind: ObjectKind, stack: DeployedStack, database: DatabaseKey
) -> list[str]:
    """The objects of `kind` that exist in the database (the database itself, its schema, ...)."""
    version_table = TREES[database.value].version_table
    if kind is ObjectKind.DATABASE:
        return [stack.database(database)]
    if kind is ObjectKind.SCHEMA:
        return [SCHEMA]
    if kind is ObjectKind.VERSION_TABLE:
        return [version_table]
    # A table that does not belong in this database is the placement check's to name: the advice to
    # grant on it would be wrong. So are its partitions and sequences.
    misplaced = catalog.relations_of(connection, catalog.misplaced_tables(connection, database.value))
    if kind is ObjectKind.SEQUENCES:
        return [sequence for sequence in tables_of(connection, "S") if sequence not in misplaced]
    # Partitioned log tables ('p') and each of their partitions ('r'): a session may name either.
    tables = tables_of(connection, "r") + tables_of(connection, "p")
    return [table for table in tables if table != version_table and table not in misplaced]


@pytest.mark.parametrize("kind", list(FUNCTIONS), ids=[kind.value.replace(" ", "_") for kind in FUNCTIONS])
def test_privileges(
    catalogs: dict[DatabaseKey, psycopg.Connection],
    stack: DeployedStack,
    grantee: Grantee,
    database: DatabaseKey,
    kind: ObjectKind,
    public_too: bool,
) -> None:
    """Every object of the kind, as has_*_privilege reports it for the role, against the model."""
    connection = catalogs[database]
    wanted = {
        name: expected_of(stack, grantee, database, kind) for name in objects_of(connection, kind, stack, database)
    }
    where = "the cluster" if kind is ObjectKind.DATABASE else stack.database(database)
    assert_cells(connection, kind, grantee.name, wanted, where, stack.stack)


def test_default_privileges_hand_new_tables_to_the_runtime_roles(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, database: DatabaseKey
) -> None:
    """A default privilege dropped or added by hand changes what the next migration's tables get."""
    rows = (
        catalogs[database]
        .execute(
            "SELECT pg_get_userbyid(d.defaclrole), pg_get_userbyid(acl.grantee), acl.privilege_type "
            "FROM pg_default_acl d, aclexplode(d.defaclacl) acl "
            "WHERE d.defaclnamespace = 'public'::regnamespace AND d.defaclobjtype = 'r' AND acl.grantee <> d.defaclrole"
        )
        .fetchall()
    )
    owner = stack.names.owner(database)
    actual: dict[str, set[str]] = {}
    for role, grantee, privilege in rows:
        assert role == owner, f"default privileges FOR ROLE {role} in {stack.database(database)}: only {owner}'s count"
        actual.setdefault(grantee, set()).add(privilege)
    model = rules(stack.read_only_specs())
    wanted = {
        g.name: expected(model, g.key, database, ObjectKind.NEW_TABLES)
        for g in stack.grantees()
        if expected(model, g.key, database, ObjectKind.NEW_TABLES)
    }
    assert {k: frozenset(v) for k, v in actual.items()} == wanted, (
        f"default table privileges of {owner} differ from the model: {actual}; run scripts/deploy {stack.stack}"
    )


def tables_of(connection: psycopg.Connection, kind: str) -> list[str]:
    rows = connection.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = %s ORDER BY 1",
        (kind,),
    ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize("maintenance_database", ["postgres", "template1"])
def test_no_role_of_the_stack_reaches_the_servers_own_databases(
    catalogs: dict[DatabaseKey, psycopg.Connection], grantee: Grantee, maintenance_database: str
) -> None:
    """initdb lets PUBLIC connect to postgres and template1 and make TEMP tables there; no role of ours needs to."""
    row = (
        catalogs[DatabaseKey.MAIN]
        .execute(
            "SELECT has_database_privilege(%s, %s, 'CONNECT'), has_database_privilege(%s, %s, 'TEMPORARY')",
            (grantee.name, maintenance_database, grantee.name, maintenance_database),
        )
        .fetchone()
    )
    assert row is not None
    held = [privilege for privilege, has in zip(("CONNECT", "TEMPORARY"), row, strict=True) if has]
    assert not held, (
        f"{grantee.name} has {','.join(held)} on the database {maintenance_database} (through PUBLIC, unless granted "
        f"by name): REVOKE CONNECT, TEMPORARY ON DATABASE {maintenance_database} FROM PUBLIC; as the admin "
        "(docs/managed-servers.md)"
    )


def test_no_object_is_granted_to_a_role_outside_the_stack(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, database: DatabaseKey
) -> None:
    known = {g.name for g in stack.grantees() if g.name != PUBLIC}
    rows = (
        catalogs[database]
        .execute(
            "SELECT DISTINCT c.relname, pg_get_userbyid(acl.grantee) FROM pg_class c, aclexplode(c.relacl) acl "
            "WHERE c.relnamespace = 'public'::regnamespace AND acl.grantee <> 0"
        )
        .fetchall()
    )
    strangers = sorted(f"{role} on {table}" for table, role in rows if role not in known)
    assert not strangers, f"grants to roles outside the stack in {stack.database(database)}: {strangers}"
