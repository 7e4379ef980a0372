"""Serialise the ACL changes on one database.

GRANT and REVOKE on the same database, schema or default-ACL row rewrite the same catalog tuple;
two at once fail with "tuple concurrently updated" (pulumi-postgresql#126, #831). The engine runs
independent resources in parallel, so each grant of a database depends on the one before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pulumi
import pulumi_postgresql as postgresql

R = TypeVar("R", bound=pulumi.Resource)


class AclChain:
    def __init__(self, start: pulumi.Resource) -> None:
        self._last = start

    @property
    def last(self) -> pulumi.Resource:
        """The latest grant: whatever needs every grant of the database in place depends on it."""
        return self._last

    def add(self, parent: pulumi.Resource, declare: Callable[[pulumi.ResourceOptions], R]) -> R:
        """Declare the next grant with options that order it after the previous one.

        A grant replaced create-before-delete is revoked by the delete that follows the create
        (pulumi-postgresql#233), hence delete_before_replace.
        """
        opts = pulumi.ResourceOptions(parent=parent, depends_on=[self._last], delete_before_replace=True)
        resource = declare(opts)
        self._last = resource
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


@dataclass(frozen=True)
class GrantTarget:
    """What a Grant is on, and for whom."""

    database: pulumi.Input[str]
    role: pulumi.Input[str]
    object_type: str
    schema: str | None = None
    objects: pulumi.Input[Sequence[str]] | None = None
