"""`scripts/maintain STACK`: the log tables' partition maintenance alone, as a schedule or cron runs it.

Every deploy runs the same maintenance after the logs tree; this runs it between deploys, so that
partitions are made ahead and dropped past retention even when nothing is deployed for weeks. The
retention and premake window are the stack file's (logRetention, logPremake), checked as a deploy
checks them; the credentials and database are the deployed stack's outputs. Two runs at once take
turns on the logs tree's run lock: the second says it waits, then finds nothing left to do.
"""

from __future__ import annotations

import sys

from sqlalchemy.engine import make_url

from migrations import maintenance, runner
from migrations.shared.tree import LOGS
from model.names import DatabaseKey
from ops.commands import cli
from ops.deploy import driver
from ops.deploy.deployed_stack import deployed
from ops.errors import ExitCode, UserError, run_main


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("maintain", sys.argv[1:] if argv is None else argv)
    stack = driver.open_stack(driver.StackTarget(args.stack))
    settings = driver.preflight(stack)
    outputs = deployed(args.stack, driver.outputs(stack))
    url = make_url(outputs.migrator_url(DatabaseKey.LOGS)).set(drivername="postgresql+psycopg")
    target = runner.Target(LOGS, url, outputs.database(DatabaseKey.LOGS))
    try:
        report = maintenance.maintain(target, settings.log_lifecycle)
    except maintenance.NotPartitionedError as error:
        raise UserError(str(error), ExitCode.VERIFY_FAILED) from None
    for line in report.lines():
        print(line)
    return ExitCode.OK


if __name__ == "__main__":
    run_main(main)
