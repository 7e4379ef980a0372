"""What the verification suite needs to know about a deployed stack, taken from its outputs.

It travels to the suite's process as JSON in the HEADHUNTER_DEPLOYMENT environment variable, never
as a file or an argument: it holds the login roles' connection URLs, with their passwords.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from infra.outputs import StackOutput
from model import privileges
from model.log_lifecycle import LogLifecycle
from model.names import DatabaseKey, RoleKind, RoleNames
from model.privileges import Grantee, RuntimeRoleSpec, read_only_role
from ops.errors import UserError

ENV_VAR = "HEADHUNTER_DEPLOYMENT"
REPORT_ENV_VAR = "HEADHUNTER_VERIFY_JSON"  # where the suite writes its JSON report


@dataclass(frozen=True)
class DeployedStack:
    stack: str
    host: str
    port: int
    sslmode: str
    role_prefix: str
    databases: dict[str, str]
    read_only_roles: list[dict[str, str]]
    connection_limits: dict[str, int]
    connection_urls: dict[str, str] = field(repr=False)
    """Per login role key (app, logs_writer, main_migrator, ...): a libpq URL with the password."""
    log_lifecycle: dict[str, Any] = field(default_factory=dict)
    """retention_days (per log table) and premake_days, as the stack config says; empty before logs_0004."""
    statement_timeouts_ms: dict[str, int] = field(default_factory=dict)
    """Per role key: the statement_timeout its logins get (none when absent)."""
    open_handovers: list[str] = field(default_factory=list)
    """Runtime roles (keys) whose own login stays open until their next rotation (infra/login_handover.py)."""
    standby_connection_urls: dict[str, str] = field(default_factory=dict, repr=False)
    """Per runtime or read-only role key: the URL of its login that is not handed out (model/rotation.py)."""
    legacy_roles: dict[str, str] = field(default_factory=dict)
    """Roles of an adopted deployment that the stack keeps (keep, nologin): not its own, but left as they are."""
    contract_through: str | None = None
    """headhunter-db:contractThrough as the last deploy ran the main tree (migrations.shared.phases); None:
    unset, or a stack deployed before the output existed."""

    def lifecycle(self) -> LogLifecycle:
        if not self.log_lifecycle:
            raise AssertionError(
                f"stack {self.stack!r} has no log_lifecycle output: it was deployed before the log tables' "
                f"lifecycle; deploy it again (scripts/deploy {self.stack})"
            )
        return LogLifecycle(dict(self.log_lifecycle["retention_days"]), int(self.log_lifecycle["premake_days"]))

    @property
    def names(self) -> RoleNames:
        return RoleNames(self.role_prefix)

    def database(self, key: DatabaseKey) -> str:
        return self.databases[key.value]

    def read_only_specs(self) -> tuple[RuntimeRoleSpec, ...]:
        """The stack's read-only roles as the model describes them."""
        return tuple(read_only_role(role["name"], DatabaseKey(role["database"])) for role in self.read_only_roles)

    def grantees(self) -> tuple[Grantee, ...]:
        """Every role the model gives privileges in this stack, PUBLIC included."""
        return privileges.grantees(self.names, self.read_only_specs())

    def can_log_in(self, grantee: Grantee) -> bool:
        """A login member or migrator; a runtime role only while its handover is open."""
        return grantee.login or (grantee.kind is RoleKind.RUNTIME and grantee.key in self.open_handovers)

    def migrator_url(self, key: DatabaseKey) -> str:
        return self.connection_urls[f"{key}_migrator"]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DeployedStack:
        return cls(**json.loads(text))

    @classmethod
    def from_stack_outputs(cls, stack: str, outputs: Mapping[str, Any]) -> DeployedStack:
        return cls(
            stack=stack,
            host=outputs[StackOutput.HOST],
            port=int(outputs[StackOutput.PORT]),
            sslmode=outputs[StackOutput.SSLMODE],
            role_prefix=outputs[StackOutput.ROLE_PREFIX],
            databases=dict(outputs[StackOutput.DATABASES]),
            read_only_roles=list(outputs.get(StackOutput.READ_ONLY_ROLES, [])),
            connection_limits=dict(outputs.get(StackOutput.CONNECTION_LIMITS, {})),
            connection_urls=dict(outputs[StackOutput.CONNECTION_URLS]),
            log_lifecycle=dict(outputs.get(StackOutput.LOG_LIFECYCLE, {})),
            statement_timeouts_ms=dict(outputs.get(StackOutput.STATEMENT_TIMEOUTS, {})),
            open_handovers=list(outputs.get(StackOutput.OPEN_HANDOVERS, [])),
            standby_connection_urls=dict(outputs.get(StackOutput.STANDBY_CONNECTION_URLS, {})),
            legacy_roles=dict(outputs.get(StackOutput.LEGACY_ROLES, {})),
            contract_through=outputs.get(StackOutput.CONTRACT_THROUGH),
        )


def is_deployed(outputs: Mapping[str, Any]) -> bool:
    """Whether a deploy of the stack finished: a first deploy that was killed or failed exports nothing."""
    return StackOutput.CONNECTION_URLS in outputs


def deployed(stack: str, outputs: Mapping[str, Any]) -> DeployedStack:
    """The stack's outputs, or the error that says it was never deployed (nothing is changed)."""
    if not is_deployed(outputs):
        raise UserError(f"stack {stack!r} has not been deployed yet: run `scripts/up {stack}` first.")
    return DeployedStack.from_stack_outputs(stack, outputs)


def from_environment() -> DeployedStack | None:
    text = os.environ.get(ENV_VAR)
    return DeployedStack.from_json(text) if text else None
