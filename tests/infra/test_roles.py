"""The role table: attributes, memberships and connection limits of every role of the stack."""

from __future__ import annotations

import urllib.parse

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


def test_both_logins_of_a_pair_log_in_with_scram(stack: DeployedStack, member: Grantee) -> None:
    """The login handed out and the one kept for clients that have not re-read the outputs since the last rotation.

    require_auth makes the client refuse any exchange but SCRAM, which the server uses only when the stored
    password is a SCRAM verifier (or pg_hba asks for it): an md5 hash fails here.
    """
    assert member.runtime_role is not None
    urls = [stack.connection_urls.get(member.runtime_role), stack.standby_connection_urls.get(member.runtime_role)]
    url = next((u for u in urls if u and urllib.parse.urlparse(u).username == member.name), None)
    assert url is not None, f"the stack's outputs have no URL of {member.name}: run scripts/deploy {stack.stack}"
    try:
        with psycopg.connect(url, require_auth="scram-sha-256", connect_timeout=10) as connection:
            user = connection.execute("SELECT current_user").fetchone()
    except psycopg.OperationalError as error:
        raise AssertionError(
            f"{member.name} cannot log in with SCRAM ({str(error).strip().splitlines()[-1]}): "
            f"run scripts/deploy {stack.stack}, which sets its password as a SCRAM verifier"
        ) from None
    assert user == (member.name,)


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


def test_no_role_outside_the_stack_holds_or_owns_anything_in_the_database(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, database: DatabaseKey
) -> None:
    """A role retired by a deploy leaves nothing behind here (infra/role_retirement.py); nor may any other.

    pg_shdepend records every role that owns an object of the database or is named in an ACL there,
    the database's own ACL and default privileges included.
    """
    # A legacy role the stack keeps (legacyRoles: keep or nologin) is left as it is, on purpose.
    known = {g.name for g in stack.grantees() if g.kind is not None} | set(stack.legacy_roles)
    rows = (
        catalogs[database]
        .execute(
            "SELECT DISTINCT pg_get_userbyid(s.refobjid) FROM pg_shdepend s, pg_database d"
            " WHERE d.datname = current_database() AND (s.dbid = d.oid"
            " OR (s.classid = 'pg_database'::regclass AND s.objid = d.oid)) AND s.deptype IN ('o', 'a', 'r')"
        )
        .fetchall()
    )
    strangers = sorted(role for (role,) in rows if role not in known)
    owner = stack.names.owner(database)
    fixes = " ".join(f"REASSIGN OWNED BY {role} TO {owner}; DROP OWNED BY {role};" for role in strangers)
    assert not strangers, (
        f"roles outside the stack own or hold something in {stack.database(database)}: {strangers}; "
        f"as the admin, in that database: {fixes}"
    )
