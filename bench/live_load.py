"""Migrations under live load: the writers' latency while logs_0003 builds its indexes.

Three scenarios on the same table of a few million rows, writers inserting throughout:
idle (no migration, the baseline), the project's revision (CREATE INDEX CONCURRENTLY through the
real Alembic tree and env.py), and the same indexes built with plain CREATE INDEX.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql

from bench import fixture
from bench.pgbench import RATE_PER_S, Latencies, WriterLoad
from fixtures.cluster import ProvisionedDatabases
from migrations import runner
from migrations.shared.concurrent_index import ConcurrentIndex
from migrations.shared.tree import LOGS
from model.names import DatabaseKey

LEAD_S = 3  # writers run alone this long before the build starts
TAIL_S = 2  # and this long after it ends


@dataclass(frozen=True)
class Window:
    latencies: Latencies
    build_seconds: float
    overran: bool
    """The build outlasted the writers: inserts due after they stopped were not measured."""


def index_revision_indexes() -> tuple[ConcurrentIndex, ...]:
    """The indexes of the logs tree's index revision, as the revision itself declares them."""
    script = ScriptDirectory.from_config(Config(str(runner.ALEMBIC_INI), ini_section=LOGS.key))
    revision = script.get_revision("logs_0003")
    assert revision is not None
    return tuple(revision.module.INDEXES)


def writer_load(provisioned: ProvisionedDatabases, seconds: float, rate_per_s: int | None = RATE_PER_S) -> WriterLoad:
    login = provisioned.login_of(provisioned.names.of("logs_writer"))  # the role logs in through its members
    connection = provisioned.server.connection
    database = provisioned.databases[DatabaseKey.LOGS]
    password = provisioned.passwords[login]
    return WriterLoad(connection.host, connection.port, database, login, password, seconds, rate_per_s)


def project_build(provisioned: ProvisionedDatabases) -> None:
    runner.upgrade(provisioned.migration_target(DatabaseKey.LOGS), "logs_0003")


def plain_build(provisioned: ProvisionedDatabases) -> None:
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS], autocommit=False) as logs:
        logs.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(provisioned.names.owner(DatabaseKey.LOGS))))
        for index in index_revision_indexes():
            create = sql.SQL("CREATE INDEX {} ON {} ").format(sql.Identifier(index.name), sql.Identifier(index.table))
            logs.execute(sql.Composed([create, sql.SQL(index.definition)]))
        logs.commit()


def reset(provisioned: ProvisionedDatabases) -> None:
    """Back to logs_0002 with no secondary index, whichever way they were built."""
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        for index in index_revision_indexes():
            logs.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(index.name)))
        logs.execute("UPDATE alembic_version_logs SET version_num = 'logs_0002'")


def under_load(
    provisioned: ProvisionedDatabases, build: Callable[[ProvisionedDatabases], None], seconds: float
) -> Window:
    """Writers for `seconds`; the build starts LEAD_S in. Latencies of the inserts due during the build."""
    with writer_load(provisioned, seconds) as load:
        time.sleep(LEAD_S)
        started = time.time()
        build(provisioned)
        finished = time.time()
    overran = finished - started > seconds - LEAD_S - TAIL_S
    return Window(load.latencies(started, finished), finished - started, overran)


def idle(provisioned: ProvisionedDatabases, seconds: float, rate_per_s: int | None = RATE_PER_S) -> Latencies:
    with writer_load(provisioned, seconds, rate_per_s) as load:
        pass
    return load.latencies()


def idle_build_seconds(provisioned: ProvisionedDatabases) -> float:
    """How long the project's revision takes with no writers: sizes the idle baseline's duration."""
    started = time.monotonic()
    project_build(provisioned)
    elapsed = time.monotonic() - started
    reset(provisioned)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.live_load [--quick]`: the writers under logs_0003 alone (scripts/bench runs it too),
    printed; --quick on a small table, once, with a short window of writers."""
    from bench import run

    quick = fixture.quick_asked(argv)
    with fixture.loaded(quick) as provisioned:
        load = run.measure_live_load(provisioned, runs=1 if quick else 3, least_build_window_s=2.0 if quick else 10.0)
    print(run.live_load_section(load))
    return 0


if __name__ == "__main__":
    sys.exit(main())
