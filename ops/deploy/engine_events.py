"""What the engine reported about a failed preview, up, refresh or destroy, read from its structured events.

The exit code of a failed engine run is chosen here from the engine's events (the Automation API's
`on_event`, the CLI's `--event-log`), never from the text of its messages:

- a policy event of a mandatory rule: the program breaks a rule of the policy pack;
- an error diagnostic on a migration step whose message carries one of our markers
  (infra/step_errors.py): the step's own typed error, by its kind;
- a failed operation of a resource of the PostgreSQL provider: the server that provider names (its
  inputs in the events) is probed, and a server that does not answer makes it exit 5.

Anything else is the engine's own failure. The messages of the error events are kept for the one line
the driver prints, not read for a decision.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi import automation as auto

from infra.step_errors import MARKER_PREFIX, marker
from ops.errors import ExitCode

MANDATORY = "mandatory"
DYNAMIC_RESOURCE = "pulumi-python:dynamic:Resource"
POSTGRESQL_PROVIDER = "pulumi:providers:postgresql"
# The migration step's error kinds (infra/step_errors.py), in the order one is chosen when several are reported.
STEP_ERROR_CODES: dict[str, ExitCode] = {
    "migration-refused": ExitCode.MIGRATION_REFUSED,
    "revision-not-in-tree": ExitCode.BAD_INPUT,
    "revision-unreadable": ExitCode.SERVER_UNREACHABLE,
    "migration-failed": ExitCode.MIGRATION_FAILED,
}


@dataclass(frozen=True)
class PolicyViolation:
    policy: str
    resource_urn: str | None
    message: str


@dataclass(frozen=True)
class StepError:
    kind: str
    resource_urn: str
    message: str
    """The step's own message, from its marker on, the marker left out."""


@dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int


@dataclass(frozen=True)
class Reported:
    """A run's failure as its events tell it."""

    violations: tuple[PolicyViolation, ...] = ()
    step_errors: tuple[StepError, ...] = ()
    provider_servers: tuple[ServerAddress, ...] = ()
    """The servers named by the PostgreSQL providers of the resources whose operation failed."""
    errors: tuple[str, ...] = ()
    """Every error diagnostic's message, as the engine gave it: for people to read."""


class EngineEvents:
    """The events of one engine run, collected as the Automation API delivers them (its `on_event`)."""

    def __init__(self) -> None:
        self._events: list[auto.EngineEvent] = []
        self._lock = threading.Lock()  # delivered from the API's event thread

    def __call__(self, event: auto.EngineEvent) -> None:
        with self._lock:
            self._events.append(event)

    def events(self) -> list[auto.EngineEvent]:
        with self._lock:
            return list(self._events)


def read(events: Iterable[auto.EngineEvent]) -> Reported:
    """The policy violations, the migration steps' typed errors and the failed PostgreSQL resources of a run."""
    events = list(events)
    diagnostics = [event.diagnostic_event for event in events if event.diagnostic_event is not None]
    errors = [diagnostic for diagnostic in diagnostics if diagnostic.severity == "error"]
    return Reported(
        violations=tuple(
            PolicyViolation(event.policy_event.policy_name, event.policy_event.resource_urn, event.policy_event.message)
            for event in events
            if event.policy_event is not None and event.policy_event.enforcement_level == MANDATORY
        ),
        step_errors=tuple(error for diagnostic in errors if (error := step_error(diagnostic)) is not None),
        provider_servers=failed_provider_servers(events),
        errors=tuple(diagnostic.message.strip() for diagnostic in errors if diagnostic.message.strip()),
    )


def step_error(diagnostic: auto.DiagnosticEvent) -> StepError | None:
    """The migration step's typed error an error diagnostic carries: its marker on a dynamic resource's event."""
    if diagnostic.urn is None or resource_type(diagnostic.urn) != DYNAMIC_RESOURCE:
        return None
    for kind in STEP_ERROR_CODES:
        start = diagnostic.message.find(marker(kind))
        if start >= 0:
            message = diagnostic.message[start + len(marker(kind)) :].strip()
            return StepError(kind, diagnostic.urn, message)
    return None


def failed_provider_servers(events: Sequence[auto.EngineEvent]) -> tuple[ServerAddress, ...]:
    """The servers of the PostgreSQL providers whose resources' operations failed, by the providers' inputs."""
    providers: dict[str, ServerAddress] = {}
    for event in events:
        step = event.resource_pre_event or event.res_outputs_event
        if step is None or resource_type(step.metadata.urn) != POSTGRESQL_PROVIDER:
            continue
        state = step.metadata.new or step.metadata.old
        address = server_address(state.inputs or {}) if state is not None else None
        if state is not None and address is not None:
            providers[f"{step.metadata.urn}::{state.id}"] = address  # how a resource names its provider
    failed = [event.res_op_failed_event.metadata.provider for event in events if event.res_op_failed_event is not None]
    found = [providers.get(reference) for reference in failed]
    return tuple(dict.fromkeys(address for address in found if address is not None))


def server_address(inputs: Mapping[str, Any]) -> ServerAddress | None:
    host, port = inputs.get("host"), inputs.get("port")
    if not isinstance(host, str) or not str(port).isdigit():
        return None
    return ServerAddress(host, int(str(port)))


def resource_type(urn: str) -> str:
    """The type of a URN (`urn:pulumi:STACK::PROJECT::[PARENT$]TYPE::NAME`), without its parents' types."""
    parts = urn.split("::")
    return parts[2].rsplit("$", 1)[-1] if len(parts) >= 4 else ""


def exit_code(reported: Reported, server_answers: Callable[[ServerAddress], bool]) -> ExitCode:
    """The exit code of a failed run: a broken rule first (nothing ran), then the step's kind, then the server."""
    if reported.violations:
        return ExitCode.POLICY_VIOLATED
    kinds = {error.kind for error in reported.step_errors}
    for kind, code in STEP_ERROR_CODES.items():
        if kind in kinds:
            return code
    if any(not server_answers(address) for address in reported.provider_servers):
        return ExitCode.SERVER_UNREACHABLE
    return ExitCode.DEPLOY_FAILED


def server_answers(address: ServerAddress) -> bool:
    """True when a PostgreSQL server at the address takes connections now.

    The startup message of a login as a role that need not exist, by PostgreSQL's protocol: a server
    that takes connections asks for authentication or refuses the login (SQLSTATE class 28); one that
    is down does not answer, and one starting, shutting down or in recovery answers 57P0x.
    """
    startup = struct.pack("!i", 196608) + b"user\0headhunter_probe\0database\0postgres\0\0"
    try:
        with socket.create_connection((address.host, address.port), timeout=5) as connection:
            connection.sendall(struct.pack("!i", len(startup) + 4) + startup)
            reply = connection.recv(4096)
    except OSError:
        return False
    if reply[:1] == b"R":
        return True
    return reply[:1] == b"E" and error_sqlstate(reply[5:]).startswith("28")


def error_sqlstate(fields: bytes) -> str:
    """The SQLSTATE (field C) of an ErrorResponse's fields."""
    for field in fields.split(b"\0"):
        if field[:1] == b"C":
            return field[1:].decode("ascii", "replace")
    return ""


def without_marker(message: str) -> str:
    """A step error's message as a person reads it: what precedes our marker (the engine's wrapping) left out."""
    start = message.find(MARKER_PREFIX)
    return message[message.index("]", start) + 1 :].strip() if start >= 0 else message
