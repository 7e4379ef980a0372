"""The role table: attributes, memberships and connection limits of every role of the stack."""

from __future__ import annotations

import psycopg

from model.names import DatabaseKey
from model.privileges import Grantee, expected_memberships
from ops.deploy.deployed_stack import DeployedStack

DANGEROUS = ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls")
SQL_NAMES = {
    "rolsuper": "SUPERUSER",
    "rolcreatedb": "CREATEDB",
    "rolcreaterole": "CREATEROLE",
    "rolreplication": "REPLICATION",
    "rolbypassrls": "BYPASSRLS",
}


def role_row(connection: psycopg.Connection, name: str) -> dict[str, object] | None:
    cursor = connection.execute(
        "SELECT rolcanlogin, rolconnlimit, " + ", ".join(DANGEROUS) + ", ARRAY(SELECT b.rolname FROM "
        "pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid) "
        "FROM pg_roles r WHERE rolname = %s",
        (name,),
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip(["rolcanlogin", "rolconnlimit", *DANGEROUS, "member_of"], row, strict=True))


def test_the_role_exists_with_its_attributes(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, grantee: Grantee
) -> None:
    row = role_row(catalogs[DatabaseKey.MAIN], grantee.name)
    assert row is not None, f"role {grantee.name} does not exist: run scripts/deploy {stack.stack}"
    granted = [SQL_NAMES[attribute] for attribute in DANGEROUS if row[attribute]]
    assert not granted, f"{grantee.name} has {', '.join(granted)}: ALTER ROLE {grantee.name} NO{' NO'.join(granted)}"
    login = stack.can_log_in(grantee)
    assert row["rolcanlogin"] == login, (
        f"{grantee.name} {'cannot' if login else 'can'} log in: ALTER ROLE {grantee.name} "
        f"{'LOGIN' if login else 'NOLOGIN'}"
    )


def test_memberships_are_exactly_the_migrators_in_their_owners_and_the_readers_in_their_group(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, grantee: Grantee
) -> None:
    row = role_row(catalogs[DatabaseKey.MAIN], grantee.name)
    assert row is not None
    expected = expected_memberships(stack.names, stack.read_only_specs()).get(grantee.name, frozenset())
    actual = frozenset(row["member_of"])  # type: ignore[call-overload]
    fixes = [f"REVOKE {role} FROM {grantee.name};" for role in sorted(actual - expected)]
    fixes += [f"GRANT {role} TO {grantee.name};" for role in sorted(expected - actual)]
    assert actual == expected, (
        f"{grantee.name} is a member of {sorted(actual) or 'nothing'}, expected {sorted(expected) or 'nothing'}: "
        + " ".join(fixes)
    )


def test_the_connection_limit(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, grantee: Grantee
) -> None:
    if grantee.group:
        return  # NOLOGIN: a limit would mean nothing
    row = role_row(catalogs[DatabaseKey.MAIN], grantee.name)
    assert row is not None
    expected = stack.connection_limits.get(grantee.config_key, -1)
    assert row["rolconnlimit"] == expected, (
        f"{grantee.name} allows {row['rolconnlimit']} connections, the stack says {expected}: "
        f"run scripts/deploy {stack.stack}"
    )


def test_the_statement_timeout(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, grantee: Grantee
) -> None:
    """Set on each login itself: a member does not take the settings of the role it belongs to."""
    if not grantee.login:
        return
    row = (
        catalogs[DatabaseKey.MAIN]
        .execute(
            "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE r.rolname = %s AND s.setdatabase = 0",
            (grantee.name,),
        )
        .fetchone()
    )
    settings = dict(item.split("=", 1) for item in (row[0] if row and row[0] else []))
    expected = stack.statement_timeouts_ms.get(grantee.config_key, 0)
    actual = int(settings.get("statement_timeout", "0").removesuffix("ms") or 0)
    assert actual == expected, (
        f"{grantee.name} has statement_timeout {actual} ms, the stack says {expected}: run scripts/deploy {stack.stack}"
    )


def test_no_role_with_the_stack_prefix_beyond_the_model(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack
) -> None:
    expected = {g.name for g in stack.grantees() if g.kind is not None}
    rows = (
        catalogs[DatabaseKey.MAIN]
        .execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (f"{stack.role_prefix}_",))
        .fetchall()
    )
    unexpected = {row[0] for row in rows} - expected
    drops = " ".join(
        f"REASSIGN OWNED BY {role} TO {stack.names.owner(DatabaseKey.MAIN)}; DROP OWNED BY {role}; DROP ROLE {role};"
        for role in sorted(unexpected)
    )
    assert not unexpected, (
        f"roles with the stack's prefix that the model does not have: {sorted(unexpected)}; add them to the stack "
        f"config (readOnlyRoles) or, once sure nothing uses them, remove them in each database: {drops}"
    )
