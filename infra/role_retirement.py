"""What DROP ROLE needs done first, in both databases, when a runtime role leaves the stack.

The provider's Role delete runs REASSIGN OWNED and DROP OWNED in the one database it connects to
(postgres). Our roles live in two: a grant given there by hand, a temporary table of an open
session, anything the role owns in the main or the logs database makes DROP ROLE fail half way
through a deploy (cyrilgdn/terraform-provider-postgresql#203, #435).

This step does nothing while the role exists. It is deleted before any resource of its role (it
depends on all of them), and its delete is the retirement:

1. refuse, before anything is changed, a role that owns a database or holds anything in a database
   that is not the stack's (the reason is named; every resource of the role stays as it was);
2. close the role's logins, wait up to the grace period for their sessions to end, then end them;
3. in each database where the roles hold or own something (pg_shdepend says where), hand what
   they own to that database's owner role (REASSIGN OWNED) and revoke what they hold (DROP OWNED).

The provider's Role deletes then find nothing in the way. A Python dynamic provider, connecting
as the stack's admin: REASSIGN OWNED needs the privileges of both roles, which only the admin has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from infra.server_login import ServerLogin, connect

if TYPE_CHECKING:
    from psycopg import Connection

RETIREMENT_LOCK = 0x68685F726574  # pg_advisory_lock key of the retirements ("hh_ret"); the migrations use others


def _where_held(connection: Connection[Any], roles: list[str]) -> tuple[list[str], list[str]]:
    """The databases where the roles hold or own something, and the databases the roles own."""
    holding = connection.execute(
        "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid"
        " JOIN pg_roles r ON r.oid = s.refobjid WHERE r.rolname = ANY(%s) ORDER BY 1",
        (roles,),
    ).fetchall()
    owned = connection.execute(
        "SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = ANY(%s) ORDER BY 1",
        (roles,),
    ).fetchall()
    return [name for (name,) in holding], [name for (name,) in owned]


def _refusal(props: dict[str, Any], holding: list[str], owned: list[str]) -> str | None:
    roles = ", ".join(props["roles"])
    if owned:
        return (
            f"{roles} owns the database {', '.join(owned)}: a role that owns a database is never retired by a "
            f"deploy. Give the database another owner (ALTER DATABASE ... OWNER TO ...), then deploy again; "
            f"nothing was changed."
        )
    foreign = sorted(set(holding) - set(_owners(props)) - {"postgres"})
    if foreign:
        return (
            f"{roles} holds or owns objects in {', '.join(foreign)}, which is not a database of this stack: "
            f"as the admin, in that database, hand them to a role that stays and revoke the rest "
            f"(REASSIGN OWNED BY {roles} TO <role>; DROP OWNED BY {roles}), then deploy again; nothing was changed."
        )
    return None


def _end_sessions(connection: Connection[Any], roles: list[str], grace_seconds: int) -> None:
    """Wait up to the grace period for the roles' sessions to end, then end the ones left."""
    import time

    sessions = "SELECT pid FROM pg_stat_activity WHERE usename = ANY(%s) AND pid <> pg_backend_pid()"
    deadline = time.monotonic() + grace_seconds
    while connection.execute(sessions, (roles,)).fetchall() and time.monotonic() < deadline:
        time.sleep(0.5)
    for (pid,) in connection.execute(sessions, (roles,)).fetchall():
        # Waits up to 10 s for the backend to be gone, so its temporary tables are gone with it.
        connection.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))


def _owners(props: dict[str, Any]) -> dict[str, str]:
    return {database["name"]: database["owner"] for database in props["databases"]}


def retire(props: dict[str, Any]) -> None:
    from psycopg import sql

    roles: list[str] = props["roles"]
    with connect(props, autocommit=True) as admin:
        present = [name for (name,) in admin.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (roles,))]
        if not present:
            return  # dropped already (by hand, or by a retirement that was killed after it)
        holding, owned = _where_held(admin, present)
        if refusal := _refusal(props, holding, owned):
            raise RuntimeError(refusal)
        superuser = admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
        for role in (sql.Identifier(name) for name in present):
            if not superuser:
                # REASSIGN OWNED and pg_terminate_backend need the role's privileges (as the provider does).
                admin.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
            admin.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
        _end_sessions(admin, present, int(props["grace_seconds"]))
        # One retirement clears at a time: DROP OWNED also revokes privileges on shared objects (every
        # database's pg_database row), so two at once collide even in different databases. An advisory
        # lock of the postgres database, which every retirement connects to, is held server-wide.
        admin.execute("SELECT pg_advisory_lock(%s)", (RETIREMENT_LOCK,))
        holding, _ = _where_held(admin, present)
        listed = sql.SQL(", ").join(sql.Identifier(name) for name in present)
        for database, owner in _owners(props).items():
            if database in holding:
                statements = [
                    sql.SQL("REASSIGN OWNED BY {} TO {}").format(listed, sql.Identifier(owner)),
                    sql.SQL("DROP OWNED BY {}").format(listed),
                ]
                _run_retrying(props, database, statements)
        # The lock goes with the session; released here so the next retirement need not wait for the close.
        admin.execute("SELECT pg_advisory_unlock(%s)", (RETIREMENT_LOCK,))


def _run_retrying(props: dict[str, Any], database: str, statements: list[Any]) -> None:
    """In one transaction, again when another ACL change of the same objects ran at the same moment.

    The deploy orders this step before every grant of the stack and one retirement after the other,
    but a GRANT from outside the stack (a person, another tool) on the same table still collides with
    "tuple concurrently updated" (the parallel-grant pitfall); the transaction then left nothing, so
    running it again is safe.
    """
    import time

    import psycopg

    for attempt in range(1, 6):
        try:
            with connect(props, database) as connection, connection.transaction():
                for statement in statements:
                    connection.execute(statement)
            return
        except psycopg.errors.InternalError as error:
            if "tuple concurrently updated" not in str(error) or attempt == 5:
                raise
            time.sleep(0.2 * attempt)


class _RetirementProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"retirement@{props['roles'][0]}", outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Other roles are others to retire: the old step is deleted (so the old roles retired) after the new
        # one exists. Anything else (the grace period, where and as whom it connects) changes in place.
        renamed = olds.get("roles") != news.get("roles")
        changed = renamed or any(olds.get(key) != news.get(key) for key in news)
        return DiffResult(changes=changed, replaces=["roles"] if renamed else [], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        retire(props)


@dataclass(frozen=True)
class RoleRetirementArgs:
    roles: Sequence[pulumi.Input[str]]
    """The role and its logins: everything the retirement ends, clears and leaves to DROP ROLE."""
    databases: Sequence[Mapping[str, pulumi.Input[str]]]
    """Each database of the stack, {name, owner}: its owner role receives what a role owned there."""
    admin: ServerLogin
    """The stack's admin, on the database the provider uses (postgres)."""
    grace_seconds: int
    """How long the retirement waits for the roles' sessions to end before it ends them."""


class RoleRetirement(pulumi.dynamic.Resource):
    """Deleted before its role's resources: clears the role out of every database, then the role can go."""

    def __init__(self, name: str, args: RoleRetirementArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "roles": list(args.roles),
            "databases": [dict(database) for database in args.databases],
            **args.admin.props(),
            "grace_seconds": args.grace_seconds,
        }
        secret_password = pulumi.ResourceOptions(additional_secret_outputs=["password"])
        super().__init__(_RetirementProvider(), name, props, pulumi.ResourceOptions.merge(opts, secret_password))
