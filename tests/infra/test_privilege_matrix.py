"""The full privilege matrix, as PostgreSQL reports it, against the model (infra/privileges.py).

Every role of the stack and PUBLIC, on every database, schema, table and sequence, and the owner's
default privileges: an extra privilege
fails as loudly as a missing one. Privileges are read with has_*_privilege, which counts role
membership and PUBLIC, so a grant made by hand anywhere shows up.
"""

from __future__ import annotations

import psycopg

from infra.placement import VERSION_TABLES
from infra.privileges import (
    DATABASE_PRIVILEGES,
    PUBLIC,
    SCHEMA,
    SCHEMA_PRIVILEGES,
    SEQUENCE_PRIVILEGES,
    TABLE_PRIVILEGES,
    DatabaseKey,
    Grantee,
    expected_database_privileges,
    expected_schema_privileges,
    expected_sequence_privileges,
    expected_table_defaults,
    expected_table_privileges,
)
from ops.deployment import DeployedStack
from tests.infra.conftest import stack_grantees

Cells = dict[str, frozenset[str]]


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


def assert_cells(
    connection: psycopg.Connection,
    function: str,
    grantee: str,
    expected: Cells,
    privileges: tuple[str, ...],
    where: str,
) -> None:
    """Every cell of `expected` (object -> privileges) as PostgreSQL reports it, all differences at once."""
    actual = privileges_of(connection, function, grantee, list(expected), privileges)
    diff = differences(grantee, actual, expected, where)
    assert not diff, "; ".join(diff)


def differences(grantee: str, actual: Cells, expected: Cells, where: str) -> list[str]:
    lines = []
    for name in sorted(actual):
        extra, missing = actual[name] - expected[name], expected[name] - actual[name]
        if extra:
            lines.append(
                f"{grantee} has {','.join(sorted(extra))} on {name} in {where} beyond the model "
                f"(REVOKE {', '.join(sorted(extra))} ON {name} FROM {grantee})"
            )
        if missing:
            lines.append(f"{grantee} lacks {','.join(sorted(missing))} on {name} in {where} (run scripts/deploy)")
    return lines


def test_database_privileges(
    catalogs: dict[DatabaseKey, psycopg.Connection],
    stack: DeployedStack,
    grantee: Grantee,
    database: DatabaseKey,
    public_too: bool,
) -> None:
    expected = {stack.database(database): expected_database_privileges(grantee, database)}
    assert_cells(
        catalogs[database], "has_database_privilege", grantee.name, expected, DATABASE_PRIVILEGES, "the cluster"
    )


def test_schema_privileges(
    catalogs: dict[DatabaseKey, psycopg.Connection],
    stack: DeployedStack,
    grantee: Grantee,
    database: DatabaseKey,
    public_too: bool,
) -> None:
    expected = {SCHEMA: expected_schema_privileges(grantee, database)}
    assert_cells(
        catalogs[database], "has_schema_privilege", grantee.name, expected, SCHEMA_PRIVILEGES, stack.database(database)
    )


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
    expected = expected_table_defaults(stack_grantees(stack), database)
    assert {k: frozenset(v) for k, v in actual.items()} == expected, (
        f"default table privileges of {owner} differ from the model: {actual}; run scripts/deploy {stack.stack}"
    )


def tables_of(connection: psycopg.Connection, kind: str) -> list[str]:
    rows = connection.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = %s ORDER BY 1",
        (kind,),
    ).fetchall()
    return [row[0] for row in rows]


def test_table_privileges(
    catalogs: dict[DatabaseKey, psycopg.Connection],
    stack: DeployedStack,
    grantee: Grantee,
    database: DatabaseKey,
    public_too: bool,
) -> None:
    tables = tables_of(catalogs[database], "r")
    expected = {t: expected_table_privileges(grantee, database, t, t == VERSION_TABLES[database]) for t in tables}
    assert_cells(
        catalogs[database], "has_table_privilege", grantee.name, expected, TABLE_PRIVILEGES, stack.database(database)
    )


def test_sequence_privileges(
    catalogs: dict[DatabaseKey, psycopg.Connection],
    stack: DeployedStack,
    grantee: Grantee,
    database: DatabaseKey,
    public_too: bool,
) -> None:
    expected = {s: expected_sequence_privileges(grantee, database) for s in tables_of(catalogs[database], "S")}
    assert_cells(
        catalogs[database],
        "has_sequence_privilege",
        grantee.name,
        expected,
        SEQUENCE_PRIVILEGES,
        stack.database(database),
    )


def test_no_object_is_granted_to_a_role_outside_the_stack(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, database: DatabaseKey
) -> None:
    known = {g.name for g in stack_grantees(stack) if g.name != PUBLIC}
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
