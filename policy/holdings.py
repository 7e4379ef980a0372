"""What a resource gives a role: the one reading of grants, defaults, memberships and ownership.

The rules ask the same question of different resources (postgresql's Grant, DefaultPrivileges,
GrantRole, a Role's `roles`, a Database's `owner`): which role does it give what, in which of the
stack's databases. A Grant with no privileges gives nothing: it is how the program revokes
(PUBLIC's defaults, a role's CONNECT on the other database), so it is no holding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from model.names import SCHEMA, DatabaseKey
from model.privileges import ObjectKind
from policy.observed import Observed
from policy.stack_facts import StackFacts

# The provider's type tokens (pulumi-postgresql's schema), and how its objectType names the model's objects.
GRANT = "postgresql:index/grant:Grant"
DEFAULT_PRIVILEGES = "postgresql:index/defaultPrivileges:DefaultPrivileges"
GRANT_ROLE = "postgresql:index/grantRole:GrantRole"
ROLE = "postgresql:index/role:Role"
DATABASE = "postgresql:index/database:Database"
GRANT_KINDS = {"database": ObjectKind.DATABASE, "schema": ObjectKind.SCHEMA, "table": ObjectKind.TABLES}
DEFAULT_KINDS = {"table": ObjectKind.NEW_TABLES}
SEQUENCE_KINDS = {"sequence": ObjectKind.SEQUENCES}


@dataclass(frozen=True)
class Holding:
    """Something a resource gives the role `grantee` (its name on the server, or PUBLIC)."""

    grantee: str
    database: DatabaseKey | None
    """Where it acts: one of the stack's databases; None for a role outside the model, which may act in any."""
    what: str
    """It in words, for a message: "CONNECT on the database headhunter_db"."""
    kind: ObjectKind | None = None
    """Privileges on objects the model has a row for; None for others, a membership or an ownership."""
    privileges: frozenset[str] = frozenset()
    member_of: str | None = None
    """A membership: the role whose privileges it gives."""


def holdings(resource: Observed, facts: StackFacts) -> list[Holding]:
    """Everything `resource` gives a role in the stack's databases (or through a role outside the model)."""
    if resource.type in (GRANT, DEFAULT_PRIVILEGES):
        return _privileges(resource, facts)
    if resource.type == GRANT_ROLE:
        return _memberships(resource.text("role"), [resource.text("grantRole")], facts)
    if resource.type == ROLE:
        return _memberships(resource.text("name"), resource.texts("roles") or [], facts)
    if resource.type == DATABASE:
        database, owner = facts.database_key(resource.text("name")), resource.text("owner")
        if database is None or owner is None:
            return []
        return [Holding(owner, database, f"the ownership of the database {facts.databases[database]}")]
    return []


def _privileges(resource: Observed, facts: StackFacts) -> list[Holding]:
    database, role = facts.database_key(resource.text("database")), resource.text("role")
    privileges, object_type = resource.texts("privileges"), resource.text("objectType") or ""
    if database is None or role is None or not privileges:
        return []  # another database's, unknown during preview, or a revoke
    defaults = resource.type == DEFAULT_PRIVILEGES
    kind = {**(DEFAULT_KINDS if defaults else GRANT_KINDS), **SEQUENCE_KINDS}.get(object_type)
    granted = frozenset(privilege.upper() for privilege in privileges)
    if "ALL" in granted and kind is not None:
        granted = frozenset(kind.possible_privileges)
    name = facts.databases[database]
    if defaults:
        where = f"every {object_type} {resource.text('owner')} creates in {name}"
    elif object_type == "database":
        where = f"the database {name}"
    else:
        where = f"{object_type} {resource.text('schema') or SCHEMA}" if object_type == "schema" else f"{object_type}s"
        where += f" of {name}"
    return [Holding(role, database, f"{', '.join(sorted(granted))} on {where}", kind, granted)]


def _memberships(member: str | None, granted: Sequence[str | None], facts: StackFacts) -> list[Holding]:
    found: list[Holding] = []
    for name in granted:
        if member is None or name is None:
            continue
        role = facts.role(name)
        database = role.database if role is not None else None
        place = f"in {facts.databases[database]}" if database is not None else "wherever it acts"
        what = f"the membership of {name}, with all {name} holds {place}"
        found.append(Holding(member, database, what, member_of=name))
    return found
