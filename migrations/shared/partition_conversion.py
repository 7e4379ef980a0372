"""Turn a live, unpartitioned log table into a partitioned one without moving a row.

pg_partman's "online" method (doc/pg_partman_howto.md), done in steps that each leave the table
usable and can be killed and run again:

1. a unique index on (id, created_at), built CONCURRENTLY: a partitioned table's primary key must
   hold the partition key, so the old table's key must become that before it can be a partition;
2. a CHECK that every row is older than the boundary, added NOT VALID (a moment's lock), then
   VALIDATEd (reads the table with no lock an INSERT waits on): ATTACH then trusts it and reads
   nothing;
3. one short transaction under a 1 s lock_timeout, retried: the old table is renamed to
   `<table>_p_before` and given the new key, the partitioned table takes the old name, columns,
   defaults, checks, comments, identity (its sequence carried on above the old one's last value) and
   indexes (made ON ONLY the parent), and the old table is attached as the partition FROM (MINVALUE)
   TO (boundary). ATTACH finds the old table's indexes equal to the parent's and attaches them, so
   no index is built under the lock;
4. the partitions from the boundary on, made ahead (migrations.shared.partitions).

The boundary is the start of the interval after tomorrow (or after the newest row, if a row is
dated later): rows keep going to the old table until then, so the conversion never races midnight.
No row is copied: the converted table's rows stay where they are, in `<table>_p_before`, which
retention drops whole once the boundary is older than the retention.

Offline (`--sql`), the same statements are printed, with the boundary as of the rendering.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from alembic import op
from psycopg import sql
from sqlalchemy.exc import OperationalError

from migrations.shared import partitions
from model.log_lifecycle import Interval

log = logging.getLogger(__name__)
BEFORE_SUFFIX = "_p_before"
SWAP_LOCK_TIMEOUT = "1s"
SWAP_ATTEMPTS = 20


class ConversionRefusedError(RuntimeError):
    """What a downgrade or a damaged table would need is not something this revision does."""


def before_partition(table: str) -> str:
    return f"{table}{BEFORE_SUFFIX}"


def convert(table: str, interval: Interval, premake: timedelta) -> None:
    """Partition `table` by `interval` on created_at, in place, and make partitions `premake` ahead."""
    context = op.get_context()
    if context.as_sql:
        # Outside the revision's transaction, as online: CONCURRENTLY refuses a transaction block,
        # and the swap brings its own BEGIN and COMMIT.
        boundary = first_boundary(interval, datetime.now(UTC), newest_row=None)
        until = max(boundary, datetime.now(UTC) + premake)
        with context.autocommit_block():
            for statement in (*_prepare(table, boundary), *_swap(table, boundary)):
                op.execute(statement)
            for statement in partitions.statements(table, interval, boundary, until):
                op.execute(statement)
        return
    with context.autocommit_block():
        connection = op.get_bind()
        partitions.utc_session(connection)
        if not partitions.is_partitioned(connection, table):
            boundary = _boundary(connection, table, interval)
            for statement in _prepare(table, boundary):
                partitions.run(connection, statement)
            _swap_with_retries(table, boundary)
        partitions.create_through(connection, table, interval, datetime.now(UTC) + premake)


def first_boundary(interval: Interval, now: datetime, newest_row: datetime | None) -> datetime:
    """Where the old table's range ends: after tomorrow's partition start, and after every row."""
    boundary = interval.after(interval.start_of(now + timedelta(days=1)))
    if newest_row is not None and newest_row >= boundary:
        boundary = interval.after(interval.start_of(newest_row))
    return boundary


def _boundary(connection: object, table: str, interval: Interval) -> datetime:
    """The boundary a killed earlier run chose (its CHECK says), else a new one."""
    from sqlalchemy import Connection

    assert isinstance(connection, Connection)
    check = connection.exec_driver_sql(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s",
        (f"public.{table}", _bound_check(table)),
    ).scalar()
    if check is not None:
        return datetime.fromisoformat(check.split("'")[1]).astimezone(UTC)
    newest = connection.exec_driver_sql(
        sql.SQL("SELECT max(created_at) FROM {}").format(sql.Identifier(table)).as_string()
    ).scalar()
    return first_boundary(interval, datetime.now(UTC), newest)


def _bound_check(table: str) -> str:
    return f"{before_partition(table)}_bound"


def _prepare(table: str, boundary: datetime) -> list[str]:
    """Steps 1 and 2: each skips what an earlier run did (an INVALID index from a killed build is rebuilt)."""
    key = sql.Identifier(f"{before_partition(table)}_pkey")
    check = sql.Identifier(_bound_check(table))
    name = sql.Identifier(table)
    return [
        "SET max_parallel_maintenance_workers = 0",
        "SET lock_timeout = 0",  # a concurrent build waits for old transactions, blocking no one
        _drop_invalid_index(f"{before_partition(table)}_pkey"),
        sql.SQL("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} (id, created_at)")
        .format(key, name)
        .as_string(),
        sql.SQL("SET lock_timeout = {}").format(sql.Literal(SWAP_LOCK_TIMEOUT)).as_string(),
        sql.SQL(
            "DO $check$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = {regclass}::regclass "
            "AND conname = {check_name}) THEN ALTER TABLE {table} ADD CONSTRAINT {check} CHECK (created_at < {bound}) "
            "NOT VALID; END IF; END $check$"
        )
        .format(
            regclass=sql.Literal(f"public.{table}"),
            check_name=sql.Literal(_bound_check(table)),
            table=name,
            check=check,
            bound=sql.Literal(boundary.isoformat()),
        )
        .as_string(),
        sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(name, check).as_string(),
        "RESET max_parallel_maintenance_workers",
    ]


def _drop_invalid_index(name: str) -> str:
    return (
        sql.SQL(
            "DO $invalid$ BEGIN IF EXISTS (SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = {name} AND c.relnamespace = 'public'::regnamespace AND NOT i.indisvalid) "
            "THEN EXECUTE format('DROP INDEX public.%I', {name}); END IF; END $invalid$"
        )
        .format(name=sql.Literal(name))
        .as_string()
    )


def _swap(table: str, boundary: datetime) -> list[str]:
    """Step 3, one transaction: the statements between BEGIN and COMMIT hold the lock for milliseconds."""
    before = before_partition(table)
    body = sql.SQL(
        """
