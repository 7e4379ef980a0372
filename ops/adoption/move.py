"""Move a misplaced table's rows into the right database: lossless, restartable, one short lock.

The rows go over in batches, in primary-key order. Each batch is one transaction in the destination:
the rows, the map from each source id to the id the destination gave it, and the watermark (the
last source id moved) commit together, so a kill at any moment leaves the whole batch or none of it,
and the next run goes on from the watermark. Nothing is written to the source database until the end.

1. Batches until the source has no row above the watermark.
2. The check: every source row up to the watermark is in the map once, with the same content
   (count and checksum). A row the map lacks (its id was taken before the watermark's, but it
   committed after that batch had read: concurrent writers commit out of order) is copied now.
3. The final step, in one source transaction: ACCESS EXCLUSIVE on the table (waited for at most
   LOCK_WAIT; every open writer has finished once it is granted), the rows written since, a count
   of the rows above what step 2 checked, and the table moved out of `public` into RETIRED_SCHEMA.
   The lock is held for that only, whatever the table's size. It is kept there, never dropped: a
   writer still aimed at the wrong database fails loudly instead of writing on unnoticed.
4. After the lock: step 2 again over the retired table, now that nothing can write to it; then
   the move is marked finished. A run killed before that repeats this step (the plan lists it).
"""

from __future__ import annotations

import enum
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ops.adoption.catalog import Table
from ops.adoption.move_progress import MOVED_ROWS, MOVES, ensure_progress_tables, mark_finished, read_progress
from ops.adoption.server_access import AdminAccess
from ops.errors import ExitCode, UserError

RETIRED_SCHEMA = "headhunter_retired"
BATCH_ROWS = 50_000
LOCK_WAIT = "2s"
LOCK_ATTEMPTS = 5
FINAL_STEP_MAX_ROWS = 5_000
"""Rows left to move above which another unlocked pass runs before the lock is asked for."""
CATCH_UP_PASSES = 20
KILL_AT_ENV_VAR = "HEADHUNTER_ADOPT_KILL_AT"
"""Tests only: the step (a KillPoint value) at which the move kills its own process."""
Say = Callable[[str], None]
Connection = psycopg.Connection[Any]


class KillPoint(enum.StrEnum):
    BATCH_COMMITTED = "batch-committed"
    LAST_ROWS_COMMITTED = "last-rows-committed"
    """Under the lock: the last rows are in the destination, the source's retire not yet committed."""
    RETIRED = "retired"


@dataclass(frozen=True)
class MoveSpec:
    table: str
    source_database: str
    target_database: str
    key: str
    """The single-column primary key the batches follow (an identity column in both databases)."""
    columns: tuple[str, ...]
    """Every column but the key and generated ones: what is copied and what the checksum covers."""


@dataclass(frozen=True)
class MoveReport:
    rows: int
    seconds: float
    lock_wait_s: float
    lock_held_s: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Checksum:
    rows: int
    total: int


def spec_for(table: Table, source_database: str, target_database: str) -> MoveSpec:
    """Batches follow the table's identity column; generated columns are left to the destination."""
    keys = [column.name for column in table.columns if column.identity]
    if len(keys) != 1:
        raise UserError(f"{source_database}.{table.name} has no single identity column to move its rows by.")
    columns = tuple(column.name for column in table.columns if not column.identity and not column.generated)
    return MoveSpec(table.name, source_database, target_database, keys[0], columns)


def move_table(admin: AdminAccess, spec: MoveSpec, say: Say) -> MoveReport:
    started = time.monotonic()
    with _session(admin, spec.target_database, autocommit=False) as target:
        ensure_progress_tables(target)
        rows_before = read_progress(target, spec.source_database, spec.table).rows
        with _session(admin, spec.source_database) as source:
            _catch_up(source, target, spec, say)
            checked = check_and_repair(source, target, spec, "public", say)
        wait_s, held_s = _final_step(admin, target, spec, say, checked)
        finish_retired(admin, target, spec, say)
        moved = read_progress(target, spec.source_database, spec.table).rows - rows_before
    return MoveReport(moved, time.monotonic() - started, wait_s, held_s)


def finish_retired(admin: AdminAccess, target: Connection, spec: MoveSpec, say: Say) -> None:
    """Step 4: the retired table, which nothing writes to any more, checked whole; then finished."""
    with _session(admin, spec.source_database) as source:
        check_and_repair(source, target, spec, RETIRED_SCHEMA, say)
    mark_finished(target, spec.source_database, spec.table)


