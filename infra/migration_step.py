"""The migration step, the post-provision step of every deploy: a tree to its target as its migrator.

A Python dynamic provider, so it runs in the engine with no plugin to download. The resource
depends on the database's default privileges: tables are created only once the owner's default
privileges exist, so they reach the runtime roles. Its `applied` output lists what the `up`
applied, an error fails the `up` with the database's message, and deleting it (destroy) never
downgrades: the data stays.

Every preview reads the database's own revision (infra/migration_preview.py): the step is updated
when the tree's head changes and whenever the database is behind the plan's target, whatever the
state says (a database restored from an older backup, or set back by hand). What the step says at
the preview goes to its process's stderr, which the engine shows as the stack's diagnostics.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult
from pulumi.runtime import rpc

from infra.migration_preview import NO_LOGIN_YET, NOT_ANSWERING_YET, DatabaseRevision, StepPreview, preview_step
from infra.server_login import ServerLogin, connect
from infra.step_errors import MarkedStepError
from migrations.shared.heads import declared_head, default_location
from migrations.shared.tree import TREES, Tree

if TYPE_CHECKING:
    from migrations import runner

# Inputs whose change means the tree must be run again (the password is not one: rotating it
# changes nothing in the schema).
RERUN_WHEN_CHANGED = ("tree", "head", "host", "port", "database", "user", "script_location")
# The inputs a preview connects with; any of them may still be unknown then (a first deploy, a new password).
CONNECTION_KEYS = ("host", "port", "database", "user", "password")
# The server's answer when the step's database is not there yet (made by this deploy). libpq gives a
# failed connection no SQLSTATE (3D000 is the server's), so the message is what tells it apart.
DATABASE_DOES_NOT_EXIST = re.compile(r'database "[^"]*" does not exist')
# The server's answer when the migrator's role is not there yet: with password authentication PostgreSQL
# says the same for a missing role as for a wrong password; with trust or peer it names the role.
LOGIN_REFUSED = re.compile(r'password authentication failed for user|role "[^"]*" does not exist')


# How a preview that could not read the revision reads (the exit code comes from its marker, infra/step_errors.py).
REVISION_UNREADABLE = "migration step cannot read the revision of database"


class MigrationFailedError(MarkedStepError):
    """A revision failed as it ran; the database stays at the revision before it."""

    kind = "migration-failed"


class RevisionUnreadableError(MarkedStepError):
    """The preview could not read the database's revision: what it used is named, never hidden."""

    kind = "revision-unreadable"


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


def script_location_of(props: dict[str, Any]) -> Path:
    return Path(props["script_location"]) if props.get("script_location") else default_location(props["tree"])


def database_revision(props: dict[str, Any], state_revision: str | None, creating: bool) -> DatabaseRevision:
    """The database's revision as its migrator reads it; the state's when the login is not known yet.

    `creating`: the step has no state yet, so this deploy makes its database and migrator's role (a new
    stack); a login the server refuses then means nothing has run yet. A step that exists has a login that
    worked, so there a refused login is an error that names it.
    """
    unknown = [key for key in CONNECTION_KEYS if props.get(key) == rpc.UNKNOWN]
    if unknown:
        return DatabaseRevision(
            state_revision,
            f"the stack's state: the {' and '.join(unknown)} of the migrator's login are known only once the up "
            "makes them",
        )
    import psycopg
    from psycopg import sql

    version_table = TREES[props["tree"]].version_table
    try:
        with connect(props) as connection:
            query = sql.SQL("SELECT version_num FROM {}").format(sql.Identifier(version_table))
            row = connection.execute(query).fetchone()
    except psycopg.errors.UndefinedTable:
        return DatabaseRevision(None, "read from the database, which has no version table yet")
    except psycopg.OperationalError as error:
        if DATABASE_DOES_NOT_EXIST.search(str(error)):
            return DatabaseRevision(None, "the database does not exist yet")
        if creating and LOGIN_REFUSED.search(str(error)):
            return DatabaseRevision(None, NO_LOGIN_YET)
        reason = (str(error).strip().splitlines() or ["no message"])[-1]
        if creating:
            # A new stack's preview needs no server (the provider's creates do not connect either): the up
            # makes the database, or fails on the server with its own message; the whole tree is judged.
            return DatabaseRevision(None, f"{NOT_ANSWERING_YET} ({str(error).strip().splitlines()[0]})")
        raise RevisionUnreadableError(
            f"the {props['tree']} {REVISION_UNREADABLE} {props['database']!r} at "
            f"{props['host']}:{int(props['port'])} as {props['user']} (sslmode {props['sslmode']}): {reason}. The "
            "preview reads it to know what is pending: start the server, or check the migrator's login."
        ) from None
    return DatabaseRevision(row[0] if row else None, "read from the database")


def step_preview(
    props: dict[str, Any], state_revision: str | None, say: bool = True, creating: bool = False
) -> StepPreview:
    """The run this step's inputs ask for, from the database's revision; said on stderr (the engine shows it)."""
    database = props["database"] if props["database"] != rpc.UNKNOWN else "(named by this deploy)"
    preview = preview_step(
        TREES[props["tree"]],
        script_location_of(props),
        database,
        database_revision(props, state_revision, creating),
        props.get("contract_through"),
    )
    for line in preview.lines() if say else []:
        print(f"migration step: {line}", file=sys.stderr, flush=True)
    preview.require_pass()
    return preview


def _upgrade(props: dict[str, Any]) -> dict[str, Any]:
    from migrations import runner

    target = migrator_target(props)
    plan = step_preview(props, None, say=False).plan  # said at the check or the diff that came before
    try:
        result = runner.upgrade(target, plan.target)
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
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        if not olds:  # a create: no diff follows, so what it will run is read here
            step_preview(news, None, creating=True)
        return CheckResult(news, [])

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"{props['tree']}@{props['database']}", outs=_upgrade(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in RERUN_WHEN_CHANGED if olds.get(key) != news.get(key)]
        behind = bool(step_preview(news, olds.get("revision")).plan.pending)
        # A state written before `tables` existed runs once more to learn them (a run at head changes nothing).
        return DiffResult(
            changes=bool(changed) or behind or "tables" not in olds, replaces=[], delete_before_replace=False
        )

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
    contract_through: str | None = None
    """The stack key headhunter-db:contractThrough (migrations.shared.phases): the last revision whose
    contract revisions may run, or head; None: none may. The main tree's only."""


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
            "contract_through": args.contract_through,
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