DO $swap$ DECLARE
  index_names text[];
  index_defs text[];
  last_id bigint;
BEGIN
  LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;
  -- The old table's indexes, but its key, to be made again ON ONLY the parent under their own names.
  SELECT coalesce(array_agg(c.relname ORDER BY c.relname), '{{}}'),
         coalesce(array_agg(pg_get_indexdef(i.indexrelid) ORDER BY c.relname), '{{}}')
    INTO index_names, index_defs
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
   WHERE i.indrelid = {table_regclass}::regclass AND NOT i.indisprimary AND c.relname <> {before_key_name};
  last_id := pg_sequence_last_value(pg_get_serial_sequence({table_regclass}, 'id')::regclass);
  ALTER TABLE {table} RENAME TO {before};
  ALTER TABLE {before} DROP CONSTRAINT {table_key};
  ALTER TABLE {before} ADD CONSTRAINT {before_key} PRIMARY KEY USING INDEX {before_key};
  FOR i IN 1 .. coalesce(array_length(index_names, 1), 0) LOOP
    EXECUTE format('ALTER INDEX public.%I RENAME TO %I', index_names[i], left(index_names[i], 54) || {suffix});
  END LOOP;
  CREATE TABLE {table} (LIKE {before} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED
    INCLUDING IDENTITY INCLUDING COMMENTS INCLUDING STORAGE INCLUDING COMPRESSION) PARTITION BY RANGE (created_at);
  ALTER TABLE {table} DROP CONSTRAINT {check};
  -- The identity goes on above every id the old table handed out, then takes the old sequence's name.
  IF last_id IS NOT NULL THEN
    PERFORM setval(pg_get_serial_sequence({table_regclass}, 'id'), last_id);
  END IF;
  ALTER TABLE {before} ALTER COLUMN id DROP IDENTITY;
  EXECUTE format('ALTER SEQUENCE %s RENAME TO %I', pg_get_serial_sequence({table_regclass}, 'id'), {sequence});
  ALTER TABLE {table} ADD CONSTRAINT {table_key} PRIMARY KEY (id, created_at);
  FOR i IN 1 .. coalesce(array_length(index_defs, 1), 0) LOOP
    EXECUTE replace(index_defs[i], ' ON public.' || quote_ident({table_name}) || ' USING ',
                    ' ON ONLY public.' || quote_ident({table_name}) || ' USING ');
  END LOOP;
  ALTER TABLE {table} ATTACH PARTITION {before} FOR VALUES FROM (MINVALUE) TO ({bound});
  ALTER TABLE {before} DROP CONSTRAINT {check};
  IF EXISTS (SELECT FROM pg_index WHERE indrelid = {table_regclass}::regclass AND NOT indisvalid) THEN
    RAISE EXCEPTION 'an index of % did not attach to the partition %', {table_name}, {before_name};
  END IF;
END $swap$"""
    ).format(
        table=sql.Identifier(table),
        table_name=sql.Literal(table),
        table_regclass=sql.Literal(f"public.{table}"),
        before=sql.Identifier(before),
        before_name=sql.Literal(before),
        before_key=sql.Identifier(f"{before}_pkey"),
        before_key_name=sql.Literal(f"{before}_pkey"),
        table_key=sql.Identifier(f"{table}_pkey"),
        suffix=sql.Literal(BEFORE_SUFFIX),
        check=sql.Identifier(_bound_check(table)),
        sequence=sql.Literal(f"{table}_id_seq"),
        bound=sql.Literal(boundary.isoformat()),
    )
    timeout = sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(SWAP_LOCK_TIMEOUT)).as_string()
    return ["BEGIN", timeout, body.as_string(), "COMMIT"]


def _swap_with_retries(table: str, boundary: datetime) -> None:
    """A lock not granted within the timeout is given up (queued INSERTs go on) and tried again."""
    connection = op.get_bind()
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            started = time.monotonic()
            for statement in _swap(table, boundary):
                partitions.run(connection, statement)
            # From BEGIN to COMMIT: the lock's wait (at most the lock_timeout) and its hold.
            held_ms = (time.monotonic() - started) * 1000
            log.info(
                "%s partitioned in place (boundary %s); locked for at most %.0f ms",
                table,
                boundary.isoformat(),
                held_ms,
                extra={"lock_held_ms": held_ms},
            )
            return
        except OperationalError as error:
            partitions.run(connection, "ROLLBACK")
            if getattr(error.orig, "sqlstate", None) != "55P03" or attempt == SWAP_ATTEMPTS:
                raise


def refuse_downgrade(table: str) -> None:
    raise ConversionRefusedError(
        f"logs_0004 is not downgraded: {table} would have to be rewritten into one table, every row "
        "copied under a lock that stops the writers. To go back, restore a backup taken before logs_0004."
    )
