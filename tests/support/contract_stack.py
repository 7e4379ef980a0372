"""A stack with the real program's output contract, without the postgresql provider.

Its resources are the post-provision steps (both trees, then the log partitions' maintenance), on
databases provisioned from the model as plain SQL; its outputs are those infra/program.py exports,
so scripts/deploy and scripts/verify run against it end to end. Run as
`python -m tests.support.contract_stack STACK` with the deployment's description in
HEADHUNTER_DEPLOYMENT (passwords never go through arguments).
"""

from __future__ import annotations

import sys

import pulumi
from sqlalchemy.engine import make_url

from infra.log_maintenance import LogMaintenance, LogMaintenanceArgs
from infra.migration_step import MigrationRun, MigrationRunArgs
from infra.outputs import StackOutput
from migrations.shared.tree import TREES
from model.names import DatabaseKey
from model.privileges import new_table_grants
from ops.commands import deploy, verify
from ops.deploy import driver
from ops.deploy.deployed_stack import ENV_VAR, DeployedStack, from_environment
from ops.errors import UserError, run_main


def contract_program(described: DeployedStack) -> driver.Program:
    def program() -> None:
        runs = {}
        for key in DatabaseKey:
            url = make_url(described.migrator_url(key))
            runs[key] = MigrationRun(
                f"{key}-migrations",
                MigrationRunArgs(
                    tree=TREES[key.value],
                    host=described.host,
                    port=described.port,
                    sslmode=described.sslmode,
                    database=described.database(key),
                    migrator=str(url.username),
                    migrator_password=pulumi.Output.secret(str(url.password)),
                ),
            )
        pulumi.export(StackOutput.HOST, described.host)
        pulumi.export(StackOutput.PORT, described.port)
        pulumi.export(StackOutput.SSLMODE, described.sslmode)
        pulumi.export(StackOutput.DATABASES, described.databases)
        pulumi.export(StackOutput.ROLE_PREFIX, described.role_prefix)
        pulumi.export(StackOutput.READ_ONLY_ROLES, described.read_only_roles)
        pulumi.export(StackOutput.CONNECTION_LIMITS, described.connection_limits)
        logs_url = make_url(described.migrator_url(DatabaseKey.LOGS))
        partitions = LogMaintenance(
            "logs-partitions",
            LogMaintenanceArgs(
                host=described.host,
                port=described.port,
                sslmode=described.sslmode,
                tls={},
                database=described.database(DatabaseKey.LOGS),
                migrator=str(logs_url.username),
                migrator_password=pulumi.Output.secret(str(logs_url.password)),
                lifecycle=described.lifecycle(),
                revision=runs[DatabaseKey.LOGS].revision,
                grants=new_table_grants(described.names, DatabaseKey.LOGS, described.extra_roles()),
            ),
            opts=pulumi.ResourceOptions(depends_on=[runs[DatabaseKey.LOGS]]),
        )
        pulumi.export(StackOutput.MIGRATION_REVISIONS, {key.value: run.revision for key, run in runs.items()})
        pulumi.export(StackOutput.CONNECTION_URLS, pulumi.Output.secret(described.connection_urls))
        pulumi.export(StackOutput.LOG_PARTITIONS, {"created": partitions.created, "dropped": partitions.dropped})
        pulumi.export(StackOutput.LOG_LIFECYCLE, described.log_lifecycle)

    return program


def main() -> int:
    described = from_environment()
    if described is None:
        raise UserError(f"set {ENV_VAR} to the deployment's description")
    target = driver.StackTarget(sys.argv[1], contract_program(described), project_name="contract-stack", create=True)
    plan = deploy.DeployPlan(
        target, preflight=lambda _stack: None, verify=lambda deployed: verify.verify(deployed, "local://")
    )
    return deploy.deploy(plan)


if __name__ == "__main__":
    run_main(main)
