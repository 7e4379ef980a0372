"""Move a misplaced table's rows into the right database: lossless, restartable, one short lock.

The rows go over in batches, in primary-key order. Each batch is one transaction in the destination:
the rows, the map from each source id to the id the destination gave it, and the watermark (the last
source id moved) commit together, so a kill at any moment leaves either the whole batch or none of
it, and the next run goes on from the watermark. Nothing is written to the source database until
the end.

The end: the moved rows are checked against the source by count and a checksum of their content;
then the source table is locked (ACCESS EXCLUSIVE, waiting at most LOCK_WAIT), the rows written
since are moved, the whole table is counted against the map, and the table is moved out of `public`
into RETIRED_SCHEMA, in the same transaction. It is kept there, never dropped: a writer still aimed
at the wrong database then fails loudly ("relation does not exist") instead of writing on unnoticed.
A kill before that transaction commits leaves the table in place for the next run to finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ops.adoption.catalog import Table
from ops.adoption.server_access import AdminAccess
from ops.errors import ExitCode, UserError

PROGRESS_SCHEMA = "headhunter_adoption"
RETIRED_SCHEMA = "headhunter_retired"
BATCH_ROWS = 50_000
LOCK_WAIT = "2s"
LOCK_ATTEMPTS = 5
FINAL_STEP_MAX_ROWS = 5_000
"""Rows left to catch up above which the final step does another unlocked pass first."""


@dataclass(frozen=True)
class MoveSpec:
    table: str
    source_database: str
    target_database: str
    key: str
    """The single-column primary key the batches follow (an identity column in both databases)."""
    columns: tuple[str, ...]
    """Every column but the key and generated ones: what is copied and what the checksum covers."""


def spec_for(table: Table, source_database: str, target_database: str) -> MoveSpec:
    """Batches follow the table's identity column; generated columns are left to the destination."""
    keys = [column.name for column in table.columns if column.identity]
    if len(keys) != 1:
        raise UserError(f"{source_database}.{table.name} has no single identity column to move its rows by.")
    columns = tuple(column.name for column in table.columns if not column.identity and not column.generated)
    return MoveSpec(table.name, source_database, target_database, keys[0], columns)


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


def move_table(admin: AdminAccess, spec: MoveSpec, say: Callable[[str], None]) -> MoveReport:
    started = time.monotonic()
    with admin.connect(spec.target_database, autocommit=False) as target:
        ensure_progress_tables(target)
        moved_before = _progress(target, spec)[1]
        with admin.connect(spec.source_database) as source:
            remaining = _rows_after(source, spec, _progress(target, spec)[0])
            say(f"moving {spec.table}: {remaining:,} rows from {spec.source_database} to {spec.target_database}")
            _catch_up(source, target, spec, say, remaining, started)
            checked = _check(source, target, spec)
            wait_s, held_s = _final_step(admin, target, spec, say, checked)
        moved = _progress(target, spec)[1] - moved_before
    return MoveReport(moved, time.monotonic() - started, wait_s, held_s)


def ensure_progress_tables(target: psycopg.Connection[Any]) -> None:
    """In the destination database, in a schema of the admin's own that no other role can use."""
    target.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(PROGRESS_SCHEMA)))
    target.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.moves (source_database text, source_table text, "
            "watermark bigint NOT NULL DEFAULT 0, rows_moved bigint NOT NULL DEFAULT 0, finished_at timestamptz, "
            "PRIMARY KEY (source_database, source_table))"
        ).format(sql.Identifier(PROGRESS_SCHEMA))
    )
    target.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.moved_rows (source_database text, source_table text, source_id bigint, "
            "target_id bigint NOT NULL, PRIMARY KEY (source_database, source_table, source_id))"
        ).format(sql.Identifier(PROGRESS_SCHEMA))
    )
    target.commit()


def finished(target: psycopg.Connection[Any], source_database: str, table: str) -> bool:
    row = target.execute(
        sql.SQL("SELECT finished_at IS NOT NULL FROM {}.moves WHERE source_database = %s AND source_table = %s").format(
            sql.Identifier(PROGRESS_SCHEMA)
        ),
        (source_database, table),
    ).fetchone()
    return bool(row and row[0])


def _progress(target: psycopg.Connection[Any], spec: MoveSpec) -> tuple[int, int]:
    """(watermark, rows moved so far), creating the table's progress row on the first run."""
    moves = sql.Identifier(PROGRESS_SCHEMA, "moves")
    target.execute(
        sql.SQL("INSERT INTO {} (source_database, source_table) VALUES (%s, %s) ON CONFLICT DO NOTHING").format(moves),
        (spec.source_database, spec.table),
    )
    row = target.execute(
        sql.SQL("SELECT watermark, rows_moved FROM {} WHERE source_database = %s AND source_table = %s").format(moves),
        (spec.source_database, spec.table),
    ).fetchone()
    target.commit()
    assert row is not None
    return int(row[0]), int(row[1])


