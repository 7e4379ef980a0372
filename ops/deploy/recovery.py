"""What a killed deploy leaves behind, settled by the next `scripts/deploy` or `scripts/up`.

A deploy killed mid-way (a cancelled CI job, a lost runner) leaves the stack's lock and the creates
it had started. The lock is removed only when its deploy ran on this machine and its process is
gone; the pending creates are settled: roles and databases it may have made are imported into the
state by name, everything else is retried by the next `up`. Nothing on the server is dropped, and
no person has to type a command in between. The same on the file and the postgres:// backend,
through Pulumi's own commands (`pulumi cancel`, `stack export`, `refresh --clear-pending-creates`,
`import`); only the file backend's damaged checkpoint needs a repair of its own (driver.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from pulumi import automation as auto

from ops.deploy import deploy_processes, driver, state_backend
from ops.deploy.state_backend import StateBackend
from ops.toolchain import pinned

T = TypeVar("T")


def recovering(stack: auto.Stack, action: Callable[[], T]) -> T:
    """Run a locking engine action; a lock whose deploy no longer runs is removed and the action retried.

    Only locks of deploys on this machine whose process has exited qualify; any other lock stops
    this deploy with exit 6 and the holder's name, for a person to judge. On the file backend only
    that lock file is removed. The postgres:// backend has no command that removes one lock:
    `pulumi cancel` removes every lock of the stack, which is safe there because this deploy holds
    the stack's turn (state_backend.take_turn), so no other scripted deploy can hold a live one.
    """
    with driver.engine_errors(stack.name):
        try:
            return action()
        except auto.CommandError as error:
            holders = list(driver.LOCK_HOLDER.finditer(str(error)))
            stale = [m for m in holders if is_gone(m["host"], int(m["pid"]))]
            if not holders or len(stale) != len(holders):
                raise
            for holder in stale:
                driver.say(f"removing the lock of a deploy that no longer runs (pid {holder['pid']})")
                if holder["url"].startswith("file://"):
                    Path(urlparse(holder["url"]).path).unlink(missing_ok=True)
            if not all(holder["url"].startswith("file://") for holder in stale):
                cancelled = run_cli(stack, "cancel", "--yes")
                if cancelled.returncode != 0:
                    failed = auto.CommandResult(cancelled.stdout, cancelled.stderr, cancelled.returncode)
                    raise auto.CommandError(failed) from None
            end_orphaned_plugins(stack.name, stack.workspace.env_vars)
            clear_pending_operations(stack)
            return action()


def settle_interrupted_deploy(stack: auto.Stack) -> None:
    """Before a deploy or destroy: the stack's turn taken, a dead deploy's lock removed, its pending creates settled."""
    backend = StateBackend(stack.workspace.env_vars.get("PULUMI_BACKEND_URL", ""))
    state_backend.take_turn(backend, stack.name, Path(sys.argv[0]).stem)
    recovering(stack, lambda: clear_pending_operations(stack))


# Creates that fail when run twice ("already exists"): a killed deploy may have made the object
# before the state recorded it, so it is imported into the state by its name instead of created again.
IMPORTED_WHEN_PENDING = ("postgresql:index/role:Role", "postgresql:index/database:Database")


def clear_pending_operations(stack: auto.Stack) -> None:
    """Settle what a killed `up` left pending: drop its pending creates, import its roles and databases.

    A pending create may or may not have reached the server. The roles and databases that did are
    imported into the state by name (the next `up` then brings their attributes to the program's);
    every other pending create (grants, default privileges, passwords, migration runs) is safe to
    run again, so the next `up` redoes it. Nothing on the server is dropped.
    """
    deployment = stack.export_stack().deployment or {}
    pending = [op["resource"] for op in deployment.get("pending_operations") or [] if op.get("type") == "creating"]
    if not pending:
        return
    driver.say(f"an interrupted deploy left {len(pending)} creates pending: settling them")
    stack.refresh(clear_pending_creates=True, color="never")
    for resource in pending:
        if resource.get("type") in IMPORTED_WHEN_PENDING:
            import_pending_create(stack, resource)


def import_pending_create(stack: auto.Stack, resource: dict[str, Any]) -> None:
    """Import a role or database that a killed deploy created; skip it when it never reached the server."""
    name = resource["inputs"]["name"]
    spec = {
        "nameTable": {"parent": resource["parent"], "provider": resource["provider"].rsplit("::", 1)[0]},
        "resources": [
            {
                "type": resource["type"],
                "name": resource["urn"].rsplit("::", 1)[1],
                "id": name,
                "parent": "parent",
                "provider": "provider",
            }
        ],
    }
    with tempfile.TemporaryDirectory() as folder:
        spec_file = Path(folder) / "import.json"
        spec_file.write_text(json.dumps(spec))
        # `pulumi import` protects what it imports unless told otherwise; the pending create carries
        # the program's own choice (protected databases on a stack that forbids their deletion).
        protect = f"--protect={str(bool(resource.get('protect'))).lower()}"
        result = run_cli(
            stack, "import", "--file", str(spec_file), protect, "--yes", "--skip-preview", "--generate-code=false"
        )
    if result.returncode == 0:
        restore_dependencies(stack, resource)
        driver.say(f"imported {name} into the state, which the interrupted deploy had created")
    elif "does not exist" not in result.stdout + result.stderr:
        raise auto.CommandError(auto.CommandResult(result.stdout, result.stderr, result.returncode))


def restore_dependencies(stack: auto.Stack, pending: dict[str, Any]) -> None:
    """Give an imported resource the dependencies its pending create recorded.

    `pulumi import` records none, so a destroy before the next `up` would delete a database's owner
    role before the database (whose delete then fails: the provider grants itself that role first).
    """
    exported = stack.export_stack()
    for resource in (exported.deployment or {}).get("resources") or []:
        if resource.get("urn") == pending["urn"]:
            resource["dependencies"] = pending.get("dependencies") or []
            resource["propertyDependencies"] = pending.get("propertyDependencies") or {}
    stack.import_stack(exported)


def run_cli(stack: auto.Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """A CLI command the Automation API lacks, in the stack's workspace and environment."""
    command = [str(pinned.cli_path()), *args, "--stack", stack.name, "--non-interactive", "--color", "never"]
    env = {**os.environ, **stack.workspace.env_vars}
    return subprocess.run(command, cwd=stack.workspace.work_dir, env=env, capture_output=True, text=True)


def is_gone(host: str, pid: int) -> bool:
    """True when the lock's process ran on this machine and has exited (a zombie has exited too)."""
    if host != socket.gethostname():
        return False  # another machine's deploy: we cannot tell, so we leave its lock alone
    try:
        state = deploy_processes.process_status(pid)[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def end_orphaned_plugins(stack_name: str, env: Mapping[str, str]) -> None:
    """End the plugins (language host, program, providers) that this stack's killed deploys left running.

    The engine starts its plugins in process groups of their own, so a SIGKILL of the deploy's group
    leaves them behind. Only what a dead deploy's engine provably started is ended (deploy_processes.py):
    never a server, a shell or a job that merely shares the backend's environment. `env` is the engine's.
    """
    backend_url = env.get("PULUMI_BACKEND_URL", "")
    folders = deploy_processes.toolchain_folders(env.get("PULUMI_HOME", ""), pinned.cli_path())
    for plugin in deploy_processes.plugins_of_dead_deploys(stack_name, backend_url, folders):
        if deploy_processes.end_process(plugin, stack_name, backend_url, folders):
            program = plugin.command[0] or plugin.executable
            driver.say(f"ended {program} (pid {plugin.pid}), left running by the killed deploy")
