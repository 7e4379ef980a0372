"""The body of both env.py files: connect, check placement, lock, act as the owner, migrate.

Order matters, and each step says why:
1. connect, retrying only connection failures (a server restarting), never SQL errors;
2. the placement guard, read-only, before any lock or change;
3. the tree's session advisory lock, on the migration connection (it lives and dies with the work);
4. lock_timeout and statement_timeout, set only now that the advisory lock is held, so they bound
   the DDL and not our wait for another run (notifications-api#3966);
5. SET ROLE to the database's owner, so every object the revisions create belongs to the owner and
   the owner's default privileges hand it to the runtime roles;
6. one transaction per revision: a failure stops at the last good revision; a revision whose lock
   is not granted within one short try is rolled back and tried again (migrations.shared.lock_retry).

An embedder's connection (Alembic's cookbook, "Sharing a Connection across one or more programmatic
migration commands"; pytest-alembic) is the embedder's: when it comes inside an open transaction,
every step runs inside that transaction, each try of the revisions in a savepoint of ours, nothing
is committed, and the session's role and timeouts are put back as found. A connection handed in
without a transaction is used like our own (Alembic commits each revision on it either way).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import psycopg
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationInfo
from psycopg import sql
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, PendingRollbackError
from sqlalchemy.pool import NullPool

from migrations.shared import lock_retry, run_inputs
from migrations.shared.connect import connect_with_retry
from migrations.shared.placement_guard import check_placement
from migrations.shared.run_lock import tree_run_lock
from migrations.shared.tree import Tree

LOCK_TIMEOUT = lock_retry.TRY_LOCK_TIMEOUT
"""How long any statement of a run waits for a lock before its revision is rolled back and tried again."""
STATEMENT_TIMEOUT = "30min"
"""The session's budget, for what runs outside a revision's transaction (Alembic's autocommit blocks):
a concurrent index build, a VALIDATE, a batched backfill, which take no lock a writer waits on (the
project's helpers set lock_timeout 0 for the waits of a concurrent build) and on a large log table
take minutes, not hours."""
REVISION_STATEMENT_TIMEOUT = "10s"
"""Inside a revision's transaction every lock a statement takes is held until COMMIT, and the strong
ones (ACCESS EXCLUSIVE for most ALTER TABLE) queue every writer of the table: such a statement must be
short, and one that is not (a rewrite, a scan under lock) is stopped before the writers notice much.
Set with SET LOCAL as each revision's transaction opens: it lapses at COMMIT, and at an autocommit
block, which commits first."""
RUN_LOCK_WAIT_S = 600.0


class MissingDatabaseURLError(RuntimeError):
    pass


@runtime_checkable
class LendsConnections(Protocol):
    """What hands out a connection: an Engine (a new one each time) or an embedder's wrapper that lends its
    own open connection (pytest-alembic's experimental check wraps its connection this way)."""

    def connect(self) -> AbstractContextManager[Connection]: ...


def database_url(context: EnvironmentContext, tree: Tree) -> URL:
    """The URL from the runner's inputs, the tree's environment variable, or the ini.

    A URL without a password is fine: libpq then reads PGPASSWORD or ~/.pgpass, which keeps the
    password out of process arguments.
    """
    config = context.config
    url = run_inputs.of(config).url or os.environ.get(tree.url_env_var) or config.get_main_option("sqlalchemy.url")
    if not url:
        raise MissingDatabaseURLError(
            f"no database URL for the {tree.key} tree: set {tree.url_env_var} "
            f"(for example postgresql+psycopg://<migrator>@<host>:5432/<database>)."
        )
    return make_url(url).set(drivername="postgresql+psycopg")


def expected_database(context: EnvironmentContext, tree: Tree) -> str | None:
    """The stack's configured name for the tree's database, when the runner knows it."""
    x_args: Mapping[str, str] = context.get_x_argument(as_dictionary=True)
    configured = run_inputs.of(context.config).expected_database
    return configured or x_args.get("expect_database") or os.environ.get(tree.expected_database_env_var)


def run_online(context: EnvironmentContext, tree: Tree) -> None:
    # An embedder's connection, engine or connection lender: ours through the run inputs, or in
    # `attributes["connection"]`, the place Alembic's cookbook gives it.
    injected = run_inputs.of(context.config).connection or context.config.attributes.get("connection")
    if isinstance(injected, Connection):
        _migrate(context, tree, injected)
        return
    if injected is not None and not isinstance(injected, Engine) and isinstance(injected, LendsConnections):
        with injected.connect() as lent:
            _migrate(context, tree, lent)
        return
    if isinstance(injected, Engine):
        engine = injected
    else:
        engine = create_engine(database_url(context, tree), poolclass=NullPool)
    try:
        with connect_with_retry(engine) as connection:
            _migrate(context, tree, connection)
    finally:
        if engine is not injected:
            engine.dispose()


@dataclass(frozen=True)
class MigrationSession:
    """The migration connection's settings, set for each try and put back as found at the end."""

    connection: Connection
    owner: str
    embedded: bool
    """Inside an embedder's open transaction: nothing is committed, each try runs in a savepoint."""
    found: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, connection: Connection, owner: str, embedded: bool) -> MigrationSession:
        names = ("role", "lock_timeout", "statement_timeout")
        values = connection.execute(text("SELECT " + ", ".join(f"current_setting('{name}')" for name in names)))
        return cls(connection, owner, embedded, tuple(zip(names, values.one(), strict=True)))

    def settle(self) -> None:
        """End the transaction our statements opened: left open, Alembic would take it for the caller's and
        skip its own COMMIT, silently rolling the DDL back. An embedder's transaction stays open."""
        if not self.embedded:
            self.connection.commit()

    def prepare(self) -> None:
        """Timeouts and role for a try; again before each one, since a failed try may have changed them."""
        self._set(("lock_timeout", LOCK_TIMEOUT), ("statement_timeout", STATEMENT_TIMEOUT), ("role", self.owner))

    def restore(self) -> None:
        self._set(*self.found)

    def _set(self, *settings: tuple[str, str]) -> None:
        for name, value in settings:
            self.connection.execute(text("SELECT set_config(:name, :value, false)"), {"name": name, "value": value})
        self.settle()


def _migrate(context: EnvironmentContext, tree: Tree, connection: Connection) -> None:
    embedded = connection.in_transaction()
    placement = check_placement(connection, tree, expected_database(context, tree))
    session = MigrationSession.of(connection, placement.owner, embedded)
    session.settle()
    with tree_run_lock(connection, tree, RUN_LOCK_WAIT_S, commit=not embedded):
        running: list[MigrationInfo] = []
        _configure(context, tree, connection, run_inputs.of(context.config).applied, running)
        try:
            lock_retry.run_with_lock_retries(
                connection,
                attempt=lambda: _run_migrations(context),
                prepare=session.prepare,
                failing_step=lambda: _step_name(running),
                in_savepoint=embedded,
                ours=LOCK_TIMEOUT,
            )
        except BaseException as error:
            _clean_up(session, tree, after_failure=True)
            cause = _database_cause(error)
            if cause is not error:
                raise cause from None
            raise
        _clean_up(session, tree, after_failure=False)


def _run_migrations(context: EnvironmentContext) -> None:
    with context.begin_transaction():
        context.run_migrations()


StepsFunction = Callable[[tuple[str, ...], MigrationContext], Iterable[Any]]


def _configure(
    context: EnvironmentContext, tree: Tree, connection: Connection, applied: list[str], running: list[MigrationInfo]
) -> None:
    """Alembic's context for the run, with its list of steps passed through `_revision_transactions`.

    The steps come from the command (its `fn`), which only the configured context shows: configured
    once to read it, then again with it wrapped.
    """
    options = {"connection": connection, "on_version_apply": _record_into(applied), **common_options(tree)}
    context.configure(**options)
    given: StepsFunction | None = context.get_context().opts.get("fn")
    if given is not None:
        context.configure(**options, fn=_revision_transactions(given, connection, running))


def _revision_transactions(given: StepsFunction, connection: Connection, running: list[MigrationInfo]) -> StepsFunction:
    """Each step noted (a failure names its revision), and its transaction opened with the revision's
    statement_timeout: Alembic takes the open transaction for the revision's own (it begins one only
    when none is open), and the SET LOCAL lapses at its COMMIT."""

    def steps(heads: tuple[str, ...], migration_context: MigrationContext) -> Iterator[Any]:
        for step in given(heads, migration_context):
            running.append(step.info)
            connection.execute(
                text("SELECT set_config('statement_timeout', :value, true)"), {"value": REVISION_STATEMENT_TIMEOUT}
            )
            yield step

    return steps


def _step_name(running: list[MigrationInfo]) -> str:
    if not running:
        return "the run"
    info = running[-1]
    source, destination = (
        (info.down_revision_ids, info.up_revision_ids)
        if info.is_upgrade
        else (info.up_revision_ids, info.down_revision_ids)
    )
    direction = "upgrade" if info.is_upgrade else "downgrade"
    return f"revision {', '.join(info.up_revision_ids)} ({direction} {_ids(source)} -> {_ids(destination)})"


def _ids(revisions: Iterable[str]) -> str:
    return ", ".join(revisions) or "base"


def _database_cause(error: BaseException) -> BaseException:
    """The database's own error behind a failure, rather than what a cleanup raised over it.

    A connection ended inside an autocommit block (a concurrent build) fails the block's own closing
    COMMIT, and SQLAlchemy's "Can't reconnect until invalid transaction is rolled back" hides why.
    """
    if not isinstance(error, PendingRollbackError):
        return error
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DBAPIError) and not isinstance(seen, PendingRollbackError):
            return seen
        if isinstance(seen, psycopg.Error):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def _clean_up(session: MigrationSession, tree: Tree, after_failure: bool) -> None:
    """Leave the version table to the owner alone and the session as found, after a failure too.

    After a failure whose cause killed the connection, a cleanup error would only hide the
    database's own message, so it is dropped.
    """
    connection = session.connection
    try:
        if connection.in_transaction() and not session.embedded:
            connection.rollback()
        _restrict_version_table(connection, tree)
        session.restore()
    except (DBAPIError, PendingRollbackError):
        if not after_failure:
            raise


def _restrict_version_table(connection: Connection, tree: Tree) -> None:
    """Only the owner may touch the version table.

    Alembic creates it as the owner, so the owner's default privileges hand it to the runtime roles
    like any table: an app that could UPDATE alembic_version could make the next deploy skip or
    repeat revisions.
    """
    connection.execute(text(restrict_version_table_sql(tree)))  # text() escapes the % of format()


def restrict_version_table_sql(tree: Tree) -> str:
    """A DO block that revokes every privilege on the version table that its owner did not keep."""
    table = sql.Identifier("public", tree.version_table)
    return (
        sql.SQL(
            """
DO $restrict$ DECLARE grantee_name text; BEGIN
  FOR grantee_name IN
    SELECT DISTINCT CASE WHEN acl.grantee = 0 THEN 'public' ELSE quote_ident(pg_get_userbyid(acl.grantee)) END
    FROM pg_class c, aclexplode(c.relacl) acl
    WHERE c.oid = to_regclass({regclass}) AND acl.grantee <> c.relowner
  LOOP
    EXECUTE format('REVOKE ALL ON TABLE %s FROM %s', {regclass}, grantee_name);
  END LOOP;
END $restrict$
"""
        )
        .format(regclass=sql.Literal(table.as_string()))
        .as_string()
    )


def _record_into(applied: list[str]) -> Callable[..., None]:
    """Alembic's on_version_apply hook: the runner reports what this run applied, not what it found."""

    def record(*, step: MigrationInfo, **_: object) -> None:
        if step.is_upgrade:
            applied.extend(step.up_revision_ids)

    return record


def common_options(tree: Tree) -> dict[str, Any]:
    return {"version_table": tree.version_table, "transaction_per_migration": True, "target_metadata": None}
