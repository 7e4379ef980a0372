"""Drive a stack with the Automation API: the engine behind scripts/up, scripts/deploy and the tests.

The project's program is run as `pulumi up` runs it: the pinned CLI reads Pulumi.yaml and starts
infra/ through the Python language host. (Engine tests may deploy inline programs of their own.)
Before the engine starts, `preflight` checks what would otherwise fail half-way: the stack's
config, the passphrase, the server and the provider plugin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml
from pulumi import automation as auto

from infra.settings import (
    NAMESPACE,
    SECRET_IN_PLAIN_TEXT,
    SECRET_IS_SET,
    ConfigError,
    Settings,
    embedded_server_password,
    parse_settings,
)
from model.server_versions import is_supported, supported_text
from ops import paths
from ops.deploy import (
    deploy_processes,
    engine_events,
    foreign_roles,
    migration_gate,
    passphrase_check,
    rotation_check,
    state_backend,
    tls_check,
)
from ops.deploy.state_backend import StateBackend
from ops.errors import ExitCode, UserError
from ops.toolchain import pinned

PROJECT_NAME = "headhunter-db"
DEV_STACK = "dev"
# The dev stack's secrets are generated passwords of a throwaway server on loopback: a fixed,
# published passphrase protects nothing there and keeps the Quick start to two commands.
DEV_PASSPHRASE = "headhunter-dev-only"  # noqa: S105 (published on purpose, dev stack only)

Program = Callable[[], None]
# How the engine names a lock's holder in its "currently locked" error.
LOCK_HOLDER = re.compile(r"(?P<url>\S+): created by (?P<user>\S+)@(?P<host>\S+) \(pid (?P<pid>\d+)\)")


@dataclass(frozen=True)
class StackTarget:
    name: str
    program: Program | None = None
    """None: the program that Pulumi.yaml in work_dir names, run by the language host."""
    work_dir: Path = paths.PROJECT_DIR
    project_name: str = PROJECT_NAME
    create: bool = False
    """Create the stack in the state backend when it is not there (scripts/up); CD commands only select."""


def stack_env(stack_name: str) -> dict[str, str]:
    env = pinned.pulumi_env()
    # Marks what this deploy's engine starts, so that the next deploy after a kill ends its plugins
    # and nothing else (recovery.end_orphaned_plugins); this process's own environment stays unmarked.
    env[deploy_processes.DEPLOY_VARIABLE] = deploy_processes.deploy_marker(stack_name)
    has_passphrase = "PULUMI_CONFIG_PASSPHRASE" in env or "PULUMI_CONFIG_PASSPHRASE_FILE" in env
    if not has_passphrase:
        if stack_name != DEV_STACK:
            raise UserError(
                f"stack {stack_name!r} needs its secrets passphrase: set PULUMI_CONFIG_PASSPHRASE or "
                "PULUMI_CONFIG_PASSPHRASE_FILE (only the dev stack has a built-in one).",
                ExitCode.BAD_INPUT,
            )
        env["PULUMI_CONFIG_PASSPHRASE"] = DEV_PASSPHRASE
    return env


def project_stacks(work_dir: Path) -> list[str]:
    return sorted(path.name.split(".")[1] for path in work_dir.glob("Pulumi.*.yaml"))


def check_stack_file(target: StackTarget) -> None:
    """The project's stacks each have a stack file: a missing one is a typo, named before anything runs.

    A stack file that is not YAML is named with its line, before the engine reads it.
    """
    stack_file = target.work_dir / f"Pulumi.{target.name}.yaml"
    if not stack_file.exists():
        if target.program is None:
            known = ", ".join(project_stacks(target.work_dir)) or "none"
            raise UserError(
                f"there is no stack file {stack_file.name} in {target.work_dir} (this project's stacks: {known}): "
                "check the stack's name, or write that file to add a stack (README, Pulumi.staging.yaml is an "
                "example)."
            )
        return
    try:
        yaml.safe_load(stack_file.read_text())
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise UserError(f"{stack_file.name} is not valid YAML{line}: fix the file and run again.") from None


def repair_checkpoint(backend_dir: Path, project: str, stack: str) -> None:
    """A checkpoint a killed deploy left half-written is restored from the backend's own backup.

    The file backend writes `<stack>.json` (with a `.attrs` sidecar) after each step and keeps the
    previous one as `<stack>.json.bak`. A kill in the middle of a write can leave an empty or cut
    file, and then every command, `pulumi cancel` included, fails with "failed to load checkpoint".
    The damaged file is kept beside the restored one, for a person to look at.

    File backend only: the postgres:// backend writes a checkpoint as one row in one statement,
    which a kill cannot leave half-written.
    """
    checkpoint = backend_dir / ".pulumi" / "stacks" / project / f"{stack}.json"
    attrs = checkpoint.with_name(checkpoint.name + ".attrs")
    if attrs.exists() and not _is_json(attrs):
        attrs.unlink()  # metadata only; the engine writes it again
        say(f"removed the damaged {attrs.name} that an interrupted deploy left")
    if not checkpoint.exists() or _is_json(checkpoint):
        return
    backup = checkpoint.with_name(checkpoint.name + ".bak")
    if not _is_json(backup):
        raise UserError(
            f"the state file {checkpoint} is damaged and its backup {backup.name} too: restore the backend from "
            "your own backup.",
            ExitCode.DEPLOY_FAILED,
        )
    kept = checkpoint.with_name(f"{checkpoint.name}.damaged-{int(time.time())}")
    checkpoint.rename(kept)
    shutil.copyfile(backup, checkpoint)
    attrs.unlink(missing_ok=True)
    say(
        f"the state file of stack {stack!r} was damaged by an interrupted deploy: restored the previous "
        f"checkpoint from {backup.name} (the damaged file is kept as {kept.name}); the deploy redoes the rest"
    )


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_bytes() or b"!")
    except (OSError, ValueError):
        return False
    return True


def open_stack(target: StackTarget) -> auto.Stack:
    check_stack_file(target)
    env = stack_env(target.name)
    if passphrase_check.wrong_passphrase(target.work_dir / f"Pulumi.{target.name}.yaml", env):
        raise UserError(
            f"the secrets passphrase of stack {target.name!r} is wrong: set PULUMI_CONFIG_PASSPHRASE to the one "
            "the stack was created with.",
            ExitCode.BAD_INPUT,
        )
    backend = StateBackend(env["PULUMI_BACKEND_URL"])
    if backend.is_file:
        backend_dir = Path(backend.url.removeprefix("file://"))
        backend_dir.mkdir(parents=True, exist_ok=True)
        repair_checkpoint(backend_dir, target.project_name, target.name)
    state_backend.check(backend)  # postgres:// only: before Pulumi can print its URL, password and all
    cli = pinned.cli_path()
    command = auto.PulumiCommand(root=str(cli.parent.parent), skip_version_check=True)
    options = auto.LocalWorkspaceOptions(
        work_dir=str(target.work_dir), pulumi_home=env["PULUMI_HOME"], env_vars=env, pulumi_command=command
    )
    with engine_errors(target.name):
        initialize = auto.create_or_select_stack if target.create else auto.select_stack
        try:
            if target.program is None:
                return initialize(stack_name=target.name, work_dir=str(target.work_dir), opts=options)
            return initialize(
                stack_name=target.name, project_name=target.project_name, program=target.program, opts=options
            )
        except auto.StackNotFoundError:
            raise UserError(
                f"stack {target.name!r} does not exist in the state backend ({backend.shown}): create it once with "
                f"`scripts/pulumi stack init {target.name}` (or deploy it first with `scripts/up {target.name}`).",
            ) from None


def translate(error: auto.CommandError, stack_name: str, events: Sequence[auto.EngineEvent] = ()) -> UserError:
    """An engine failure as one line naming the problem and the fix, with the exit code a pipeline reads.

    The code comes from the Automation API's error type (a lock held by another deploy) and from the
    run's structured events (ops/deploy/engine_events.py), never from the error's text: a failure that
    left no event telling its cause is the engine's own (exit 8). The text is what the line shows.
    """
    text = state_backend.hide_passwords(str(error))  # the engine names a postgres:// backend password and all
    if isinstance(error, auto.ConcurrentUpdateError):
        holders = "; ".join(match.group(0) for match in LOCK_HOLDER.finditer(text)) or "unknown holder"
        return UserError(
            f"stack {stack_name!r} is locked by another deploy ({holders}): wait for it to finish; if it was "
            f"killed, clear the lock with `scripts/pulumi cancel --stack {stack_name} --yes`.",
            ExitCode.STACK_LOCKED,
        )
    reported = engine_events.read(events)
    code = engine_events.exit_code(reported, engine_events.server_answers)
    return UserError(state_backend.hide_passwords(failure_message(code, stack_name, reported, text)), code)


def failure_message(code: ExitCode, stack_name: str, reported: engine_events.Reported, text: str) -> str:
    """What the driver says of a failed run whose exit code is `code`: the cause, the engine's own lines, the fix."""
    said = "\n".join(dict.fromkeys(engine_events.without_marker(error.message) for error in reported.step_errors))
    if code == ExitCode.POLICY_VIOLATED:
        rules = ", ".join(sorted({violation.policy for violation in reported.violations}))
        return (
            f"the program of stack {stack_name!r} breaks {rules} of the policy pack (policy/), so the preview "
            "stopped and nothing was deployed; each violation is printed above with its fix."
        )
    if code == ExitCode.MIGRATION_REFUSED:
        return (
            f"the migration gate refused a pending revision of stack {stack_name!r}, so the preview stopped and "
            f"nothing was deployed:\n{said}"
        )
    if code == ExitCode.BAD_INPUT:
        return (
            f"a database of stack {stack_name!r} is at a revision this checkout does not hold, so the preview "
            f"stopped and nothing was deployed:\n{said}"
        )
    if code == ExitCode.SERVER_UNREACHABLE and reported.step_errors:
        return (
            f"the preview of stack {stack_name!r} could not read a database's revision, so nothing was deployed:\n"
            f"{said}"
        )
    if code == ExitCode.SERVER_UNREACHABLE:
        servers = ", ".join(f"{address.host}:{address.port}" for address in reported.provider_servers)
        return (
            f"PostgreSQL went away during the deploy of stack {stack_name!r} (nothing answers at {servers} now):\n"
            f"{engine_lines(reported, text)}\nStart the server (or wait for the failover) and deploy again: the next "
            "deploy picks up where this one stopped."
        )
    if code == ExitCode.MIGRATION_FAILED:
        return f"a migration failed, so the deploy stopped:\n{said}"
    return f"the Pulumi engine failed on stack {stack_name!r}:\n{engine_lines(reported, text)}"


