"""The body of both env.py files in offline mode: the SQL of an upgrade, for review and for the gate.

`alembic upgrade --sql` (scripts/migrate STACK TREE upgrade --sql) prints what an online run would
execute: the placement guard first, then the revisions as the database's owner, under the run's
lock_timeout and statement_timeout.

A DBA runs the script with `psql -v ON_ERROR_STOP=1 -f`, and a script stopped half-way (a lock not
granted in time, a connection lost) must complete when run again, as must one run twice. Outside a
transaction a statement is committed as it runs, so every statement can run a second time: the
project's helpers write theirs so (IF NOT EXISTS, DO blocks under catalog checks), and what SQLAlchemy
and Alembic render is made so here, as it is written out (RerunnableOutput): CREATE TABLE and a plain
CREATE INDEX get IF NOT EXISTS, and the version table's first row is inserted only into an empty table
(its later UPDATEs name the revision they replace, so a second run matches no row).
"""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO, cast

from alembic.runtime.environment import EnvironmentContext
from psycopg import sql

from migrations.shared import environment
from migrations.shared.concurrent_index import SESSION_LOCK_TIMEOUT
from migrations.shared.placement_guard import offline_guard_sql
from migrations.shared.tree import Tree

# One statement per write: Alembic writes each statement whole (DefaultImpl.static_output).
_CREATE_TABLE = re.compile(r"CREATE TABLE (?!IF NOT EXISTS )")
# A plain build only: IF NOT EXISTS would take an INVALID index left by a failed concurrent build for
# a good one (squawk#1230); concurrent builds go through migrations.shared.concurrent_index.
_CREATE_INDEX = re.compile(r"CREATE (UNIQUE )?INDEX (?!CONCURRENTLY |IF NOT EXISTS |ON )")


def run_offline(context: EnvironmentContext, tree: Tree) -> None:
    """`alembic upgrade --sql`: the script opens with the placement guard and acts as the owner."""
    output = RerunnableOutput(context.config.output_buffer or sys.stdout, tree.version_table)
    # The revisions' helpers put this lock_timeout back after a concurrent step (concurrent_index).
    options: dict[str, Any] = {SESSION_LOCK_TIMEOUT: environment.LOCK_TIMEOUT, **environment.common_options(tree)}
    context.configure(
        dialect_name="postgresql",
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        output_buffer=cast(TextIO, output),  # Alembic only writes and flushes it
        **options,
    )
    with context.begin_transaction():
        context.execute(offline_guard_sql(tree, environment.expected_database(context, tree)))
        context.execute(
            "DO $role$ BEGIN EXECUTE format('SET ROLE %I', (SELECT pg_get_userbyid(datdba) FROM pg_database "
            "WHERE datname = current_database())); END $role$"
        )
        context.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(environment.LOCK_TIMEOUT)).as_string())
        context.execute(
            sql.SQL("SET statement_timeout = {}").format(sql.Literal(environment.STATEMENT_TIMEOUT)).as_string()
        )
        context.run_migrations()
        context.execute(environment.restrict_version_table_sql(tree))


class RerunnableOutput:
    """The script's output: each statement Alembic writes, made safe to run a second time."""

    def __init__(self, target: TextIO, version_table: str) -> None:
        self.target = target
        self.version_table = version_table
        self._first_version = re.compile(
            rf"INSERT INTO {re.escape(version_table)} \(version_num\) VALUES \('(?P<revision>[^']+)'\)"
            rf"(?: RETURNING {re.escape(version_table)}\.version_num)?;"
        )

    def write(self, text: str) -> int:
        return self.target.write(self.rerunnable(text))

    def flush(self) -> None:
        self.target.flush()

    def rerunnable(self, statement: str) -> str:
        first = self._first_version.match(statement)
        if first is not None:
            table = sql.Identifier(self.version_table)
            insert = sql.SQL("INSERT INTO {} (version_num) SELECT {} WHERE NOT EXISTS (SELECT FROM {});")
            guarded = insert.format(table, sql.Literal(first["revision"]), table).as_string()
            return guarded + statement[first.end() :]
        if _CREATE_TABLE.match(statement):
            return "CREATE TABLE IF NOT EXISTS " + statement[len("CREATE TABLE ") :]
        index = _CREATE_INDEX.match(statement)
        if index is not None:
            return statement[: index.end()] + "IF NOT EXISTS " + statement[index.end() :]
        return statement
