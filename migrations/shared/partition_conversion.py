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

Offline (`--sql`), the same statements are printed, with the boundary as of the rendering, each one
safe to run again: a step already done (the table is partitioned, the CHECK is there or validated, a
partition attached) is skipped, so a script cut short, or run twice, completes when run again.

This module imports no model/ code and not env.py's environment: logs_0004 passes its own frozen
intervals in (partitions.Interval), and the lock_timeout put back is the run's (concurrent_index).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from alembic import op
from psycopg import sql
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from migrations.shared import partitions
from migrations.shared.concurrent_index import drop_if_invalid, rerunnable_build, session_lock_timeout, set_lock_timeout
from migrations.shared.partitions import Interval

log = logging.getLogger(__name__)
BEFORE_SUFFIX = "_p_before"
SWAP_LOCK_TIMEOUT = "1s"
SWAP_ATTEMPTS = 20
SWAP_PAUSE_S = 0.5  # between two attempts: the writers queued behind the last one catch up
GIVE_UP_DROP_WAIT_S = 300.0
"""How long a conversion that gave up tries to drop its CHECK: the reader that outlasted every swap
may still hold the table, and DROP CONSTRAINT needs the same lock the swap did."""
STALE_WITHIN = timedelta(hours=12)
"""A boundary nearer than this is not used: its CHECK would soon refuse rows of the present."""


class ConversionRefusedError(RuntimeError):
    """What a downgrade or a damaged table would need is not something this revision does."""


class BoundCheckLeftError(RuntimeError):
    """A conversion gave up and could not drop its CHECK, which will refuse the writers' rows."""


def before_partition(table: str) -> str:
    return f"{table}{BEFORE_SUFFIX}"


def convert(table: str, interval: Interval, premake: timedelta) -> None:
    """Partition `table` by `interval` on created_at, in place, and make partitions `premake` ahead."""
    context = op.get_context()
    now = datetime.now(UTC)
    lock_timeout = session_lock_timeout()
    if context.as_sql:
        # Outside the revision's transaction, as online: CONCURRENTLY refuses a transaction block,
        # and the swap brings its own BEGIN and COMMIT.
        boundary = first_boundary(interval, now, newest_row=None)
        with context.autocommit_block():
            for statement in _offline_steps(table, now, boundary, lock_timeout):
                op.execute(statement)
            for statement in partitions.statements(table, interval, boundary, max(boundary, now + premake)):
                op.execute(statement)
        return
    with context.autocommit_block():
        connection = op.get_bind()
        partitions.utc_session(connection)
        if not partitions.is_partitioned(connection, table):
            boundary = _boundary(connection, table, interval, now)
            drop_if_invalid(_key_name(table))  # a killed build's leftover, dropped CONCURRENTLY
            for statement in _build_key(table):
                partitions.run(connection, statement)
            partitions.with_lock_retries(connection, _add_check(table, boundary))
            for statement in _validate(table):
                partitions.run(connection, statement)
            _swap_with_retries(connection, table, boundary)
            partitions.run(connection, set_lock_timeout(lock_timeout))
        partitions.create_through(connection, table, interval, now + premake)


def _offline_steps(table: str, rendered: datetime, boundary: datetime, lock_timeout: str) -> list[str]:
    """Steps 1 to 3 for the reviewer's script; each statement is skipped once its step is done."""
    key = (_key_name(table), _key_build(table))
    return [
        _fresh_enough(table, rendered, boundary),
        "SET max_parallel_maintenance_workers = 0",
        *rerunnable_build(table, [key], lock_timeout),
        "RESET max_parallel_maintenance_workers",
        _add_check(table, boundary),
        "SET lock_timeout = 0",  # VALIDATE reads the table under a lock no INSERT waits on
        _validate_unless_done(table),
        *_swap(table, boundary),
        set_lock_timeout(lock_timeout),
    ]


def _is_plain(table: str) -> sql.Composed:
    """A DO block's condition: `table` is still the unpartitioned table (not yet swapped)."""
    return sql.SQL("(SELECT relkind FROM pg_class WHERE oid = to_regclass({})) = 'r'").format(
        sql.Literal(f"public.{table}")
    )


