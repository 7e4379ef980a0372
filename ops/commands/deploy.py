"""`scripts/deploy STACK`: the CD stage. Preflight, preview (the diff shown, the policy pack of
policy/ checking the model's rules), up (with the migrations), verify; stops at the first failure
with one line and the exit code of ops/errors.py. A program that breaks a rule stops at the
preview, so nothing is deployed.

Safe to run twice at once on one stack: the engine's stack lock lets one through and the other
fails with exit 6, naming the lock's holder. A deploy that was killed (a cancelled CI job) leaves
its lock and pending operations behind: the next deploy on the same machine removes that lock
once its process is gone, settles the pending creates (ops/deploy/recovery.py), and converges. A
lock from another machine (an ephemeral CI runner) is reported, not removed: clear it with
`scripts/pulumi cancel` once sure.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto

from ops.commands import cli, verify
from ops.deploy import driver
from ops.deploy.deployed_stack import DeployedStack
from ops.deploy.recovery import recovering, settle_interrupted_deploy
from ops.errors import ExitCode, UserError, run_main
from ops.paths import REPO_ROOT

POLICY_PACK = REPO_ROOT / "policy"


@dataclass(frozen=True)
class DeployPlan:
    target: driver.StackTarget
    preflight: Callable[[auto.Stack], object]
    verify: Callable[[DeployedStack], int]
    policy_packs: tuple[Path, ...] = ()
    """Checked at the preview: the project's program meets policy/ (an engine test's own program need not)."""


def check_policy_pack() -> None:
    """The pack's modules import in this virtualenv (the one the language host runs it in).

    A pack that cannot start fails the engine's preview too, but later, and a missing virtualenv
    leaves that preview waiting with no message at all.
    """
    loaded = subprocess.run(
        [sys.executable, "-c", "import policy.policies"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    if loaded.returncode != 0:
        reason = (loaded.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(
            f"the policy pack ({POLICY_PACK.name}/) does not load: {reason}. Run scripts/bootstrap (pulumi-policy "
            "is pinned in requirements.txt), or fix the error; nothing was deployed.",
            ExitCode.TOOLCHAIN,
        )


def deploy(plan: DeployPlan) -> int:
    name = plan.target.name
    stack = driver.open_stack(plan.target)
    plan.preflight(stack)
    if plan.policy_packs:
        check_policy_pack()
    settle_interrupted_deploy(stack)
    with driver.engine_errors(name):
        checked = (
            f", checked by {', '.join(f'{pack.name}/' for pack in plan.policy_packs)}" if plan.policy_packs else ""
        )
        print(f"deploy: preview of stack {name}{checked}", flush=True)
        packs = [str(pack) for pack in plan.policy_packs]
        preview = stack.preview(diff=True, policy_packs=packs, **driver.deploy_options())
    # With --diff the engine writes the diagnostics (what each migration step will run) to stderr.
    if preview.stderr.strip():
        driver.printer()(preview.stderr)
    changes = {str(op): n for op, n in preview.change_summary.items() if str(op) != "same"}
    print(f"deploy: {', '.join(f'{n} to {op}' for op, n in changes.items()) or 'no changes'}", flush=True)
    print(f"deploy: up of stack {name}", flush=True)
    recovering(stack, lambda: stack.up(**driver.deploy_options()))
    print(f"deploy: verifying stack {name}", flush=True)
    deployed = DeployedStack.from_stack_outputs(name, driver.outputs(stack))
    if plan.verify(deployed) != ExitCode.OK:
        raise UserError(
            f"stack {name} was deployed, but the server holds what the stack does not manage (see the report "
            "above): the deploy put back every grant and role attribute of its own, and never drops a table or "
            "a role it did not create. Each difference above names the SQL that removes it.",
            ExitCode.VERIFY_FAILED,
        )
    return ExitCode.OK


def cd_stage(target: driver.StackTarget) -> DeployPlan:
    """The CD stage's plan: the full preflight, the policy pack at the preview, and verification on this machine."""
    return DeployPlan(
        target, driver.preflight, lambda deployed: verify.verify(deployed, "local://"), policy_packs=(POLICY_PACK,)
    )


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("deploy", sys.argv[1:] if argv is None else argv)
    return deploy(cd_stage(driver.StackTarget(args.stack)))


if __name__ == "__main__":
    run_main(main)
