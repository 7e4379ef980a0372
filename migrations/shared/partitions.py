"""Time partitions of a log table: read them, make them ahead of time, drop them past retention.

This is the project's own code rather than pg_partman, which is often not installed, or not
creatable by an admin that is no superuser, on the managed servers we deploy to. It follows
pg_partman's semantics (premake ahead, retention by dropping whole partitions) with these choices,
each made for live writers:

- No DEFAULT partition. With one, PostgreSQL refuses DETACH ... CONCURRENTLY and scans the default
  partition, under lock, whenever a partition is added. Without one, a row outside every partition
  is refused at INSERT with PostgreSQL's own message: premaking ahead keeps that from happening to
  rows of the present, and rows past retention would be dropped anyway.
- A partition is made as a plain table (LIKE the parent) and then ATTACHed: ATTACH takes SHARE
  UPDATE EXCLUSIVE on the parent, which no INSERT waits on, where CREATE TABLE ... PARTITION OF
  takes ACCESS EXCLUSIVE. The new table is empty, so ATTACH's bound check reads nothing.
- Retention DETACHes CONCURRENTLY (no lock an INSERT waits on), then DROPs the detached table: it
  never DELETEs a row, and a partition is dropped only when every row it may hold is older than the
  retention (its upper bound is), so the current and future partitions are never touched.

Each function works on a connection in autocommit mode (DETACH CONCURRENTLY refuses a transaction
block) and can be killed at any statement: the next call finds what was done and goes on.
Bounds are read and written in UTC: the session's TimeZone is set to UTC first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from psycopg import sql
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

# Maintenance waits this long at most for a lock; what an INSERT could queue behind is bounded by it.
MAINTENANCE_LOCK_TIMEOUT = "1s"
LOCK_ATTEMPTS = 5
DETACH_LOCK_TIMEOUT = "30s"

_BOUND = re.compile(r"FOR VALUES FROM \((?P<lower>MINVALUE|'[^']*')\) TO \((?P<upper>MAXVALUE|'[^']*')\)")


class Interval(Protocol):
    """How much time one partition holds: model.log_lifecycle.Interval for maintenance, a revision's own
    frozen copy for logs_0004. This module imports no model/ code, so a revision that uses it keeps
    doing what it did whatever the live model says later."""

    def start_of(self, moment: datetime) -> datetime: ...

    def after(self, start: datetime) -> datetime: ...

    def suffix(self, start: datetime) -> str: ...


class PartitioningError(RuntimeError):
    """A log table is not in a state maintenance can act on; the message says what to do."""


@dataclass(frozen=True)
class Partition:
    name: str
    lower: datetime | None
    """None for MINVALUE: the partition that holds the rows of a table converted in place."""
    upper: datetime
    detach_pending: bool = False
    """A DETACH ... CONCURRENTLY that was interrupted; it must be finalized before anything else."""


def run(connection: Connection, statement: str) -> None:
    """Run one statement of ours: text() passes a format()'s %I through; the driver takes it for a placeholder."""
    connection.execute(text(statement))


def is_partition_name(table: str, name: str) -> bool:
    """Whether `name` is one of `table`'s partitions or their indexes, by the names this module gives them."""
    return re.match(rf"{re.escape(table)}_p(_before|\d{{8}}|\d{{6}})(_|$)", name) is not None


def utc_session(connection: Connection) -> None:
    run(connection, "SET TIME ZONE 'UTC'")


def partitions(connection: Connection, table: str) -> list[Partition]:
    """The table's partitions, oldest first (its range partitions on created_at)."""
    rows = connection.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), i.inhdetachpending "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)",
        (f"public.{table}",),
    ).all()
    found = [_partition(name, bound, pending) for name, bound, pending in rows]
    return sorted(found, key=lambda p: p.upper)