def first_boundary(interval: Interval, now: datetime, newest_row: datetime | None) -> datetime:
    """Where the old table's range ends: after tomorrow's partition start, and after every row."""
    boundary = interval.after(interval.start_of(now + timedelta(days=1)))
    if newest_row is not None and newest_row >= boundary:
        boundary = interval.after(interval.start_of(newest_row))
    return boundary


def _boundary(connection: Connection, table: str, interval: Interval, now: datetime) -> datetime:
    """The boundary a killed earlier run chose (its CHECK says) unless it is near, else a new one.

    The CHECK applies to every new row even before it is validated: one whose boundary is nearer
    than STALE_WITHIN would soon refuse the writers' rows, so it is dropped and another chosen.
    """
    check = connection.exec_driver_sql(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s",
        (f"public.{table}", _bound_check(table)),
    ).scalar()
    if check is not None:
        chosen = datetime.fromisoformat(check.split("'")[1]).astimezone(UTC)
        if chosen - now >= STALE_WITHIN:
            return chosen
        partitions.with_lock_retries(connection, _drop_check(table))
    newest = connection.exec_driver_sql(
        sql.SQL("SELECT max(created_at) FROM {}").format(sql.Identifier(table)).as_string()
    ).scalar()
    return first_boundary(interval, now, newest)


def _bound_check(table: str) -> str:
    return f"{before_partition(table)}_bound"


def _key_name(table: str) -> str:
    return f"{before_partition(table)}_pkey"


def _build_key(table: str) -> list[str]:
    """Step 1: the unique (id, created_at) the partition's key will use, built without blocking writers."""
    return [
        "SET max_parallel_maintenance_workers = 0",
        "SET lock_timeout = 0",  # a concurrent build waits for old transactions, blocking no one
        _key_build(table),
        "RESET max_parallel_maintenance_workers",
    ]


def _key_build(table: str) -> str:
    build = sql.SQL("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} (id, created_at)")
    return build.format(sql.Identifier(_key_name(table)), sql.Identifier(table)).as_string()


def _add_check(table: str, boundary: datetime) -> str:
    """Step 2a: the CHECK, NOT VALID (a moment's ACCESS EXCLUSIVE), unless an earlier run added it."""
    return (
        sql.SQL(
            "DO $check$ BEGIN SET LOCAL lock_timeout = {timeout}; IF {plain} AND NOT EXISTS (SELECT FROM "
            "pg_constraint WHERE conrelid = {regclass}::regclass AND conname = {check_name}) THEN ALTER TABLE {table} "
            "ADD CONSTRAINT {check} CHECK (created_at < {bound}) NOT VALID; END IF; END $check$"
        )
        .format(
            timeout=sql.Literal(SWAP_LOCK_TIMEOUT),
            plain=_is_plain(table),
            regclass=sql.Literal(f"public.{table}"),
            check_name=sql.Literal(_bound_check(table)),
            table=sql.Identifier(table),
            check=sql.Identifier(_bound_check(table)),
            bound=sql.Literal(boundary.isoformat()),
        )
        .as_string()
    )


def _validate(table: str) -> list[str]:
    """Step 2b: every row read against the CHECK under SHARE UPDATE EXCLUSIVE, which no INSERT waits on."""
    validate = sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}")
    return [
        "SET lock_timeout = 0",
        validate.format(sql.Identifier(table), sql.Identifier(_bound_check(table))).as_string(),
    ]


def _validate_unless_done(table: str) -> str:
    """Offline step 2b: VALIDATE only the CHECK on the plain table that is not validated yet."""
    return (
        sql.SQL(
            "DO $validate$ BEGIN IF {plain} AND EXISTS (SELECT FROM pg_constraint WHERE conrelid = {regclass} "
            "AND conname = {check_name} AND NOT convalidated) THEN ALTER TABLE {table} VALIDATE CONSTRAINT {check}; "
            "END IF; END $validate$"
        )
        .format(
            plain=_is_plain(table),
            regclass=sql.SQL("to_regclass({})").format(sql.Literal(f"public.{table}")),
            check_name=sql.Literal(_bound_check(table)),
            table=sql.Identifier(table),
            check=sql.Identifier(_bound_check(table)),
        )
        .as_string()
    )


def _drop_check(table: str) -> str:
    drop = sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}")
    return drop.format(sql.Identifier(table), sql.Identifier(_bound_check(table))).as_string()