def engine_lines(reported: engine_events.Reported, text: str) -> str:
    """The engine's error messages of the run, or the last lines of its output when it sent no event."""
    if reported.errors:
        return "\n".join(list(dict.fromkeys(reported.errors))[-12:])
    return "\n".join(text.strip().splitlines()[-12:]) or "no message"


# The events of the engine run that the current `engine_errors` block started (engine_options()), read by
# translate when that run fails: the commands run the engine inside that block, so they need not pass them.
_RUN_EVENTS: ContextVar[list[engine_events.EngineEvents] | None] = ContextVar("engine_run_events", default=None)


@contextmanager
def engine_errors(stack_name: str) -> Iterator[None]:
    """Turn the Automation API's CommandError into the one-line UserError a pipeline can act on."""
    runs: list[engine_events.EngineEvents] = []
    token = _RUN_EVENTS.set(runs)
    try:
        yield
    except auto.CommandError as error:
        raise translate(error, stack_name, runs[-1].events() if runs else ()) from None
    finally:
        _RUN_EVENTS.reset(token)


def flat_config(stack: auto.Stack) -> dict[str, str]:
    """The stack's `headhunter-db:*` values as plain strings, the way infra.settings reads them."""
    prefix = f"{NAMESPACE}:"
    with engine_errors(stack.name):
        all_config = stack.get_all_config()
    raw = {key.removeprefix(prefix): value.value for key, value in all_config.items() if key.startswith(prefix)}
    if raw.get("adminPassword"):
        # Only how it is stored matters to validation; the value itself is read where it is used.
        secret = all_config[f"{prefix}adminPassword"].secret
        raw["adminPassword"] = SECRET_IS_SET if secret else SECRET_IN_PLAIN_TEXT
    return raw


