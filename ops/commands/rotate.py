"""`scripts/rotate STACK [LOGIN...]`: new passwords for a stack's logins, with no failed login.

Each runtime role and read-only role logs in through two members (model/rotation.py). Raising the
role's number in the stack file's passwordRotations gives the member not in use a new password and
makes the stack's outputs hand it out; the other member keeps its password through this rotation.
This command takes the stack's turn, raises the numbers, then deploys as scripts/deploy does. The
server is checked before the stack file is touched, so a rotation against a server that cannot be
reached, or while another deploy holds the stack, changes nothing.

A rotation whose number is in the stack file but not deployed (this command killed after it wrote
the file, or a deploy that failed after) is pending: run again, this command deploys that number
instead of raising it once more, which would renew the login the outputs hand out (and the
preflight refuses a number more than one above the deployed one: ops/deploy/rotation_check.py).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pulumi import automation as auto

from infra.settings import NAMESPACE, Settings
from model.rotation import handed_out, member_name
from ops.commands import cli
from ops.commands.deploy import cd_stage, deploy
from ops.deploy import driver, recovery, state_backend
from ops.deploy.rotation_check import deployed_rotations, pending_rotations, rotatable
from ops.errors import ExitCode, UserError, run_main


def chosen(settings: Settings, named: list[str]) -> dict[str, str]:
    roles = rotatable(settings)
    unknown = [key for key in named if key not in roles]
    if unknown:
        raise UserError(
            f"{', '.join(unknown)}: not a login of stack {settings.stack} that rotates; name any of "
            f"{', '.join(roles)} (or none, for all of them). Nothing was changed.",
            ExitCode.BAD_INPUT,
        )
    return {key: roles[key] for key in named} if named else roles


def raise_rotations(stack: auto.Stack, settings: Settings, roles: dict[str, str], pending: dict[str, int]) -> None:
    """Raise each role's number by one, but for a pending rotation: that one is deployed as written."""
    names = rotatable(settings)
    for key, rotation in pending.items():
        hands = member_name(names[key], handed_out(rotation))
        print(
            f"rotate: {key} at rotation {rotation} is written but not deployed: deploying it hands out {hands}",
            flush=True,
        )
    raised = {key: settings.login(key).password_rotation + 1 for key in roles if key not in pending}
    write_rotations(stack, raised)
    for key, rotation in raised.items():
        print(
            f"rotate: {key} to rotation {rotation}: hands out {member_name(roles[key], handed_out(rotation))}",
            flush=True,
        )


def write_rotations(stack: auto.Stack, raised: dict[str, int]) -> None:
    """Every raised number into the stack file at once, and atomically: `pulumi config set` rewrites the
    file in place (truncated first), so a rotation killed at that moment would leave it empty, the
    stack's config and its secrets' salt lost. The CLI writes a copy; the copy then replaces the file."""
    if not raised:
        return
    stack_file = Path(stack.workspace.work_dir) / f"Pulumi.{stack.name}.yaml"
    copy = stack_file.with_name(f".{stack_file.stem}.rotate-{os.getpid()}.yaml")  # the CLI reads by suffix
    shutil.copy2(stack_file, copy)
    try:
        values = [f"{NAMESPACE}:passwordRotations.{key}={rotation}" for key, rotation in raised.items()]
        pairs = [argument for value in values for argument in ("--plaintext", value)]
        written = recovery.run_cli(stack, "config", "set-all", "--path", "--config-file", str(copy), *pairs)
        if written.returncode != 0:
            raise UserError(
                f"the stack file {stack_file.name} could not be written ({written.stderr.strip()}): "
                "nothing was changed; run scripts/rotate again.",
                ExitCode.DEPLOY_FAILED,
            )
        os.replace(copy, stack_file)
    finally:
        copy.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("rotate", sys.argv[1:] if argv is None else argv)
    target = driver.StackTarget(args.stack)
    stack = driver.open_stack(target)
    # The stack's turn before anything is read or written: another deploy may be changing the outputs.
    backend = state_backend.StateBackend(stack.workspace.env_vars.get("PULUMI_BACKEND_URL", ""))
    state_backend.take_turn(backend, stack.name, Path(sys.argv[0]).stem)
    settings = driver.preflight(stack)  # the config, the numbers and the server: else nothing changes
    roles = chosen(settings, list(args.logins))
    with driver.engine_errors(stack.name):
        pending = pending_rotations(settings, deployed_rotations(driver.outputs(stack)))
    raise_rotations(stack, settings, roles, pending)
    return deploy(cd_stage(target))


if __name__ == "__main__":
    run_main(main)
