"""A runtime role's own login, kept open for one rotation when a stack moves to two logins per role.

Before model/rotation.py, each runtime role logged in itself, and its clients hold its password.
The deploy that brings the two members must not lock them out: this step records, when it is first
created, whether the role could log in then (an existing stack) and at which rotation number. The
role keeps its login and its password (the program leaves the password as it is) until that number
is raised: the first rotation after the move closes it, as it retires any login two rotations old.
On a new stack the role does not exist yet when the step is created, so its login is never open.

A Python dynamic provider, like the migration step: it reads pg_roles once, as the migrator of the
role's database, and never writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from infra.server_login import ServerLogin, connect


def _could_log_in(props: dict[str, Any]) -> bool:
    with connect(props) as connection:
        row = connection.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (props["role"],)).fetchone()
    return bool(row and row[0])


def _outputs(props: dict[str, Any], could_log_in: bool, moved_at: int) -> dict[str, Any]:
    rotation = int(props["rotation"])
    return {**props, "could_log_in": could_log_in, "moved_at": moved_at, "open": could_log_in and rotation == moved_at}


class _HandoverProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        outputs = _outputs(props, _could_log_in(props), int(props["rotation"]))
        return CreateResult(id_=f"handover@{props['role']}", outs=outputs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only the role and its rotation number matter; where it connects may change freely.
        renamed = olds.get("role") != news.get("role")
        rotated = str(olds.get("rotation")) != str(news.get("rotation"))
        return DiffResult(changes=renamed or rotated, replaces=["role"] if renamed else [], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_outputs(news, bool(olds["could_log_in"]), int(olds["moved_at"])))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing on the server is the step's own."""


@dataclass(frozen=True)
class LoginHandoverArgs:
    role: str
    """The runtime role's name."""
    rotation: int
    """The role's rotation number in the stack config now."""
    login: ServerLogin
    """The role's database, read as its migrator (pg_roles is the same in every database)."""


class LoginHandover(pulumi.dynamic.Resource):
    """`open`: whether the role's own login stays open (a stack moved to two logins, not rotated since)."""

    open: pulumi.Output[bool]

    def __init__(self, name: str, args: LoginHandoverArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "role": args.role,
            "rotation": args.rotation,
            **args.login.props(),
            "could_log_in": None,
            "moved_at": None,
            "open": None,
        }
        secret_password = pulumi.ResourceOptions(additional_secret_outputs=["password"])
        super().__init__(_HandoverProvider(), name, props, pulumi.ResourceOptions.merge(opts, secret_password))
