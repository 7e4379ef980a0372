"""The rotation numbers a deploy may take: each pair's number as last deployed, or one more.

The stack's outputs record the number each pair of logins was deployed with (output
password_rotations). One more is a rotation: the login not in use gets a new password and is handed
out, the login in use keeps its own (model/rotation.py). Any other number renews the login in use
too: a lower one goes back to the other login and renews this one, two more renew both at once.
Either fails every client of that login, so the preflight refuses it, with nothing changed.

A number one above the deployed one is a rotation not deployed yet: `scripts/rotate` killed after
it wrote the stack file, or a person who raised it and has not deployed. A deploy finishes it, and
`scripts/rotate` deploys it rather than raising it once more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.outputs import StackOutput
from infra.settings import NAMESPACE, Settings
from model.privileges import RUNTIME_ROLES
from model.rotation import handed_out, is_deployable, member_name


def rotatable(settings: Settings) -> dict[str, str]:
    """Role key -> role name, for every role with two logins: the runtime roles and the read-only roles."""
    roles = {role.key: role.name(settings.role_names) for role in RUNTIME_ROLES}
    return roles | {role.name: role.name for role in settings.read_only_roles}


def deployed_rotations(outputs: Mapping[str, Any]) -> dict[str, int]:
    """Role key -> rotation number, as last deployed; empty before a first deploy, or one by an older program."""
    recorded = outputs.get(StackOutput.PASSWORD_ROTATIONS) or {}
    return {str(key): int(number) for key, number in recorded.items()}


def written_rotations(settings: Settings) -> dict[str, int]:
    """Role key -> the rotation number the stack file gives it (1 where it gives none)."""
    return {key: settings.login(key).password_rotation for key in rotatable(settings)}


def pending_rotations(settings: Settings, deployed: Mapping[str, int]) -> dict[str, int]:
    """The roles whose stack file number is one above the deployed one: a rotation written, not yet deployed."""
    return {
        key: number for key, number in written_rotations(settings).items() if deployed.get(key, number) + 1 == number
    }


def rotation_problems(settings: Settings, deployed: Mapping[str, int]) -> list[str]:
    """One message per role whose stack file number a deploy may not take from the deployed one."""
    names = rotatable(settings)
    return [
        _problem(settings, key, names[key], deployed[key], number)
        for key, number in written_rotations(settings).items()
        if key in deployed and not is_deployable(deployed[key], number)
    ]


def _problem(settings: Settings, key: str, role: str, deployed: int, written: int) -> str:
    in_use = member_name(role, handed_out(deployed))
    where = f"Pulumi.{settings.stack}.yaml: {NAMESPACE}:passwordRotations gives {key} {written}"
    setter = f"`pulumi config set --path '{NAMESPACE}:passwordRotations.{key}' {{}} --stack {settings.stack}`"
    if written < deployed:
        return (
            f"{where}, lower than {deployed}, the number stack {settings.stack} was last deployed with: the deploy "
            f"would give a new password to {in_use}, the login the stack hands out now, and every client of it "
            f"would fail to log in. Fix: set it back to {deployed} with {setter.format(deployed)} (or to "
            f"{deployed + 1} to rotate). Nothing was changed."
        )
    return (
        f"{where}, more than one above {deployed}, the number stack {settings.stack} was last deployed with: a "
        f"rotation raises it by one, and skipping would give new passwords to both logins of {role} at once, "
        f"{in_use} (handed out now) included, so every client of it would fail to log in. Fix: set it to "
        f"{deployed + 1} with {setter.format(deployed + 1)} and deploy, then rotate again once clients have re-read "
        "the outputs. Nothing was changed."
    )