def preflight(stack: auto.Stack) -> Settings:
    """Everything that can be checked before the engine changes anything."""
    try:
        settings = parse_settings(stack.name, flat_config(stack))
    except ConfigError as error:
        raise UserError(str(error), ExitCode.BAD_INPUT) from None
    admin_password = admin_password_for_preflight(stack, settings)
    check_server(settings, admin_password)
    check_against_deployed(stack, settings, admin_password)
    migration_gate.check_pending_revisions(
        settings, lambda database: connect_admin(settings, admin_password, database), say
    )
    if not pinned.has_postgresql_plugin():
        what = f"the postgresql resource plugin v{pinned.pinned_postgresql_plugin_version()}"
        raise UserError(pinned.missing_plugin_message(what), ExitCode.TOOLCHAIN)
    return settings


def check_against_deployed(stack: auto.Stack, settings: Settings, admin_password: str) -> None:
    """The stack file against what the stack has deployed: rotation numbers it may take, read-only roles it owns."""
    with engine_errors(stack.name):
        deployed = outputs(stack)
    problems = rotation_check.rotation_problems(settings, rotation_check.deployed_rotations(deployed))
    with connect_admin(settings, admin_password) as session:
        problems += foreign_roles.foreign_role_problems(settings, session, deployed, lambda: exported_state(stack))
    if problems:
        raise UserError("\n".join(problems), ExitCode.BAD_INPUT)