def _session(admin: AdminAccess, database: str, autocommit: bool = True) -> Connection:
    """Row text (the checksum's input) must not depend on a database's own time zone or date style."""
    connection = admin.connect(database, autocommit=autocommit)
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET DateStyle = 'ISO, YMD'")
    connection.execute("SET IntervalStyle = 'postgres'")
    connection.execute("SET extra_float_digits = 3")
    if not autocommit:
        connection.commit()
    return connection


def _catch_up(source: Connection, target: Connection, spec: MoveSpec, say: Say) -> None:
    """Batches until one comes back short: no more rows above the watermark than it read."""
    started = time.monotonic()
    expected = _rows_after(source, spec, read_progress(target, spec.source_database, spec.table).watermark)
    say(f"moving {spec.table}: {expected:,} rows from {spec.source_database} to {spec.target_database}")
    done = 0
    while True:
        copied = copy_batch(source, target, spec, BATCH_ROWS)
        done += copied
        say(_progress_line(spec, done, expected, time.monotonic() - started))
        if copied < BATCH_ROWS:
            return


def _progress_line(spec: MoveSpec, done: int, expected: int, elapsed: float) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    left = max(expected - done, 0)
    estimate = f", about {left / rate:.0f} s left" if rate > 0 and left else ""
    return f"  {spec.table}: {done:,} rows moved ({rate:,.0f} rows/s{estimate})"


def _rows_after(source: Connection, spec: MoveSpec, watermark: int) -> int:
    query = sql.SQL("SELECT count(*) FROM {} WHERE {} > %s").format(_in("public", spec), sql.Identifier(spec.key))
    row = source.execute(query, (watermark,)).fetchone()
    assert row is not None
    return int(row[0])


def copy_batch(source: Connection, target: Connection, spec: MoveSpec, limit: int) -> int:
    """The next `limit` rows above the watermark, in one destination transaction with map and watermark."""
    watermark = read_progress(target, spec.source_database, spec.table).watermark
    where = sql.SQL("{key} > {mark} ORDER BY {key} LIMIT {limit}").format(
        key=sql.Identifier(spec.key), mark=sql.Literal(watermark), limit=sql.Literal(limit)
    )
    copied = _copy_rows(source, target, spec, "public", where, advance_watermark=True)
    _kill_point(KillPoint.BATCH_COMMITTED)
    return copied


def _copy_rows(
    source: Connection, target: Connection, spec: MoveSpec, schema: str, where: sql.Composable, advance_watermark: bool
) -> int:
    """Rows of the source matching `where` into the destination, each given a new id, with the map."""
    staging = _fill_staging(source, target, spec, schema, where)
    inserted = target.execute(
        sql.SQL(
            "WITH mapped AS (INSERT INTO {map} SELECT %s, %s, source_id, "
            "nextval(pg_get_serial_sequence({table}, {key})) FROM {staging} ORDER BY source_id "
            "ON CONFLICT DO NOTHING RETURNING source_id, target_id) "
            "INSERT INTO {destination} ({id}, {columns}) OVERRIDING SYSTEM VALUE "
            "SELECT m.target_id, {staged} FROM mapped m JOIN {staging} s USING (source_id) RETURNING 1"
        ).format(
            map=MOVED_ROWS,
            table=sql.Literal(f"public.{spec.table}"),
            key=sql.Literal(spec.key),
            staging=staging,
            destination=_in("public", spec),
            id=sql.Identifier(spec.key),
            columns=_columns(spec.columns),
            staged=_columns(spec.columns, "s"),
        ),
        (spec.source_database, spec.table),
    ).rowcount
    target.execute(
        sql.SQL(
            "UPDATE {moves} SET rows_moved = rows_moved + %s, watermark = CASE WHEN %s THEN "
            "coalesce((SELECT max(source_id) FROM {staging}), watermark) ELSE watermark END "
            "WHERE source_database = %s AND source_table = %s"
        ).format(moves=MOVES, staging=staging),
        (inserted, advance_watermark, spec.source_database, spec.table),
    )
    target.commit()
    return inserted


def _fill_staging(
    source: Connection, target: Connection, spec: MoveSpec, schema: str, where: sql.Composable
) -> sql.Identifier:
    """COPY the rows, binary, from the source into a temporary table of the destination's session."""
    staging = sql.Identifier("adoption_staging")
    columns = _columns(spec.columns)
    target.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
            "SELECT {key} AS source_id, {columns} FROM {table} WITH NO DATA"
        ).format(staging=staging, key=sql.Identifier(spec.key), columns=columns, table=_in("public", spec))
    )
    select = sql.SQL("COPY (SELECT {key}, {columns} FROM {table} WHERE {where}) TO STDOUT (FORMAT BINARY)").format(
        key=sql.Identifier(spec.key), columns=columns, table=_in(schema, spec), where=where
    )
    with (
        source.cursor().copy(select) as rows_out,
        target.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(staging)) as rows_in,
    ):
        for data in rows_out:
            rows_in.write(data)
    return staging


