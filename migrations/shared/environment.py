"""The body of both env.py files: connect, check placement, lock, act as the owner, migrate.

Order matters, and each step says why:
1. connect, retrying only connection failures (a server restarting), never SQL errors;
2. the placement guard, read-only, before any lock or change;
3. the tree's session advisory lock, on the migration connection (it lives and dies with the work);
4. lock_timeout and statement_timeout, set only now that the advisory lock is held, so they bound
   the DDL and not our wait for another run (notifications-api#3966);
5. SET ROLE to the database's owner, so every object the revisions create belongs to the owner and
   the owner's default privileges hand it to the runtime roles;
6. one transaction per revision: a failure stops at the last good revision.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationInfo
from psycopg import sql
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, PendingRollbackError
from sqlalchemy.pool import NullPool

from migrations.shared import run_inputs
from migrations.shared.connect import connect_with_retry
from migrations.shared.placement_guard import check_placement
from migrations.shared.run_lock import tree_run_lock
from migrations.shared.tree import Tree

LOCK_TIMEOUT = "5s"  # a revision waiting longer than this on a table lock gives up instead of queueing writers
STATEMENT_TIMEOUT = "30min"  # a concurrent index build on a large log table takes minutes, not hours
RUN_LOCK_WAIT_S = 600.0


class MissingDatabaseURLError(RuntimeError):
    pass


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
    # An embedder's connection or engine: ours through the run inputs, or in `attributes["connection"]`,
    # the place Alembic's cookbook gives it (pytest-alembic hands an Engine there, then a Connection).
    injected = run_inputs.of(context.config).connection or context.config.attributes.get("connection")
    if isinstance(injected, Connection):
        _migrate(context, tree, injected)
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


def _migrate(context: EnvironmentContext, tree: Tree, connection: Connection) -> None:
    placement = check_placement(connection, tree, expected_database(context, tree))
    # End the implicit transaction the guard's queries opened: left open, Alembic would treat it as
    # the caller's and skip its own COMMIT, silently rolling the DDL back.
    connection.commit()
    with tree_run_lock(connection, tree, RUN_LOCK_WAIT_S):
        connection.execute(text("SELECT set_config('lock_timeout', :value, false)"), {"value": LOCK_TIMEOUT})
        connection.execute(text("SELECT set_config('statement_timeout', :value, false)"), {"value": STATEMENT_TIMEOUT})
        connection.execute(text(sql.SQL("SET ROLE {}").format(sql.Identifier(placement.owner)).as_string()))
        connection.commit()
        applied = run_inputs.of(context.config).applied
        context.configure(connection=connection, on_version_apply=_record_into(applied), **common_options(tree))
        try:
            with context.begin_transaction():
                context.run_migrations()
        except BaseException as error:
            _clean_up(connection, tree, after_failure=True)
            cause = _database_cause(error)
            if cause is not error:
                raise cause from None
            raise
        _clean_up(connection, tree, after_failure=False)


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


def _clean_up(connection: Connection, tree: Tree, after_failure: bool) -> None:
    """Leave the version table to the owner alone and the session as found, after a failure too.

    After a failure whose cause killed the connection, a cleanup error would only hide the
    database's own message, so it is dropped.
    """
    try:
        if connection.in_transaction():
            connection.rollback()
        _restrict_version_table(connection, tree)
        connection.execute(text("RESET ROLE"))
        connection.commit()
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
    connection.commit()


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
