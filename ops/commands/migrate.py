"""`scripts/migrate STACK [main|logs|all] [upgrade|current|history] [--sql]`: the trees outside `pulumi up`.

For the CD pipeline and for DBAs. The migrator's credentials and the database names come from the
stack's outputs, so the tree runs exactly where and as whom the migration step would.
"""

from __future__ import annotations

import sys

import psycopg
from alembic import command
from sqlalchemy.engine import make_url

from migrations import runner
from migrations.shared.heads import copy_location
from migrations.shared.tree import TREES
from model.names import DatabaseKey
from ops.commands import cli
from ops.deploy import driver
from ops.deploy.deployed_stack import deployed
from ops.errors import ExitCode, UserError, run_main


def targets(stack_name: str, which: str) -> list[runner.Target]:
    stack = driver.open_stack(driver.StackTarget(stack_name))
    outputs = deployed(stack_name, driver.outputs(stack))
    keys = list(TREES) if which == "all" else [which]
    return [
        runner.Target(
            TREES[key],
            make_url(outputs.migrator_url(DatabaseKey(key))).set(drivername="postgresql+psycopg"),
            outputs.database(DatabaseKey(key)),
            copy_location(key),
        )
        for key in keys
    ]


def check_reachable(target: runner.Target) -> None:
    """A stopped or unreachable server is exit 5 at once, not exit 7 ("a migration failed") after the runner's
    retries: nothing has run, and the fix is the server, not the tree."""
    url = target.url
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        psycopg.connect(conninfo, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        reason = str(error).strip().splitlines()[0].rpartition(": ")[2]  # "Connection refused", "password ..."
        raise UserError(
            f"cannot connect to PostgreSQL at {url.host}:{url.port} as the {target.tree.key} tree's migrator "
            f"({reason}): start it (`scripts/localpg start` for the embedded server) or correct the stack's host "
            "and port, then run again; nothing was changed",
            ExitCode.SERVER_UNREACHABLE,
        ) from None


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("migrate", sys.argv[1:] if argv is None else argv)
    for target in targets(args.stack, args.tree):
        label = f"{target.tree.key} ({target.expected_database})"
        if not args.sql:
            check_reachable(target)
        if args.sql:
            print(f"-- {label}\n{runner.upgrade_sql(target)}")
        elif args.action == "current":
            head = runner.head_revision(target.tree, target.script_location)
            print(f"{label}: {runner.current_revision(target) or 'base'} (head {head})")
        elif args.action == "history":
            print(f"{label}:")
            command.history(runner.alembic_config(target), indicate_current=True)
        else:
            try:
                result = runner.upgrade(target)
            except Exception as error:
                raise UserError(f"the {label} tree failed: {error}", ExitCode.MIGRATION_FAILED) from None
            applied = ", ".join(result.applied) or "nothing to apply"
            print(f"{label}: at {result.after} ({applied})")
    return ExitCode.OK


if __name__ == "__main__":
    run_main(main)