def _rows_after(source: psycopg.Connection[Any], spec: MoveSpec, watermark: int) -> int:
    query = sql.SQL("SELECT count(*) FROM {} WHERE {} > %s").format(_public(spec.table), sql.Identifier(spec.key))
    row = source.execute(query, (watermark,)).fetchone()
    assert row is not None
    return int(row[0])


def _catch_up(
    source: psycopg.Connection[Any],
    target: psycopg.Connection[Any],
    spec: MoveSpec,
    say: Callable[[str], None],
    expected: int,
    started: float,
) -> int:
    """Batches until one comes back short: the source has no more rows than the last batch saw."""
    done = 0
    while True:
        copied = copy_batch(source, target, spec, BATCH_ROWS)
        done += copied
        elapsed = time.monotonic() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        left = max(expected - done, 0)
        estimate = f", about {left / rate:.0f} s left" if rate > 0 and left else ""
        say(f"  {spec.table}: {done:,} rows moved ({rate:,.0f} rows/s{estimate})")
        if copied < BATCH_ROWS:
            return done


def copy_batch(source: psycopg.Connection[Any], target: psycopg.Connection[Any], spec: MoveSpec, limit: int) -> int:
    """One batch in one destination transaction: rows, id map and watermark commit together."""
    watermark = _progress(target, spec)[0]
    columns = sql.SQL(", ").join(sql.Identifier(column) for column in spec.columns)
    key = sql.Identifier(spec.key)
    staging = sql.Identifier("adoption_staging")
    target.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
            "SELECT {key} AS source_id, 0::bigint AS target_id, {columns} FROM {table} WITH NO DATA"
        ).format(staging=staging, key=key, columns=columns, table=_public(spec.table))
    )
    select = sql.SQL(
        "COPY (SELECT {key}, 0::bigint, {columns} FROM {table} WHERE {key} > {mark} ORDER BY {key} LIMIT {limit}) "
        "TO STDOUT (FORMAT BINARY)"
    ).format(key=key, columns=columns, table=_public(spec.table), mark=sql.Literal(watermark), limit=sql.Literal(limit))
    with (
        source.cursor().copy(select) as rows_out,
        target.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(staging)) as rows_in,
    ):
        for data in rows_out:
            rows_in.write(data)
    sequence = sql.Literal(f"public.{spec.table}")
    target.execute(
        sql.SQL("UPDATE {staging} SET target_id = nextval(pg_get_serial_sequence({sequence}, {column}))").format(
            staging=staging, sequence=sequence, column=sql.Literal(spec.key)
        )
    )
    copied = target.execute(
        sql.SQL(
            "WITH mapped AS (INSERT INTO {map} SELECT %s, %s, source_id, target_id FROM {staging} RETURNING 1) "
            "SELECT count(*) FROM mapped"
        ).format(map=sql.Identifier(PROGRESS_SCHEMA, "moved_rows"), staging=staging),
        (spec.source_database, spec.table),
    ).fetchone()
    assert copied is not None
    target.execute(
        sql.SQL(
            "INSERT INTO {table} ({key}, {columns}) OVERRIDING SYSTEM VALUE SELECT target_id, {columns} FROM {staging}"
        ).format(table=_public(spec.table), key=key, columns=columns, staging=staging)
    )
    target.execute(
        sql.SQL(
            "UPDATE {moves} SET watermark = coalesce((SELECT max(source_id) FROM {staging}), watermark), "
            "rows_moved = rows_moved + %s WHERE source_database = %s AND source_table = %s"
        ).format(moves=sql.Identifier(PROGRESS_SCHEMA, "moves"), staging=staging),
        (copied[0], spec.source_database, spec.table),
    )
    target.commit()
    return int(copied[0])


def source_checksum(source: psycopg.Connection[Any], spec: MoveSpec, after: int, up_to: int) -> Checksum:
    """Count and checksum of the source rows with `after` < key <= `up_to`."""
    query = sql.SQL(
        "SELECT count(*), coalesce(sum(hashtextextended(ROW({columns})::text, 0)), 0) FROM {table} AS t "
        "WHERE t.{key} > %s AND t.{key} <= %s"
    ).format(columns=_qualified(spec.columns, "t"), table=_public(spec.table), key=sql.Identifier(spec.key))
    row = source.execute(query, (after, up_to)).fetchone()
    assert row is not None
    return Checksum(int(row[0]), int(row[1]))


