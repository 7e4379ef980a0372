"""`scripts/rotate STACK [LOGIN...]`: new passwords for a stack's logins, with no failed login.

Each runtime role and read-only role logs in through two members (model/rotation.py). Raising the
role's number in the stack file's passwordRotations gives the member not in use a new password and
makes the stack's outputs hand it out; the other member keeps its password through this rotation.
This command raises the numbers, then deploys as scripts/deploy does. The server is checked before
the stack file is touched, so a rotation against a server that cannot be reached changes nothing;
a deploy that fails after the numbers were raised is finished by the next `scripts/deploy STACK`
(running this again would rotate once more).
"""

from __future__ import annotations

import sys

from pulumi import automation as auto

from infra.settings import NAMESPACE, Settings
from model.privileges import RUNTIME_ROLES
from model.rotation import handed_out, member_name
from ops.commands import cli
from ops.commands.deploy import cd_stage, deploy
from ops.deploy import driver
from ops.errors import ExitCode, UserError, run_main


def rotatable(settings: Settings) -> dict[str, str]:
    """Role key -> role name, for every role with two logins: the runtime roles and the read-only roles."""
    roles = {role.key: role.name(settings.role_names) for role in RUNTIME_ROLES}
    return roles | {role.name: role.name for role in settings.read_only_roles}


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


def raise_rotations(stack: auto.Stack, settings: Settings, roles: dict[str, str]) -> None:
    for key, name in roles.items():
        rotation = settings.login(key).password_rotation + 1
        stack.set_config(f"{NAMESPACE}:passwordRotations.{key}", auto.ConfigValue(str(rotation)), path=True)
        print(f"rotate: {key} to rotation {rotation}: hands out {member_name(name, handed_out(rotation))}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("rotate", sys.argv[1:] if argv is None else argv)
    target = driver.StackTarget(args.stack)
    stack = driver.open_stack(target)
    settings = driver.preflight(stack)  # the config is valid and the server answers: else nothing changes
    raise_rotations(stack, settings, chosen(settings, list(args.logins)))
    return deploy(cd_stage(target))


if __name__ == "__main__":
    run_main(main)
