"""The log tables' partition maintenance: partitions made ahead, partitions past retention dropped.

What every deploy runs after the logs tree (infra/log_maintenance.py) and what `scripts/maintain`
runs alone, on a schedule. It acts as the logs tree does: as the migrator, after the placement
guard, under the tree's run lock (so it never overlaps a migration or another maintenance run: the
second waits, and says so), as the owner role (every partition belongs to the owner, whose default
privileges give it to the writer and the reader), in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg import sql
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from migrations import runner
from migrations.shared import partitions
from migrations.shared.connect import connect_with_retry
from migrations.shared.placement_guard import check_placement
from migrations.shared.run_lock import tree_run_lock
from migrations.shared.tree import LOGS
from model.log_lifecycle import LOG_TABLES, PARTITION_INTERVALS, LogLifecycle

RUN_LOCK_WAIT_S = 600.0
STATEMENT_TIMEOUT = "10min"  # a DETACH CONCURRENTLY waits for the queries that still read the partition


class NotPartitionedError(RuntimeError):
    """The logs tree is not at the revision that partitions the log tables."""


@dataclass(frozen=True)
class TableCoverage:
    """What a log table's partitions hold after maintenance, in UTC."""

    oldest_ends: str
    """The upper bound of the oldest partition: it is dropped once retention passes it."""
    covered_until: str
    """The upper bound of the newest partition: rows up to it have a partition."""


@dataclass(frozen=True)
class MaintenanceReport:
    created: dict[str, list[str]]
    dropped: dict[str, list[str]]
    coverage: dict[str, TableCoverage]

    def lines(self) -> list[str]:
        """What was done, a line per table, for the operator and the deploy log."""
        lines = []
        for table in LOG_TABLES:
            created, dropped = self.created[table], self.dropped[table]
            made = f"created {', '.join(created)}" if created else "created nothing"
            removed = f"dropped {', '.join(dropped)}" if dropped else "dropped nothing"
            lines.append(f"{table}: {made}; {removed}; partitions until {self.coverage[table].covered_until}")
        return lines


def maintain(
    target: runner.Target,
    lifecycle: LogLifecycle,
    now: datetime | None = None,
    grants: dict[str, list[str]] | None = None,
) -> MaintenanceReport:
    """Bring every log table's partitions to the lifecycle: made through the premake window, none past retention.

    With `grants` (role -> privileges, the owner's default privileges by the model), the tables and
    every partition are given exactly those: the postgresql provider reads no grant on a partitioned
    table (its `table` object type is relkind 'r' only), so drift there is repaired here.
    """
    moment = now or datetime.now(UTC)
    with _as_owner_under_the_run_lock(target) as connection:
        report = _maintain_tables(connection, lifecycle, moment)
        if grants is not None:
            for relation in _log_relations(connection):
                partitions.align_grants(connection, relation, grants)
        return report


def release(target: runner.Target, roles: list[str]) -> None:
    """Revoke from `roles` what they hold on the log tables and partitions (a destroy, before DROP ROLE):
    grants given by default privileges to partitions no Grant resource knows of would stop it."""
    with _as_owner_under_the_run_lock(target) as connection:
        for relation in _log_relations(connection):
            kept = {
                role: held for role, held in partitions.grants_of(connection, relation).items() if role not in roles
            }
            partitions.align_grants(connection, relation, kept)


@contextmanager
def _as_owner_under_the_run_lock(target: runner.Target) -> Iterator[Connection]:
    """The migrator's connection, in autocommit, past the placement guard, holding the logs tree's run
    lock and acting as the owner: as the logs tree itself runs."""
    engine = create_engine(target.url.set(drivername="postgresql+psycopg"), poolclass=NullPool)
    try:
        with connect_with_retry(engine) as connection:
            placement = check_placement(connection, LOGS, target.expected_database)
            connection.commit()
            autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
            with tree_run_lock(autocommit, LOGS, RUN_LOCK_WAIT_S):
                _act_as_owner(autocommit, placement.owner)
                yield autocommit
    finally:
        engine.dispose()


def _log_relations(connection: Connection) -> list[str]:
    return [relation for table in LOG_TABLES for relation in partitions.relations(connection, table)]


def grants_differ(connection: Connection, grants: dict[str, list[str]]) -> bool:
    """Whether any log table or partition holds other grants than `grants`: read-only."""
    return any(partitions.grants_of(connection, relation) != grants for relation in _log_relations(connection))


def coverage(connection: Connection) -> dict[str, TableCoverage]:
    """Each log table's partition range, read-only: what a refresh and scripts/verify read."""
    partitions.utc_session(connection)
    return {table: _coverage(connection, table) for table in LOG_TABLES}


def _act_as_owner(connection: Connection, owner: str) -> None:
    connection.execute(text("SELECT set_config('statement_timeout', :value, false)"), {"value": STATEMENT_TIMEOUT})
    connection.execute(text(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)).as_string()))
    partitions.utc_session(connection)


def _maintain_tables(connection: Connection, lifecycle: LogLifecycle, now: datetime) -> MaintenanceReport:
    created: dict[str, list[str]] = {}
    dropped: dict[str, list[str]] = {}
    for table in LOG_TABLES:
        if not partitions.is_partitioned(connection, table):
            raise NotPartitionedError(
                f"{table} is not partitioned: the logs tree is below logs_0004. Upgrade it first "
                "(scripts/migrate STACK logs upgrade, or a deploy), then maintain."
            )
        created[table] = partitions.create_through(
            connection, table, PARTITION_INTERVALS[table], lifecycle.premake_until(now)
        )
        dropped[table] = partitions.drop_older_than(connection, table, lifecycle.retention_cutoff(table, now))
    return MaintenanceReport(created, dropped, {table: _coverage(connection, table) for table in LOG_TABLES})


def _coverage(connection: Connection, table: str) -> TableCoverage:
    present = partitions.partitions(connection, table)
    if not present:
        raise NotPartitionedError(f"{table} has no partitions: run the logs tree (scripts/migrate STACK logs upgrade)")
    return TableCoverage(oldest_ends=present[0].upper.isoformat(), covered_until=present[-1].upper.isoformat())