def _partition(name: str, bound: str, detach_pending: bool) -> Partition:
    match = _BOUND.search(bound)
    if match is None or match["upper"] == "MAXVALUE":
        raise PartitioningError(f"partition {name} has bound {bound!r}; maintenance only knows ranges of time")
    lower = None if match["lower"] == "MINVALUE" else _timestamp(match["lower"])
    return Partition(name, lower, _timestamp(match["upper"]), detach_pending)


def _timestamp(literal: str) -> datetime:
    return datetime.fromisoformat(literal.strip("'")).astimezone(UTC)


def is_partitioned(connection: Connection, table: str) -> bool:
    kind = connection.exec_driver_sql(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (f"public.{table}",)
    ).scalar()
    return kind == "p"


def create_through(connection: Connection, table: str, interval: Interval, until: datetime) -> list[str]:
    """Make the partitions of `interval` that hold every moment up to `until`; return the names made."""
    present = partitions(connection, table)
    made: list[str] = []
    start = present[-1].upper
    if all(partition.lower is None for partition in present):
        # The first partition after a conversion's boundary is made whatever the window, so that a
        # table never has only the partition of its converted rows.
        until = max(until, start)
    for name, end in _due(table, interval, start, until):
        _create_table(connection, table, name)
        with_lock_retries(connection, _attach(table, name, start, end))
        made.append(name)
        start = end
    return made


def statements(table: str, interval: Interval, start: datetime, until: datetime) -> list[str]:
    """The SQL that makes the partitions from `start` through `until`, for an offline script.

    Each statement can run again: the table is made IF NOT EXISTS, and attached only while it is not
    a partition yet (a script cut between the two, or run twice, goes on where it stopped).
    """
    made: list[str] = []
    for name, end in _due(table, interval, start, until):
        made += [_create_table_sql(table, name), _attach_unless_attached(table, name, start, end)]
        start = end
    return made


def _due(table: str, interval: Interval, start: datetime, until: datetime) -> list[tuple[str, datetime]]:
    due: list[tuple[str, datetime]] = []
    while start <= until:
        due.append((f"{table}_{interval.suffix(start)}", interval.after(start)))
        start = interval.after(start)
    return due


def _create_table(connection: Connection, table: str, name: str) -> None:
    # IF NOT EXISTS: a run killed between CREATE and ATTACH left the table unattached; it is attached now.
    run(connection, _create_table_sql(table, name))


def _create_table_sql(table: str, name: str) -> str:
    # INCLUDING DEFAULTS, CONSTRAINTS and GENERATED: ATTACH wants the parent's CHECKs and generated
    # columns on the table; not IDENTITY: rows get their id from the parent's identity.
    return (
        sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)")
        .format(sql.Identifier(name), sql.Identifier(table))
        .as_string()
    )


def _attach(table: str, name: str, start: datetime, end: datetime) -> str:
    attach = sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})")
    bounds = (sql.Literal(start.isoformat()), sql.Literal(end.isoformat()))
    return attach.format(sql.Identifier(table), sql.Identifier(name), *bounds).as_string()


def _attach_unless_attached(table: str, name: str, start: datetime, end: datetime) -> str:
    return (
        sql.SQL(
            "DO $attach$ BEGIN IF NOT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = to_regclass({partition})) "
            "THEN {attach}; END IF; END $attach$"
        )
        .format(partition=sql.Literal(f"public.{name}"), attach=sql.SQL(_attach(table, name, start, end)))
        .as_string()
    )


def drop_older_than(connection: Connection, table: str, cutoff: datetime) -> list[str]:
    """Drop the partitions whose every row is older than `cutoff`; return the names dropped.

    A partition is past retention when its upper bound is at or before the cutoff, so a partition
    that could hold a row of the retention window, and the current and future ones, are kept.
    """
    dropped = _drop_detached(connection, table)
    for partition in partitions(connection, table):
        if partition.upper > cutoff:
            break
        _detach(connection, table, partition.name)
        with_lock_retries(
            connection, sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(partition.name)).as_string()
        )
        dropped.append(partition.name)
    return dropped


