"""The migration step, the post-provision step of every deploy: a tree to head as its migrator.

A Python dynamic provider, so it runs in the engine with no plugin to download. The resource
depends on the database's default privileges: tables are created only once the owner's default
privileges exist, so they reach the runtime roles. It is updated whenever the
tree's head changes, its `applied` output lists what the `up` applied, an error fails the `up`
with the database's message, and deleting it (destroy) never downgrades: the data stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from infra.server_login import ServerLogin
from migrations.shared.heads import declared_head, default_location
from migrations.shared.tree import Tree

if TYPE_CHECKING:
    from migrations import runner

# Inputs whose change means the tree must be run again (the password is not one: rotating it
# changes nothing in the schema).
RERUN_WHEN_CHANGED = ("tree", "head", "host", "port", "database", "user", "script_location")


class MigrationFailedError(Exception):
    pass


def migrator_target(props: dict[str, Any]) -> runner.Target:
    """Where and as whom a step connects: the migrator on its database, as the step's inputs say."""
    # Alembic and SQLAlchemy are imported here, in the engine's dynamic-provider process, when a run
    # is due: the program process (every `pulumi up`, no-op or not) never loads them.
    from sqlalchemy.engine import URL

    from migrations import runner

    url = URL.create(
        "postgresql+psycopg",
        username=props["user"],
        password=props["password"],
        host=props["host"],
        port=int(props["port"]),
        database=props["database"],
        query={"sslmode": props["sslmode"], **(props.get("tls") or {})},
    )
    script_location = Path(props["script_location"]) if props.get("script_location") else None
    return runner.Target(runner.tree_named(props["tree"]), url, props["database"], script_location)


def _upgrade(props: dict[str, Any]) -> dict[str, Any]:
    from migrations import runner

    target = migrator_target(props)
    try:
        result = runner.upgrade(target)
    except Exception as error:  # the database's own message is what the operator needs
        raise MigrationFailedError(
            f"the {props['tree']} tree failed on database {props['database']!r}; the database stays at "
            f"revision {revision_after_failure(target)}: {error}"
        ) from None
    outputs = {key: value for key, value in props.items() if key != "password"}
    tables = runner.data_tables(target)
    return {**outputs, "revision": result.after, "applied": list(result.applied), "tables": tables}


def revision_after_failure(target: runner.Target) -> str:
    """Where the failed run left the database; a server that went away cannot say, and that is said."""
    from sqlalchemy.exc import OperationalError

    from migrations import runner

    try:
        return runner.current_revision(target) or "base"
    except OperationalError:
        return "unknown (the server does not answer; each revision is its own transaction, so no half)"


class _MigrationProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"{props['tree']}@{props['database']}", outs=_upgrade(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in RERUN_WHEN_CHANGED if olds.get(key) != news.get(key)]
        # A state written before `tables` existed runs once more to learn them (a run at head changes nothing).
        return DiffResult(changes=bool(changed) or "tables" not in olds, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_upgrade(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Destroying the stack forgets the step; it never downgrades a database."""


@dataclass(frozen=True)
class MigrationStepArgs:
    tree: Tree
    """The Alembic tree to run: main or logs."""
    login: ServerLogin
    """The tree's migrator on the database the tree belongs to."""
    script_location: Path | None = None
    """Run a copy of the tree instead (tests, benchmarks); None for the tree in migrations/."""


class MigrationStep(pulumi.dynamic.Resource):
    """The tree at head on its database: `revision` the head reached, `applied` what this run applied."""

    revision: pulumi.Output[str]
    applied: pulumi.Output[list[str]]
    tables: pulumi.Output[list[str]]
    """The database's tables after the run (its version table left out), as the catalog lists them."""

    def __init__(self, args: MigrationStepArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Stacks deployed before the step had one name know it as `<tree>-migrations`: the alias
        # moves their state to the new name, and the engine runs nothing for it.
        former_name = pulumi.ResourceOptions(aliases=[pulumi.Alias(name=f"{args.tree.key}-migrations")])
        props = {
            "tree": args.tree.key,
            "head": declared_head(args.script_location or default_location(args.tree.key)),
            "script_location": str(args.script_location) if args.script_location else None,
            **args.login.props(),
            "revision": None,
            "applied": None,
            "tables": None,
        }
        super().__init__(
            _MigrationProvider(), step_name(args.tree.key), props, pulumi.ResourceOptions.merge(opts, former_name)
        )


def step_name(tree_key: str) -> str:
    """The step's resource name in the stack: main-migration-step, logs-migration-step."""
    return f"{tree_key}-migration-step"