def _fresh_enough(table: str, rendered: datetime, boundary: datetime) -> str:
    """An offline script's CHECK would refuse rows once its boundary is near: it stops if run too late
    (and the table is not converted yet: a late rerun of a script that converted it has nothing to do)."""
    latest = boundary - STALE_WITHIN
    message = (
        f"this script was rendered on {rendered:%Y-%m-%d %H:%M} UTC with a boundary of {boundary:%Y-%m-%d} for "
        f"{table} and must run before {latest:%Y-%m-%d %H:%M} UTC: render it again (scripts/migrate STACK logs --sql)"
    )
    return (
        sql.SQL("DO $fresh$ BEGIN IF now() > {latest} AND {plain} THEN RAISE EXCEPTION {message}; END IF; END $fresh$")
        .format(latest=sql.Literal(latest.isoformat()), plain=_is_plain(table), message=sql.Literal(message))
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
  granted record;
BEGIN
  -- Once swapped, the table is partitioned: a second run of this statement has nothing to do.
  IF {plain} THEN
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
    -- LIKE copies no privileges: what was granted on the old table by name is granted on its successor,
    -- and what the successor has (the owner's default privileges) on the old table, now its partition,
    -- so every partition is granted as the parent is (a table made outside the tree, scripts/adopt,
    -- had none of the runtime roles' grants, which the deploy gives the parent after this run).
    FOR granted IN
      SELECT c.relname AS source,
             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee,
             a.privilege_type
      FROM pg_class c, aclexplode(c.relacl) a
      WHERE c.oid IN ({before_regclass}::regclass, {table_regclass}::regclass) AND a.grantee <> c.relowner
    LOOP
      EXECUTE format('GRANT %s ON TABLE public.%I TO %s', granted.privilege_type,
                     CASE WHEN granted.source = {table_name} THEN {before_name} ELSE {table_name} END, granted.grantee);
    END LOOP;
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
  END IF;
END $swap$"""
    ).format(
        plain=_is_plain(table),
        table=sql.Identifier(table),
        table_name=sql.Literal(table),
        table_regclass=sql.Literal(f"public.{table}"),
        before=sql.Identifier(before),
        before_name=sql.Literal(before),
        before_regclass=sql.Literal(f"public.{before}"),
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


def _swap_with_retries(connection: Connection, table: str, boundary: datetime) -> None:
    """A lock not granted within the timeout is given up (queued INSERTs go on) and tried again.

    When every attempt fails, the CHECK is dropped before the error is raised: left in place, it
    would refuse the writers' rows once its boundary passes (_drop_check_after_giving_up).
    """
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
            if getattr(error.orig, "sqlstate", None) != "55P03":
                raise
            if attempt == SWAP_ATTEMPTS:
                _drop_check_after_giving_up(connection, table, boundary)
                raise
            time.sleep(SWAP_PAUSE_S)


def _drop_check_after_giving_up(connection: Connection, table: str, boundary: datetime) -> None:
    """Drop the CHECK once the table's lock is free, waiting at most SWAP_LOCK_TIMEOUT at a time.

    The reader that outlasted every swap may hold the table a while longer: each try queues a
    writer for a moment at most (as each swap did), and the tries go on for GIVE_UP_DROP_WAIT_S.
    If the table is still held then, the error names the CHECK, when it starts refusing rows, and
    what drops it.
    """
    deadline = time.monotonic() + GIVE_UP_DROP_WAIT_S
    while True:
        try:
            partitions.with_lock_retries(connection, _drop_check(table))
            return
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != "55P03":
                raise
            if time.monotonic() >= deadline:
                raise BoundCheckLeftError(
                    f"{table} was held by another transaction past every swap and for {GIVE_UP_DROP_WAIT_S:.0f} s "
                    f"more, so the CHECK {_bound_check(table)} is still on it and refuses rows dated from "
                    f"{boundary.isoformat()} on: end that transaction (pg_stat_activity) and run the logs tree again "
                    f"(it converts the table, or drops the CHECK if it gives up again), or run {_drop_check(table)}"
                ) from None
            time.sleep(SWAP_PAUSE_S)


def refuse_downgrade(table: str) -> None:
    raise ConversionRefusedError(
        f"logs_0004 is not downgraded: {table} would have to be rewritten into one table, every row "
        "copied under a lock that stops the writers. To go back, restore a backup taken before logs_0004."
    )