def check_and_repair(
    source: Connection, target: Connection, spec: MoveSpec, schema: str, say: Say, after: int = 0
) -> int:
    """Step 2 over the source rows (in `schema`) above `after` up to the watermark; returns the watermark.

    `after` > 0 checks only what a later pass moved, so a pass costs what it moved, not the table."""
    watermark = read_progress(target, spec.source_database, spec.table).watermark
    expected = source_checksum(source, spec, schema, after, watermark)
    actual = moved_checksum(target, spec, after, watermark)
    if expected.rows > actual.rows:
        repaired = _copy_missing(source, target, spec, schema, after, watermark)
        say(f"  {spec.table}: {repaired:,} rows committed after their batch had read past them, moved now")
        actual = moved_checksum(target, spec, after, watermark)
    if expected != actual:
        raise UserError(
            f"the rows of {spec.table} moved to {spec.target_database} differ from {spec.source_database}'s (source "
            f"{expected.rows:,} rows, checksum {expected.total}; moved {actual.rows:,}, checksum {actual.total}): "
            f"rows were changed or deleted in {spec.source_database} after they were moved. Nothing was retired; "
            f"compare them through the map {MOVED_ROWS.as_string()} and run again.",
            ExitCode.VERIFY_FAILED,
        )
    return watermark


def _copy_missing(source: Connection, target: Connection, spec: MoveSpec, schema: str, after: int, up_to: int) -> int:
    """The source rows in (`after`, `up_to`] that the map lacks: each source id compared, in the destination."""
    target.execute("CREATE TEMP TABLE IF NOT EXISTS adoption_source_ids (id bigint) ON COMMIT DROP")
    key = sql.Identifier(spec.key)
    ids = sql.SQL(
        "COPY (SELECT {key} FROM {table} WHERE {key} > {after} AND {key} <= {up_to}) TO STDOUT (FORMAT BINARY)"
    ).format(key=key, table=_in(schema, spec), after=sql.Literal(after), up_to=sql.Literal(up_to))
    with (
        source.cursor().copy(ids) as ids_out,
        target.cursor().copy("COPY adoption_source_ids FROM STDIN (FORMAT BINARY)") as ids_in,
    ):
        for data in ids_out:
            ids_in.write(data)
    missing = [
        row[0]
        for row in target.execute(
            sql.SQL(
                "SELECT s.id FROM adoption_source_ids s WHERE NOT EXISTS (SELECT FROM {} m WHERE "
                "m.source_database = %s AND m.source_table = %s AND m.source_id = s.id)"
            ).format(MOVED_ROWS),
            (spec.source_database, spec.table),
        ).fetchall()
    ]
    target.commit()
    if not missing:
        return 0
    where = sql.SQL("{} = ANY({})").format(sql.Identifier(spec.key), sql.Literal(missing))
    return _copy_rows(source, target, spec, schema, where, advance_watermark=False)


def source_checksum(source: Connection, spec: MoveSpec, schema: str, after: int, up_to: int) -> Checksum:
    """Count and checksum of the source rows with `after` < key <= `up_to`."""
    query = sql.SQL(
        "SELECT count(*), coalesce(sum(hashtextextended(ROW({columns})::text, 0)), 0) FROM {table} AS t "
        "WHERE t.{key} > %s AND t.{key} <= %s"
    ).format(columns=_columns(spec.columns, "t"), table=_in(schema, spec), key=sql.Identifier(spec.key))
    row = source.execute(query, (after, up_to)).fetchone()
    assert row is not None
    return Checksum(int(row[0]), int(row[1]))


def moved_checksum(target: Connection, spec: MoveSpec, after: int, up_to: int | None = None) -> Checksum:
    """Count and checksum, in the destination, of the rows moved from source keys in (`after`, `up_to`]."""
    query = sql.SQL(
        "SELECT count(*), coalesce(sum(hashtextextended(ROW({columns})::text, 0)), 0) FROM {map} AS m "
        "JOIN {table} AS t ON t.{key} = m.target_id WHERE m.source_database = %s AND m.source_table = %s "
        "AND m.source_id > %s AND (%s::bigint IS NULL OR m.source_id <= %s)"
    ).format(
        columns=_columns(spec.columns, "t"), map=MOVED_ROWS, table=_in("public", spec), key=sql.Identifier(spec.key)
    )
    row = target.execute(query, (spec.source_database, spec.table, after, up_to, up_to)).fetchone()
    target.commit()
    assert row is not None
    return Checksum(int(row[0]), int(row[1]))


