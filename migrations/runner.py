"""Run one tree from Python: what scripts/migrate, the migration step and the tests call.

The password travels inside a SQLAlchemy URL object in the run's inputs (migrations.shared.run_inputs),
never in a process argument or an environment variable; env.py does the rest (guard, lock, role,
timeouts).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool

from migrations.shared import run_inputs
from migrations.shared.connect import connect_with_retry
from migrations.shared.tree import TREES, Tree

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"
# Alembic's `context` is a process-wide proxy: two runs at once in one process would run in each
# other's environment (the engine calls the migration step from several threads). Runs in one
# process take turns; runs in different processes are serialised by each tree's advisory lock.
_ALEMBIC_IN_USE = threading.Lock()


@dataclass(frozen=True)
class Target:
    """Where and as whom a tree runs."""

    tree: Tree
    url: URL
    expected_database: str | None = None
    script_location: Path | None = None
    """A copy of the tree to run instead (the tests' failing revision, the benchmark's generated tables)."""


@dataclass(frozen=True)
class UpgradeResult:
    before: str | None
    after: str | None
    applied: tuple[str, ...]
    """Revisions this run applied, oldest first; empty when another run (or an earlier one) had."""


def alembic_config(target: Target) -> Config:
    config = Config(str(ALEMBIC_INI), ini_section=target.tree.key)
    inputs = run_inputs.RunInputs(url=target.url, expected_database=target.expected_database, configure_logger=False)
    run_inputs.attach(config, inputs)
    if target.script_location is not None:
        config.set_main_option("script_location", str(target.script_location))
    return config


def _scripts(tree: Tree, script_location: Path | None) -> ScriptDirectory:
    config = Config(str(ALEMBIC_INI), ini_section=tree.key)
    if script_location is not None:
        config.set_main_option("script_location", str(script_location))
    return ScriptDirectory.from_config(config)


def head_revision(tree: Tree, script_location: Path | None = None) -> str:
    heads = _scripts(tree, script_location).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the {tree.key} tree has {len(heads)} heads ({', '.join(heads)}): merge them first.")
    return heads[0]


def revisions_in_order(tree: Tree, script_location: Path | None = None) -> list[str]:
    """Every revision of the tree, from the first to the head."""
    return [revision.revision for revision in reversed(list(_scripts(tree, script_location).walk_revisions()))]


def current_revision(target: Target) -> str | None:
    """The database's revision, read-only; None before the first upgrade."""
    engine = create_engine(target.url.set(drivername="postgresql+psycopg"), poolclass=NullPool)
    try:
        with connect_with_retry(engine) as connection:
            try:
                query = sql.SQL("SELECT version_num FROM {}").format(sql.Identifier(target.tree.version_table))
                return connection.exec_driver_sql(query.as_string()).scalar()
            except ProgrammingError:
                return None
    finally:
        engine.dispose()


def data_tables(target: Target) -> list[str]:
    """The tables of the database's public schema, its version table and partitions left out: what runtime roles
    are granted."""
    engine = create_engine(target.url.set(drivername="postgresql+psycopg"), poolclass=NullPool)
    try:
        with connect_with_retry(engine) as connection:
            # A partition is its table's (the log tables, logs_0004): it is granted through the owner's
            # default privileges when maintenance makes it, not by name.
            rows = connection.exec_driver_sql(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') "
                "AND NOT relispartition AND relname <> %s ORDER BY 1",
                (target.tree.version_table,),
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def upgrade(target: Target, revision: str = "head") -> UpgradeResult:
    before = current_revision(target)
    config = alembic_config(target)
    with _ALEMBIC_IN_USE:
        command.upgrade(config, revision)
    applied = tuple(run_inputs.of(config).applied)
    return UpgradeResult(before, current_revision(target), applied)


def downgrade(target: Target, revision: str) -> None:
    with _ALEMBIC_IN_USE:
        command.downgrade(alembic_config(target), revision)


def stamp(target: Target, revision: str) -> None:
    """Record `revision` in the tree's version table without running it: tables made outside the tree
    (checked equal to that revision's by scripts/adopt) become the tree's."""
    with _ALEMBIC_IN_USE:
        command.stamp(alembic_config(target), revision)


def upgrade_sql(target: Target, revision: str = "head") -> str:
    """The SQL an upgrade would run, for review; nothing is executed."""
    config = alembic_config(target)
    buffer = io.StringIO()
    config.output_buffer = buffer
    with _ALEMBIC_IN_USE, _quiet_stdout():
        command.upgrade(config, revision, sql=True)
    return buffer.getvalue()


def tree_named(key: str) -> Tree:
    if key not in TREES:
        raise KeyError(f"unknown migration tree {key!r}: use one of {', '.join(TREES)}")
    return TREES[key]


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    with redirect_stdout(io.StringIO()):
        yield
