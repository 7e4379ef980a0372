"""`scripts/verify STACK`: check a deployed stack against the model; report, JUnit XML and JSON.

Runs the pytest-testinfra suite in tests/infra with the stack's description in its environment.
Exits 0 when everything is as expected, 3 when anything differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from infra.outputs import StackOutput
from ops import paths
from ops.commands import cli
from ops.deploy import driver
from ops.deploy.deployed_stack import ENV_VAR, REPORT_ENV_VAR, DeployedStack, deployed
from ops.errors import ExitCode, UserError, run_main


def describe(stack_name: str) -> DeployedStack:
    stack = driver.open_stack(driver.StackTarget(stack_name))
    return deployed(stack_name, driver.outputs(stack))


def from_outputs_json(stack_name: str, text: str) -> DeployedStack:
    """The stack's outputs as `pulumi stack output --json --show-secrets` prints them."""
    try:
        outputs = json.loads(text)
        if outputs.get(StackOutput.CONNECTION_URLS) in (None, "[secret]"):
            raise KeyError("connection_urls")
        return DeployedStack.from_stack_outputs(stack_name, outputs)
    except (ValueError, KeyError, AttributeError, TypeError) as error:
        raise UserError(
            f"standard input is not a deployed stack's outputs ({type(error).__name__}: {error}): pipe "
            "`pulumi stack output --json --show-secrets --stack STACK` into scripts/verify --description-stdin."
        ) from None


def verify(deployed: DeployedStack, hosts: str) -> int:
    reports = paths.REPO_ROOT / "reports"
    reports.mkdir(exist_ok=True)
    env = dict(
        os.environ, **{ENV_VAR: deployed.to_json(), REPORT_ENV_VAR: str(reports / f"verify-{deployed.stack}.json")}
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/infra",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:pytest_alembic",  # as in pytest.ini, whose addopts this run replaces: its collector fails on pytest 9
        "-q",
        "--no-header",
        "--tb=no",
        "-o",
        "addopts=",
        f"--hosts={hosts}",
        f"--junit-xml={reports / f'verify-{deployed.stack}.xml'}",
    ]
    result = subprocess.run(command, cwd=paths.REPO_ROOT, env=env)
    if result.returncode == 0:
        return ExitCode.OK
    if result.returncode == 1:
        return ExitCode.VERIFY_FAILED
    if result.returncode == pytest.ExitCode.USAGE_ERROR:
        raise UserError("the verification could not start: see the message above.", ExitCode.BAD_INPUT)
    raise UserError(f"the verification suite could not run (pytest exit {result.returncode}).", ExitCode.UNEXPECTED)


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("verify", sys.argv[1:] if argv is None else argv)
    if args.description_stdin:
        deployed = from_outputs_json(args.stack or "stdin", sys.stdin.read())
    elif args.stack:
        deployed = describe(args.stack)
    else:
        raise UserError("scripts/verify needs a STACK, or --description-stdin with the stack's outputs")
    return verify(deployed, args.hosts)


if __name__ == "__main__":
    run_main(main)
