"""`scripts/maintain STACK`: the log tables' partition maintenance alone, as a schedule or cron runs it.

Every deploy runs the same maintenance after the logs tree; this runs it between deploys, so that
partitions are made ahead and dropped past retention even when nothing is deployed for weeks. The
retention and premake window are the stack file's (logRetention, logPremake), checked as a deploy
checks them; the credentials and database are the deployed stack's outputs. Two runs at once take
turns on the logs tree's run lock: the second says it waits, then finds nothing left to do.
"""

from __future__ import annotations

import sys

import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from migrations import maintenance, runner
from migrations.shared.tree import LOGS
from model.log_lifecycle import LogLifecycle
from model.names import DatabaseKey
from ops.commands import cli
from ops.deploy import driver
from ops.deploy.deployed_stack import deployed
from ops.errors import ExitCode, UserError, run_main

# The SQLSTATEs of a server that ends the session or will not take one (class 08, 57P01-57P03). A
# connection lost without an answer has none (libpq: "server closed the connection unexpectedly").
SERVER_GONE_STATES = ("57P01", "57P02", "57P03")


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("maintain", sys.argv[1:] if argv is None else argv)
    target, lifecycle = deployed_logs(args.stack)
    for line in run(args.stack, target, lifecycle).lines():
        print(line)
    return ExitCode.OK


def deployed_logs(stack_name: str) -> tuple[runner.Target, LogLifecycle]:
    """The logs database as the deployed stack names it (its migrator), and the stack file's lifecycle."""
    stack = driver.open_stack(driver.StackTarget(stack_name))
    settings = driver.preflight(stack)
    outputs = deployed(stack_name, driver.outputs(stack))
    url = make_url(outputs.migrator_url(DatabaseKey.LOGS)).set(drivername="postgresql+psycopg")
    return runner.Target(LOGS, url, outputs.database(DatabaseKey.LOGS)), settings.log_lifecycle


def run(stack_name: str, target: runner.Target, lifecycle: LogLifecycle) -> maintenance.MaintenanceReport:
    """The maintenance, its failures the operator can act on turned into one line and an exit code."""
    try:
        return maintenance.maintain(target, lifecycle)
    except maintenance.NotPartitionedError as error:
        raise UserError(str(error), ExitCode.VERIFY_FAILED) from None
    except OperationalError as error:
        if not server_went_away(error):
            raise
        # libpq's first line names what happened; the URL, and so the password, is never in it.
        reason = str(error.orig).strip().splitlines()[0]
        raise UserError(
            f"PostgreSQL went away during the log partition maintenance of stack {stack_name!r} at "
            f"{target.url.host}:{target.url.port} ({reason}): start the server (`scripts/localpg start` for the "
            f"embedded one) or wait for the failover, then run scripts/maintain {stack_name} again; it finishes "
            "what this run left",
            ExitCode.SERVER_UNREACHABLE,
        ) from None


def server_went_away(error: OperationalError) -> bool:
    """Whether the server ended the session or refused one, not a statement of ours that failed (a lock
    timeout, a statement timeout: OperationalErrors too, whose traceback is the bug report)."""
    original = error.orig
    if not isinstance(original, psycopg.OperationalError):
        return False
    state = original.sqlstate
    return state is None or state.startswith("08") or state in SERVER_GONE_STATES


if __name__ == "__main__":
    run_main(main)
