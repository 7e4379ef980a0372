"""Serialise the ACL changes that rewrite one catalog row; let the others run in parallel.

GRANT and REVOKE on the same database, schema, tables or default-ACL row rewrite the same catalog
tuple; two at once fail with "tuple concurrently updated" (pulumi-postgresql#126, #831). The engine
runs independent resources in parallel, so each change to a row depends on every change before it
to that row. Every one, not only the last: a deploy that removes two roles deletes only their
grants, and the engine orders deletes by the direct dependencies among the deleted resources alone
(ScheduleDeletes in pulumi's step_generator.go); a grant left between them would no longer order
them. Changes to different rows do not collide: one chain per row keeps the deploy's longest path
at the number of roles, not the number of grants.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pulumi
import pulumi_postgresql as postgresql

R = TypeVar("R", bound=pulumi.Resource)


class AclChain:
    def __init__(self, start: pulumi.Resource) -> None:
        self._start = start
        self._changes: list[pulumi.Resource] = []

    @property
    def last(self) -> pulumi.Resource:
        """The latest change of the chain (its start while it has none)."""
        return self._changes[-1] if self._changes else self._start

    @property
    def changes(self) -> list[pulumi.Resource]:
        """Every change of the chain, in order."""
        return list(self._changes)

    def add(self, parent: pulumi.Resource | None, declare: Callable[[pulumi.ResourceOptions], R]) -> R:
        """Declare the next grant with options that order it after every earlier one.

        A grant replaced create-before-delete is revoked by the delete that follows the create
        (pulumi-postgresql#233), hence delete_before_replace. No parent: the stack's (a step declared
        before it joined a chain keeps its URN).
        """
        earlier = [self._start, *self._changes]
        opts = pulumi.ResourceOptions(parent=parent, depends_on=earlier, delete_before_replace=True)
        resource = declare(opts)
        self._changes.append(resource)
        return resource

    def grant(
        self,
        parent: pulumi.Resource,
        name: str,
        on: GrantTarget,
        privileges: Iterable[str],
    ) -> postgresql.Grant:
        """The next Grant of the chain: `privileges` (exactly these; fewer revokes the rest) on `on`."""
        return self.add(
            parent,
            lambda opts: postgresql.Grant(
                name,
                database=on.database,
                role=on.role,
                object_type=on.object_type,
                schema=on.schema,
                objects=on.objects,
                privileges=sorted(privileges),
                opts=opts,
            ),
        )


class AclRow(enum.Enum):
    """The catalog row an ACL change of one database rewrites (the value: a Grant's object_type)."""

    DATABASE = "database"
    """pg_database.datacl of the database."""
    SCHEMA = "schema"
    """pg_namespace.nspacl of its public schema."""
    TABLES = "table"
    """pg_class.relacl of its tables: every role's grant on them rewrites each one, and so does the log
    maintenance step (its run aligns the grants on the log tables and partitions, its delete revokes them)."""
    DEFAULT_PRIVILEGES = "default privileges"
    """The owner's pg_default_acl row for tables in public: it holds every role's defaults."""


class DatabaseAcl:
    """The ACL changes of one database: a chain per catalog row, every chain starting at `start`."""

    def __init__(self, start: pulumi.Resource) -> None:
        self._chains = {row: AclChain(start) for row in AclRow}

    def last(self, row: AclRow) -> pulumi.Resource:
        """The latest change of `row` so far (the chains' start while it has none)."""
        return self._chains[row].last

    def changes(self) -> list[pulumi.Resource]:
        """Every ACL change of the database, on every row."""
        return [change for chain in self._chains.values() for change in chain.changes]

    def grant(self, parent: pulumi.Resource, name: str, on: GrantTarget, privileges: Iterable[str]) -> postgresql.Grant:
        """The next Grant on the row `on` rewrites."""
        return self._chains[AclRow(on.object_type)].grant(parent, name, on, privileges)

    def add(self, row: AclRow, parent: pulumi.Resource | None, declare: Callable[[pulumi.ResourceOptions], R]) -> R:
        """The next change of `row` that is no Grant (default privileges, the log maintenance step)."""
        return self._chains[row].add(parent, declare)


@dataclass(frozen=True)
class GrantTarget:
    """What a Grant is on, and for whom."""

    database: pulumi.Input[str]
    role: pulumi.Input[str]
    object_type: str
    schema: str | None = None
    objects: pulumi.Input[Sequence[str]] | None = None
