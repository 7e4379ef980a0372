"""`scripts/up [STACK]`: preflight, `pulumi up` (roles, grants, then both migration trees), summary."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from infra.outputs import StackOutput
from ops.commands import cli
from ops.deploy import driver, role_check
from ops.deploy.recovery import recovering, settle_interrupted_deploy
from ops.errors import ExitCode, UserError, run_main


def main(argv: list[str] | None = None) -> int:
    stack_name = cli.parse("up", sys.argv[1:] if argv is None else argv).stack
    stack = driver.open_stack(driver.StackTarget(stack_name, create=True))
    driver.preflight(stack)
    settle_interrupted_deploy(stack)
    result = recovering(stack, lambda: stack.up(**driver.deploy_options()))
    outputs = driver.outputs(stack)
    changes = {str(op): count for op, count in (result.summary.resource_changes or {}).items()}
    print_summary(stack_name, changes, outputs)
    failures = [(check, error) for check, error in role_check.run_checks(outputs[StackOutput.CONNECTION_URLS]) if error]
    if failures:
        details = "\n".join(f"  {check.description}: {error}" for check, error in failures)
        raise UserError(
            f"the deploy finished but the runtime roles do not work as they should:\n{details}", ExitCode.VERIFY_FAILED
        )
    return ExitCode.OK


def print_summary(stack_name: str, changes: Mapping[str, int], outputs: Mapping[str, Any]) -> None:
    changed = {op: count for op, count in changes.items() if op != "same"}
    print(f"\nstack {stack_name}: " + (", ".join(f"{n} {op}" for op, n in changed.items()) or "no changes"))
    print(f"server     {outputs[StackOutput.HOST]}:{outputs[StackOutput.PORT]}")
    for key, database in outputs[StackOutput.DATABASES].items():
        print(f"database   {database} ({key}) at revision {outputs[StackOutput.MIGRATION_REVISIONS][key]}")
    partitions = outputs.get(StackOutput.LOG_PARTITIONS) or {}
    for table, reach in (partitions.get("coverage") or {}).items():
        made = ", ".join(partitions["created"].get(table) or []) or "none"
        dropped = ", ".join(partitions["dropped"].get(table) or []) or "none"
        print(f"partitions {table} until {reach['covered_until']} (last maintenance made {made}; dropped {dropped})")
    handovers = set(outputs.get(StackOutput.OPEN_HANDOVERS) or [])
    for key, role in outputs[StackOutput.RUNTIME_ROLES].items():
        login = urlparse(outputs[StackOutput.CONNECTION_URLS][key]).username
        still = "; its own login open until its next rotation" if key in handovers else ""
        print(f"runtime    {role} ({key}) logs in as {login}{still}")
    for check in role_check.CHECKS:
        print(f"checked    {check.description}")


if __name__ == "__main__":
    run_main(main)