def _final_step(admin: AdminAccess, target: Connection, spec: MoveSpec, say: Say, checked: int) -> tuple[float, float]:
    """Step 3; returns (lock wait, lock held) in seconds."""
    lock_attempts = passes = 0
    while lock_attempts < LOCK_ATTEMPTS:
        with _session(admin, spec.source_database) as source:
            left = _rows_after(source, spec, read_progress(target, spec.source_database, spec.table).watermark)
            if left > FINAL_STEP_MAX_ROWS and passes < CATCH_UP_PASSES:
                passes += 1
                say(f"  {spec.table}: {left:,} rows arrived meanwhile; moving them before the lock")
                _catch_up(source, target, spec, say)
                checked = check_and_repair(source, target, spec, "public", say, after=checked)
                continue
        lock_attempts += 1
        times = _retire_under_lock(admin, target, spec, checked)
        if times is not None:
            say(
                f"  {spec.table}: retired to {spec.source_database}.{RETIRED_SCHEMA}.{spec.table}; "
                f"lock waited {times[0]:.3f} s, held {times[1]:.3f} s"
            )
            return times
        say(f"  {spec.table}: other sessions kept the table for {LOCK_WAIT} (attempt {lock_attempts}/{LOCK_ATTEMPTS})")
    raise UserError(
        f"{spec.source_database}.{spec.table}: other sessions held the table through {LOCK_ATTEMPTS} waits of "
        f"{LOCK_WAIT}: the rows moved so far are kept; find the long transaction (pg_stat_activity) and run again.",
        ExitCode.DEPLOY_FAILED,
    )


def _retire_under_lock(
    admin: AdminAccess, target: Connection, spec: MoveSpec, checked: int
) -> tuple[float, float] | None:
    """One source transaction: lock, the last rows, their count, the retire. None when the lock was not granted."""
    with _session(admin, spec.source_database, autocommit=False) as source:
        source.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_WAIT)))
        asked = time.monotonic()
        try:
            source.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(_in("public", spec)))
        except psycopg.errors.LockNotAvailable:
            source.rollback()
            return None
        locked = time.monotonic()
        while copy_batch(source, target, spec, BATCH_ROWS) == BATCH_ROWS:
            pass
        _kill_point(KillPoint.LAST_ROWS_COMMITTED)
        _count_since_check(source, target, spec, checked)
        retire_table(source, spec.table)
        source.commit()
        held = time.monotonic() - locked
    _kill_point(KillPoint.RETIRED)
    return locked - asked, held


def _count_since_check(source: Connection, target: Connection, spec: MoveSpec, checked: int) -> None:
    """Under the lock, bounded by the rows since the check: the source's rows above it all in the map."""
    in_source = _rows_after(source, spec, checked)
    moved = moved_checksum(target, spec, checked).rows
    if in_source != moved:
        raise UserError(
            f"{spec.source_database}.{spec.table} holds {in_source:,} rows above id {checked} but {moved:,} of them "
            "were moved: the table stays where it is and nothing was retired; run again.",
            ExitCode.VERIFY_FAILED,
        )


def retire_table(connection: Connection, table: str) -> None:
    """Out of `public`, kept: the application's unqualified name no longer finds it."""
    connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(RETIRED_SCHEMA)))
    connection.execute(
        sql.SQL("ALTER TABLE IF EXISTS {} SET SCHEMA {}").format(
            sql.Identifier("public", table), sql.Identifier(RETIRED_SCHEMA)
        )
    )


def retired_not_owned_by(connection: Connection, owner: str) -> tuple[str, ...]:
    """What in RETIRED_SCHEMA a role other than `owner` owns: "" for the schema itself (sorted first), then tables.

    A retired table keeps the owner it had in `public`, the legacy role: a role the stack keeps would
    still own it (and could move it back), and verify would find that role holding something here.
    """
    rows = connection.execute(
        "SELECT '' FROM pg_namespace WHERE nspname = %(schema)s AND pg_get_userbyid(nspowner) <> %(owner)s "
        "UNION ALL SELECT c.relname FROM pg_class c WHERE c.relnamespace = to_regnamespace(%(schema)s) "
        "AND c.relkind IN ('r', 'p') AND pg_get_userbyid(c.relowner) <> %(owner)s ORDER BY 1",
        {"schema": RETIRED_SCHEMA, "owner": owner},
    ).fetchall()
    return tuple(name for (name,) in rows)


def _kill_point(step: KillPoint) -> None:
    if os.environ.get(KILL_AT_ENV_VAR) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _in(schema: str, spec: MoveSpec) -> sql.Composable:
    return sql.Identifier(schema, spec.table)


def _columns(columns: tuple[str, ...], alias: str | None = None) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(alias, column) if alias else sql.Identifier(column) for column in columns)
