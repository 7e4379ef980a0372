"""`scripts/adopt STACK [--plan | --apply]`: bring an existing two-database deployment under the stack.

--plan (the default) reads the server, prints the plan and changes nothing: exit 0 when the server
is adopted already, 3 when changes are pending, 2 when the adoption is refused (a table that matches
no revision). --apply carries the plan out, then deploys with the databases imported.
"""

from __future__ import annotations

import os
import sys

from pulumi import automation as auto

from infra.settings import ADOPT_EXISTING_ENV_VAR
from model.names import DatabaseKey
from ops.adoption.apply import apply_plan
from ops.adoption.inspect import StackView, build_plan
from ops.adoption.plan import Plan
from ops.adoption.server_access import AdminAccess
from ops.commands import cli
from ops.deploy import driver
from ops.deploy.deployed_stack import is_deployed
from ops.deploy.recovery import recovering, settle_interrupted_deploy
from ops.errors import ExitCode, UserError, run_main
from ops.localpg import embedded

DATABASE_TYPE = "postgresql:index/database:Database"


def databases_in_state(stack: auto.Stack) -> set[str]:
    """The database names the stack's state holds (as the provider's ids)."""
    resources = (stack.export_stack().deployment or {}).get("resources") or []
    return {resource.get("id", "") for resource in resources if resource.get("type") == DATABASE_TYPE}


def plan_for(stack: auto.Stack) -> tuple[Plan, AdminAccess]:
    settings = driver.preflight(stack)
    server = settings.server
    admin = AdminAccess(
        server.host,
        server.port,
        server.admin_user,
        driver.admin_password_for_preflight(stack, settings),
        {"sslmode": server.sslmode, **server.tls.libpq_parameters()},
    )
    local = embedded.start()
    scratch = AdminAccess(local.host, local.port, local.user, local.password)
    in_state = databases_in_state(stack)
    names = dict(settings.database_names)
    view = StackView(
        name=stack.name,
        database_names=names,
        role_names=settings.role_names,
        legacy_roles=settings.legacy_roles,
        in_state=lambda key: names[key] in in_state,
        deployed=is_deployed(driver.outputs(stack)),
    )
    return build_plan(view, admin, scratch), admin


def deploy(stack: auto.Stack, existing: list[DatabaseKey]) -> None:
    settle_interrupted_deploy(stack)
    # The engine, language host and program inherit it: the program imports these databases.
    os.environ[ADOPT_EXISTING_ENV_VAR] = ",".join(key.value for key in existing)
    try:
        recovering(stack, lambda: stack.up(**driver.deploy_options()))
    finally:
        del os.environ[ADOPT_EXISTING_ENV_VAR]


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("adopt", sys.argv[1:] if argv is None else argv)
    stack = driver.open_stack(driver.StackTarget(args.stack, create=True))
    plan, admin = plan_for(stack)
    print(plan.render(), flush=True)
    if plan.refusals:
        raise UserError("the adoption is refused (see REFUSED above); nothing was changed.", ExitCode.BAD_INPUT)
    if not args.apply:
        return ExitCode.VERIFY_FAILED if plan.pending else ExitCode.OK
    if not plan.pending:
        return ExitCode.OK
    reports = apply_plan(plan, admin, lambda existing: deploy(stack, existing), lambda line: print(line, flush=True))
    for report in reports:
        print(
            f"moved {report.rows:,} rows in {report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s); "
            f"final lock waited {report.lock_wait_s:.3f} s, held {report.lock_held_s:.3f} s"
        )
    after, _ = plan_for(stack)
    if after.pending:
        print(after.render())
        raise UserError(
            "the adoption finished but the plan above still has changes: run --apply again.", ExitCode.VERIFY_FAILED
        )
    print(f"\nstack {stack.name}: adopted; check it with `scripts/verify {stack.name}`")
    return ExitCode.OK


if __name__ == "__main__":
    run_main(main)
