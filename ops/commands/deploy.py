"""`scripts/deploy STACK`: the CD stage. Preflight, preview (the diff shown), up (with the
migrations), verify; stops at the first failure with one line and the exit code of ops/errors.py.

Safe to run twice at once on one stack: the engine's stack lock lets one through and the other
fails with exit 6, naming the lock's holder. A deploy that was killed (a cancelled CI job) leaves
its lock and pending operations behind: the next deploy on the same machine removes that lock once
its process is gone, clears the pending creates, and converges. A lock from another machine (an
ephemeral CI runner) is reported, not removed: clear it with `scripts/pulumi cancel` once sure.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pulumi import automation as auto

from ops import automation, cli
from ops.commands import verify
from ops.deployed_stack import DeployedStack
from ops.errors import ExitCode, UserError, run_main


@dataclass(frozen=True)
class DeployPlan:
    target: automation.StackTarget
    preflight: Callable[[auto.Stack], object]
    verify: Callable[[DeployedStack], int]


def deploy(plan: DeployPlan) -> int:
    name = plan.target.name
    stack = automation.open_stack(plan.target)
    plan.preflight(stack)
    recovering(stack, lambda: clear_pending_operations(stack))
    with automation.engine_errors(name):
        print(f"deploy: preview of stack {name}", flush=True)
        preview = stack.preview(diff=True, **automation.deploy_options())
    changes = {str(op): n for op, n in preview.change_summary.items() if str(op) != "same"}
    print(f"deploy: {', '.join(f'{n} to {op}' for op, n in changes.items()) or 'no changes'}", flush=True)
    print(f"deploy: up of stack {name}", flush=True)
    recovering(stack, lambda: stack.up(**automation.deploy_options()))
    print(f"deploy: verifying stack {name}", flush=True)
    deployed = DeployedStack.from_stack_outputs(name, automation.outputs(stack))
    if plan.verify(deployed) != ExitCode.OK:
        raise UserError(
            f"stack {name} was deployed, but the server holds what the stack does not manage (see the report "
            "above): the deploy put back every grant and role attribute of its own, and never drops a table or "
            "a role it did not create. Each difference above names the SQL that removes it.",
            ExitCode.VERIFY_FAILED,
        )
    return ExitCode.OK


def recovering(stack: auto.Stack, action: Callable[[], object]) -> None:
    """Run a locking engine action; a lock whose deploy no longer runs is removed and the action retried.

    Only that lock file is removed, never the others (`pulumi cancel` would delete every lock of the
    stack, a live one that another recovering deploy just took included). Only locks of a file
    backend, on this machine, whose process has exited, qualify; any other lock stops this deploy
    with exit 6 and the holder's name, for a person to judge.
    """
    with automation.engine_errors(stack.name):
        try:
            action()
            return
        except auto.CommandError as error:
            holders = list(automation.LOCK_HOLDER.finditer(str(error)))
            stale = [m for m in holders if m["url"].startswith("file://") and is_gone(m["host"], int(m["pid"]))]
            if not holders or len(stale) != len(holders):
                raise
            for holder in stale:
                print(f"deploy: removing the lock of a deploy that no longer runs (pid {holder['pid']})", flush=True)
                Path(urlparse(holder["url"]).path).unlink(missing_ok=True)
            clear_pending_operations(stack)
            action()


def clear_pending_operations(stack: auto.Stack) -> None:
    """A killed `up` leaves pending creates: refresh drops them, and the next `up` redoes the work."""
    deployment = stack.export_stack().deployment or {}
    if deployment.get("pending_operations"):
        print("deploy: the state holds pending operations (a deploy running or interrupted): clearing them", flush=True)
        stack.refresh(clear_pending_creates=True, color="never")


def is_gone(host: str, pid: int) -> bool:
    """True when the lock's process ran on this machine and has exited (a zombie has exited too)."""
    if host != socket.gethostname():
        return False  # another machine's deploy: we cannot tell, so we leave its lock alone
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("deploy", sys.argv[1:] if argv is None else argv)
    target = automation.StackTarget(args.stack)
    return deploy(DeployPlan(target, automation.preflight, lambda deployed: verify.verify(deployed, "local://")))


if __name__ == "__main__":
    run_main(main)
