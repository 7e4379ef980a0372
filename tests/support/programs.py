"""Inline Pulumi programs the engine tests and the benchmarks deploy, and a workspace to deploy them in."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

from pulumi import automation as auto

from infra.migration_step import MigrationRun, MigrationRunArgs
from infra.privileges import DatabaseKey
from migrations.shared.tree import TREES
from ops import stack as stack_driver
from tests.support.cluster import Deployment

ENGINE_PROJECT = "engine-test"


def declare_migration_steps(deployment: Deployment, logs_tree: Path | None = None) -> dict[DatabaseKey, MigrationRun]:
    """Both post-provision steps, on a deployment's databases, as its migrators."""
    steps = {}
    for key in DatabaseKey:
        migrator = deployment.names.migrator(key)
        steps[key] = MigrationRun(
            f"{key}-migrations",
            MigrationRunArgs(
                tree=TREES[key.value],
                host=deployment.server.connection.host,
                port=deployment.server.connection.port,
                sslmode="disable",
                database=deployment.databases[key],
                migrator=migrator,
                migrator_password=deployment.passwords[migrator],
                script_location=logs_tree if key is DatabaseKey.LOGS else None,
            ),
        )
    return steps


def migration_steps_program(deployment: Deployment, logs_tree: Path | None = None) -> stack_driver.Program:
    def program() -> None:
        declare_migration_steps(deployment, logs_tree)

    return program


def engine_project(folder: Path, environ: MutableMapping[str, str]) -> Path:
    """A project folder with a file backend of its own, and the passphrase a non-dev stack needs.

    `environ` is updated in place (os.environ, or a test's monkeypatched copy of it).
    """
    (folder / "Pulumi.yaml").write_text(f"name: {ENGINE_PROJECT}\nruntime: python\n")
    (folder / "state").mkdir(exist_ok=True)
    environ["PULUMI_BACKEND_URL"] = f"file://{folder / 'state'}"
    environ.setdefault("PULUMI_CONFIG_PASSPHRASE", "test-only")
    return folder


def open_engine_stack(folder: Path, program: stack_driver.Program, name: str = "test") -> auto.Stack:
    return stack_driver.open_stack(stack_driver.StackTarget(name, program, folder, ENGINE_PROJECT, create=True))
