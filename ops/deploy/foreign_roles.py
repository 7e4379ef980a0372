"""A read-only role named like a role of the server that the stack does not own is refused before the engine.

The program creates each read-only role and its two logins (`<name>_a`, `<name>_b`). A name the
server already has (`postgres`, an application's own role, a role of another stack) makes that
CREATE ROLE fail half-way through the deploy, after the readers group and its grants were made,
or, once imported, hands the stack a role it must not alter or drop. Names PostgreSQL reserves
(`pg_...`) are refused earlier, by infra/settings.py, without the server.

"The stack owns" a role when its state holds it: the outputs name the roles of the last finished
deploy; a deploy killed before it finished may have made roles the outputs do not name yet, so the
state itself is read when the outputs do not account for a name the server has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import psycopg

from infra.outputs import StackOutput
from infra.settings import NAMESPACE, Settings
from model.rotation import SLOTS, member_name

ROLE_TYPE = "postgresql:index/role:Role"


def read_only_names(settings: Settings) -> dict[str, str]:
    """Every role name the stack's read-only roles make -> the read-only role that makes it."""
    return {
        name: role.name
        for role in settings.read_only_roles
        for name in (role.name, *(member_name(role.name, slot) for slot in SLOTS))
    }


def existing_roles(session: psycopg.Connection[Any], names: Iterable[str]) -> set[str]:
    """Those of `names` that the server has."""
    rows = session.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(names),)).fetchall()
    return {str(name) for (name,) in rows}


def output_role_names(outputs: Mapping[str, Any]) -> set[str]:
    """The roles with two logins that the stack's last finished deploy made, each with its logins."""
    roles = (outputs.get(StackOutput.RUNTIME_ROLES) or {}).values()
    return {name for role in roles for name in (str(role), *(member_name(str(role), slot) for slot in SLOTS))}


def state_role_names(deployment: Mapping[str, Any]) -> set[str]:
    """Every role the stack's state holds, and those a killed deploy was creating (pending creates)."""
    resources = list(deployment.get("resources") or [])
    resources += [op.get("resource") or {} for op in deployment.get("pending_operations") or []]
    return {
        str(resource.get("inputs", {}).get("name"))
        for resource in resources
        if resource.get("type") == ROLE_TYPE and resource.get("inputs", {}).get("name")
    }


def foreign_role_problems(
    settings: Settings,
    session: psycopg.Connection[Any],
    outputs: Mapping[str, Any],
    deployment: Callable[[], Mapping[str, Any]],
) -> list[str]:
    """One message per read-only role that makes a role the server has and the stack does not own.

    `deployment` (the state, as `pulumi stack export` gives it) is read only when the outputs do not
    account for a name the server has: it costs an engine command.
    """
    names = read_only_names(settings)
    unaccounted = existing_roles(session, names) - output_role_names(outputs)
    if unaccounted:
        unaccounted -= state_role_names(deployment())
    foreign = sorted(unaccounted)
    by_role: dict[str, list[str]] = {}
    for name in foreign:
        by_role.setdefault(names[name], []).append(name)
    return [
        f"Pulumi.{settings.stack}.yaml: {NAMESPACE}:readOnlyRoles names {role!r}, and the server already has the "
        f"role{'s' if len(found) > 1 else ''} {', '.join(found)}, which stack {settings.stack} did not create: its "
        "deploy would fail creating it, or take over a role that is not its own. Fix: give the read-only role a "
        "name no role of the server has (psql's \\du lists them), or drop that role if it is a leftover. Nothing "
        "was changed."
        for role, found in by_role.items()
    ]
