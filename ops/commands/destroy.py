"""`scripts/destroy STACK --yes`: remove what the stack created, even after a failed or killed deploy.

Plain `pulumi destroy` stops at what a killed deploy leaves (its lock, its pending creates, and
the roles and databases it made but the state never recorded). This command settles those first,
as the next deploy would (ops/deploy/recovery.py: the stale lock removed, the lost roles and databases
adopted by name), then destroys, then looks at the server: every database and role of the stack's
names that still exists is named with the SQL that removes it, and the exit code is 3. Nothing is
dropped outside the engine's destroy.
"""

from __future__ import annotations

import sys

from psycopg import sql

from infra.settings import NAMESPACE, Settings
from model.names import PUBLIC
from model.privileges import grantees, read_only_role
from ops.commands import cli
from ops.deploy import driver
from ops.deploy.recovery import recovering, settle_interrupted_deploy
from ops.errors import ExitCode, UserError, run_main


def destroy(target: driver.StackTarget) -> int:
    stack = driver.open_stack(target)
    settings = driver.preflight(stack)
    if settings.protect_databases:
        raise UserError(
            f"stack {stack.name} protects its databases and owner roles ({NAMESPACE}:allowDatabaseDeletion is "
            "false), so the engine would refuse to destroy them: nothing was changed. To delete them with every "
            f"row, set {NAMESPACE}:allowDatabaseDeletion to true, run scripts/deploy {stack.name}, then destroy.",
            ExitCode.BAD_INPUT,
        )
    settle_interrupted_deploy(stack)
    print(f"destroy: stack {stack.name}", flush=True)
    recovering(stack, lambda: stack.destroy(**driver.engine_options()))
    left = leftovers(settings, driver.admin_password_for_preflight(stack, settings))
    if left:
        for line in left:
            print(f"destroy: left on the server: {line}", flush=True)
        raise UserError(
            f"stack {stack.name} is destroyed, but objects of its names remain ({len(left)}, listed above, each "
            "with the SQL that removes it): the stack did not hold them.",
            ExitCode.VERIFY_FAILED,
        )
    print(f"destroy: stack {stack.name} is gone; no database or role of its names remains", flush=True)
    return ExitCode.OK


def leftovers(settings: Settings, admin_password: str) -> list[str]:
    """Each database and role of the stack's names (or its role prefix) still on the server, with its DROP."""
    read_only = tuple(read_only_role(role.name, role.database) for role in settings.read_only_roles)
    roles = [grantee.name for grantee in grantees(settings.role_names, read_only) if grantee.name != PUBLIC]
    with driver.connect_admin(settings, admin_password) as admin:
        databases = admin.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s) ORDER BY 1",
            (list(settings.database_names.values()),),
        ).fetchall()
        found_roles = admin.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) OR starts_with(rolname, %s) ORDER BY 1",
            (roles, settings.role_names.prefix + "_"),
        ).fetchall()
        drops = [sql.SQL("DROP DATABASE {};").format(sql.Identifier(name)).as_string(admin) for (name,) in databases]
        drops += [sql.SQL("DROP ROLE {};").format(sql.Identifier(name)).as_string(admin) for (name,) in found_roles]
    names = [f"database {name}" for (name,) in databases] + [f"role {name}" for (name,) in found_roles]
    return [f"{name}: {drop}" for name, drop in zip(names, drops, strict=True)]


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("destroy", sys.argv[1:] if argv is None else argv)
    if not args.yes:
        raise UserError(
            f"destroy deletes the databases of stack {args.stack} with every row in them: run it again with --yes "
            "to go ahead. Nothing was changed.",
            ExitCode.BAD_INPUT,
        )
    return destroy(driver.StackTarget(args.stack))


if __name__ == "__main__":
    run_main(main)