def moved_checksum(target: psycopg.Connection[Any], spec: MoveSpec, after: int) -> Checksum:
    """Count and checksum, in the destination, of the rows moved from source keys above `after`."""
    query = sql.SQL(
        "SELECT count(*), coalesce(sum(hashtextextended(ROW({columns})::text, 0)), 0) FROM {map} AS m "
        "JOIN {table} AS t ON t.{key} = m.target_id "
        "WHERE m.source_database = %s AND m.source_table = %s AND m.source_id > %s"
    ).format(
        columns=_qualified(spec.columns, "t"),
        map=sql.Identifier(PROGRESS_SCHEMA, "moved_rows"),
        table=_public(spec.table),
        key=sql.Identifier(spec.key),
    )
    row = target.execute(query, (spec.source_database, spec.table, after)).fetchone()
    target.commit()
    assert row is not None
    return Checksum(int(row[0]), int(row[1]))


def _check(source: psycopg.Connection[Any], target: psycopg.Connection[Any], spec: MoveSpec, after: int = 0) -> int:
    """Every source row above `after` up to the watermark arrived once, with the same content; else stop,
    the source untouched. Returns the watermark checked up to."""
    watermark = _progress(target, spec)[0]
    expected, actual = source_checksum(source, spec, after, watermark), moved_checksum(target, spec, after)
    if expected != actual:
        raise UserError(
            f"the rows of {spec.table} moved to {spec.target_database} do not match {spec.source_database}'s "
            f"(source {expected.rows:,} rows, checksum {expected.total}; moved {actual.rows:,} rows, checksum "
            f"{actual.total}): nothing was changed in {spec.source_database}; find what changed the rows, "
            "then run again.",
            ExitCode.VERIFY_FAILED,
        )
    return watermark


def _final_step(
    admin: AdminAccess, target: psycopg.Connection[Any], spec: MoveSpec, say: Callable[[str], None], checked: int
) -> tuple[float, float]:
    """Lock, move the last rows, count, retire the table: one source transaction. (lock wait, lock held)."""
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        with admin.connect(spec.source_database) as probe:
            left = _rows_after(probe, spec, _progress(target, spec)[0])
        if left > FINAL_STEP_MAX_ROWS:
            say(f"  {spec.table}: {left:,} rows arrived meanwhile; moving them before the final step")
            with admin.connect(spec.source_database) as source:
                _catch_up(source, target, spec, say, left, time.monotonic())
                checked = _check(source, target, spec, after=checked)
            continue
        with admin.connect(spec.source_database, autocommit=False) as source:
            source.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_WAIT)))
            asked = time.monotonic()
            try:
                source.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(_public(spec.table)))
            except psycopg.errors.LockNotAvailable:
                source.rollback()
                say(f"  {spec.table}: the table stayed busy for {LOCK_WAIT} (attempt {attempt}/{LOCK_ATTEMPTS})")
                continue
            locked = time.monotonic()
            while copy_batch(source, target, spec, BATCH_ROWS) == BATCH_ROWS:
                pass
            _check(source, target, spec, after=checked)
            _check_total(source, target, spec)
            source.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(RETIRED_SCHEMA)))
            source.execute(
                sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(_public(spec.table), sql.Identifier(RETIRED_SCHEMA))
            )
            source.commit()
            held = time.monotonic() - locked
        _mark_finished(target, spec)
        say(
            f"  {spec.table}: retired to {spec.source_database}.{RETIRED_SCHEMA}.{spec.table}; "
            f"lock waited {locked - asked:.3f} s, held {held:.3f} s"
        )
        return locked - asked, held
    raise UserError(
        f"{spec.source_database}.{spec.table} stayed locked by other sessions for {LOCK_ATTEMPTS} tries of "
        f"{LOCK_WAIT}: the rows moved so far are kept; find the long transaction (pg_stat_activity) and run again.",
        ExitCode.DEPLOY_FAILED,
    )


def _check_total(source: psycopg.Connection[Any], target: psycopg.Connection[Any], spec: MoveSpec) -> None:
    """Under the lock: the source holds exactly the rows the map says were moved."""
    row = source.execute(sql.SQL("SELECT count(*) FROM {}").format(_public(spec.table))).fetchone()
    assert row is not None
    moved = _progress(target, spec)[1]
    if int(row[0]) != moved:
        raise UserError(
            f"{spec.source_database}.{spec.table} holds {row[0]:,} rows but {moved:,} were moved (rows deleted or "
            f"inserted below the watermark?): the table stays where it is; nothing was retired.",
            ExitCode.VERIFY_FAILED,
        )


def _mark_finished(target: psycopg.Connection[Any], spec: MoveSpec) -> None:
    target.execute(
        sql.SQL("UPDATE {} SET finished_at = now() WHERE source_database = %s AND source_table = %s").format(
            sql.Identifier(PROGRESS_SCHEMA, "moves")
        ),
        (spec.source_database, spec.table),
    )
    target.commit()


def _public(table: str) -> sql.Composable:
    return sql.Identifier("public", table)


def _qualified(columns: tuple[str, ...], alias: str) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(alias, column) for column in columns)