def _drop_detached(connection: Connection, table: str) -> list[str]:
    """Partitions an earlier run detached but was stopped before dropping: no longer attached, they
    would keep rows past retention for good. By then maintenance has attached every partition it made."""
    rows = connection.exec_driver_sql(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' "
        "AND NOT relispartition AND relname LIKE %s ORDER BY 1",
        (f"{table}_p%",),
    ).all()
    detached = [name for (name,) in rows if is_partition_name(table, name)]
    for name in detached:
        with_lock_retries(connection, sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)).as_string())
    return detached


def _detach(connection: Connection, table: str, name: str) -> None:
    """DETACH ... CONCURRENTLY, or FINALIZE one that an earlier run (or a cancel) cut short.

    CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on the parent, which no INSERT waits on, commits once
    it has marked the partition, then waits for the queries that may still read it: that wait blocks
    no writer, so it may last DETACH_LOCK_TIMEOUT (a report of a few seconds does not fail
    retention). Cut short there, the partition stays "detach pending", which only FINALIZE completes:
    the next run does.
    """
    present = [p for p in partitions(connection, table) if p.name == name]
    if not present:
        return  # detached by an earlier run that stopped before its DROP
    if present[0].detach_pending:
        with_lock_retries(connection, _names(sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE"), table, name))
        return
    run(connection, sql.SQL("SET lock_timeout = {}").format(sql.Literal(DETACH_LOCK_TIMEOUT)).as_string())
    run(connection, _names(sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY"), table, name))


def _names(statement: sql.SQL, table: str, partition: str) -> str:
    return statement.format(sql.Identifier(table), sql.Identifier(partition)).as_string()


def _set_lock_timeout(connection: Connection) -> None:
    timeout = sql.SQL("SET lock_timeout = {}").format(sql.Literal(MAINTENANCE_LOCK_TIMEOUT))
    run(connection, timeout.as_string())


def _lock_timed_out(error: OperationalError) -> bool:
    return getattr(error.orig, "sqlstate", None) == "55P03"


def with_lock_retries(connection: Connection, statement: str) -> None:
    """Run `statement` under a short lock_timeout, a few times: a queued INSERT waits a moment at most."""
    _set_lock_timeout(connection)
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            run(connection, statement)
            return
        except OperationalError as error:
            if not _lock_timed_out(error) or attempt == LOCK_ATTEMPTS:
                raise


def relations(connection: Connection, table: str) -> list[str]:
    """The table and each of its partitions."""
    return [table, *(partition.name for partition in partitions(connection, table))]


def grants_of(connection: Connection, relation: str) -> dict[str, list[str]]:
    """Role -> privileges granted on `relation`, its owner left out (PUBLIC as `public`)."""
    rows = connection.exec_driver_sql(
        "SELECT CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type "
        "FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner",
        (f"public.{relation}",),
    ).all()
    found: dict[str, list[str]] = {}
    for grantee, privilege in rows:
        found.setdefault(grantee, []).append(privilege)
    return {grantee: sorted(privileges) for grantee, privileges in found.items()}


def align_grants(connection: Connection, relation: str, wanted: dict[str, list[str]]) -> bool:
    """Make `relation`'s grants exactly `wanted`; whether anything changed.

    GRANT and REVOKE rewrite the table's catalog row and take no lock an INSERT waits on.
    """
    actual = grants_of(connection, relation)
    if actual == wanted:
        return False
    name = sql.Identifier(relation)
    for grantee in sorted(set(actual) | set(wanted)):
        if actual.get(grantee) == wanted.get(grantee):
            continue
        role = sql.SQL("PUBLIC") if grantee == "public" else sql.Identifier(grantee)
        run(connection, sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(name, role).as_string())
        if wanted.get(grantee):
            privileges = sql.SQL(", ").join(sql.SQL(privilege) for privilege in wanted[grantee])
            run(connection, sql.SQL("GRANT {} ON TABLE {} TO {}").format(privileges, name, role).as_string())
    return True