def exported_state(stack: auto.Stack) -> Mapping[str, Any]:
    """The stack's state as `pulumi stack export` gives it (resources, pending operations)."""
    with engine_errors(stack.name):
        return stack.export_stack().deployment or {}


def admin_password_for_preflight(stack: auto.Stack, settings: Settings) -> str:
    if settings.server.embedded:
        return embedded_server_password(settings)
    return stack.get_config(f"{NAMESPACE}:adminPassword").value


def check_server(settings: Settings, admin_password: str) -> None:
    server = settings.server
    where = f"{server.host}:{server.port} as {server.admin_user}"
    fix = (
        "start it with `scripts/localpg start`"
        if server.embedded
        else f"check {NAMESPACE}:host, port, adminUser and adminPassword in Pulumi.{settings.stack}.yaml"
    )
    try:
        with connect_admin(settings, admin_password) as connection:
            version = connection.info.server_version
    except psycopg.OperationalError as error:
        if problem := tls_check.certificate_problem(server):
            message = f"the certificate of the PostgreSQL server at {server.host}:{server.port} {problem}."
            raise UserError(f"{message} Nothing was changed.", ExitCode.SERVER_UNREACHABLE) from None
        reason = str(error).strip().splitlines()[-1]
        raise UserError(f"cannot reach PostgreSQL at {where} ({reason}): {fix}.", ExitCode.SERVER_UNREACHABLE) from None
    if problem := server_version_problem(settings, version):
        raise UserError(problem, ExitCode.BAD_INPUT)


def server_version_problem(settings: Settings, version: int) -> str | None:
    """Why a server of `version` (server_version_num, e.g. 180004) is refused for the stack; None if it is not."""
    server = settings.server
    major = version // 10000
    if not is_supported(major) and not server.allow_untested_version:
        return (
            f"the server at {server.host}:{server.port} runs PostgreSQL {major}, which this project does not test "
            f"(it supports {supported_text()}): deploy to a supported major, or set "
            f"{NAMESPACE}:allowUntestedServerVersion true in Pulumi.{settings.stack}.yaml to deploy to it untested. "
            "Nothing was changed."
        )
    if major < int(server.min_version.split(".")[0]):
        return (
            f"the server at {server.host}:{server.port} runs PostgreSQL {major}, older than "
            f"{NAMESPACE}:minServerVersion {server.min_version}: upgrade the server or lower that key. "
            "Nothing was changed."
        )
    return None


def connect_admin(
    settings: Settings, admin_password: str, database: str = "postgres"
) -> psycopg.Connection[tuple[Any, ...]]:
    """The admin's session on the server's maintenance database (or `database`), as the provider connects."""
    server = settings.server
    parameters: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "user": server.admin_user,
        "password": admin_password,
        "dbname": database,
        "sslmode": server.sslmode,
        "connect_timeout": 10,
        **server.tls.libpq_parameters(),
    }
    return psycopg.connect(autocommit=True, **parameters)


def outputs(stack: auto.Stack) -> Mapping[str, Any]:
    return {key: value.value for key, value in stack.outputs().items()}


def speaker() -> str:
    """The command the driver's own lines serve (up, deploy, destroy, adopt, ...): the entry point that
    runs, so that `scripts/destroy` does not print `deploy:`."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = spec.name if spec is not None else ""
    return name.removeprefix("ops.commands.") if name.startswith("ops.commands.") else "deploy"


def say(line: str) -> None:
    """A line of the driver's own, prefixed with the command it serves."""
    print(f"{speaker()}: {line}", flush=True)


def printer() -> Callable[[str], None]:
    def emit(line: str) -> None:
        line = state_backend.hide_passwords(line)  # the engine's diagnostics may name a backend URL, password and all
        print(line, end="" if line.endswith("\n") else "\n", flush=True)

    return emit


def engine_options() -> dict[str, Any]:
    """Options of every up, preview, refresh and destroy the scripts run; inside `engine_errors`, the run's
    structured events are collected for it (they, not the messages, decide the exit code of a failure)."""
    options: dict[str, Any] = {
        "color": "never",
        "on_output": printer(),
        "suppress_progress": os.environ.get("CI") == "true",
    }
    runs = _RUN_EVENTS.get()
    if runs is not None:
        runs.append(engine_events.EngineEvents())
        options["on_event"] = runs[-1]
    return options


def deploy_options() -> dict[str, Any]:
    """Options of the scripts' up and preview: read the server first, so drift by hand is put back."""
    return {**engine_options(), "refresh": True}
