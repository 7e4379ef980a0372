"""Fill a new column of a table with live writers: in batches, each its own short transaction.

Alembic runs each revision in one transaction, so one UPDATE of every row (or a loop of them inside
the revision's transaction) holds the row lock of every row it touched until the revision commits:
a writer updating any of those rows waits for the whole backfill, and the table's dead tuples pile
up unvacuumable. Here the batches run in Alembic's autocommit_block (as concurrent_index does): each
batch is one UPDATE of at most `batch_size` consecutive keys, committed on its own, under a short
lock_timeout with a few retries, so no lock is held longer than one batch.

Batches walk the table's integer key upward from the smallest key, each range read through the
primary key's index (never a scan for the rows still NULL, which would read the whole table again
for every batch). Rows written meanwhile are the expand revision's trigger's to fill. A run cut
after any batch is run again from the start: `pending` skips the rows already filled.

A NOT NULL that the backfill makes true is declared in two steps, each in its own transaction:
`add_validated_check` adds a CHECK ... NOT VALID (a brief catalog lock) and then validates it (a
scan under SHARE UPDATE EXCLUSIVE, which no writer waits on); the contract revision's SET NOT NULL
then finds the validated CHECK and scans nothing (PostgreSQL 12 and later).
"""

from __future__ import annotations

from alembic import op
from psycopg import sql
from sqlalchemy import Connection, text

from migrations.shared import partitions
from migrations.shared.environment import LOCK_TIMEOUT

MAX_BATCH_SIZE = 10_000
"""A batch's row locks are held for one UPDATE: past some thousands, one batch is the long lock again."""
DEFAULT_BATCH_SIZE = 1_000


def backfill_in_batches(
    table: str, assignments: str, pending: str, batch_size: int = DEFAULT_BATCH_SIZE, key: str = "id"
) -> None:
    """UPDATE `table` SET `assignments` WHERE `pending`, one committed batch of `key` values at a time.

    `assignments` and `pending` are the revision's own SQL text (never user input); `key` is an
    integer column with a unique index (the primary key)."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size {batch_size} of the {table} backfill: give 1 to {MAX_BATCH_SIZE}")
    with op.get_context().autocommit_block():
        if op.get_context().as_sql:
            op.execute(_offline_loop(table, assignments, pending, batch_size, key))
            return
        connection = op.get_bind()
        after = _first_key(connection, table, key)
        while after is not None and (upto := _batch_end(connection, table, key, after, batch_size)) is not None:
            partitions.with_lock_retries(connection, _batch_update(table, assignments, pending, key, after, upto))
            after = upto
        _restore_lock_timeout()


def add_validated_check(table: str, name: str, condition: str) -> None:
    """CHECK (`condition`) NOT VALID, then VALIDATE, in two transactions: no writer waits on the scan."""
    with op.get_context().autocommit_block():
        add = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({}) NOT VALID").format(
            sql.Identifier(table), sql.Identifier(name), sql.SQL(condition)
        )
        exists = sql.SQL("SELECT FROM pg_constraint WHERE conname = {} AND conrelid = to_regclass({})").format(
            sql.Literal(name), sql.Literal(f"public.{table}")
        )
        # A rerun after a cut between the two steps finds the constraint there and only validates it.
        guarded = sql.SQL("DO $add$ BEGIN IF NOT EXISTS ({}) THEN {}; END IF; END $add$").format(exists, add)
        op.execute(guarded.as_string())
        validate = sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(name))
        op.execute(validate.as_string())


def _first_key(connection: Connection, table: str, key: str) -> int | None:
    query = sql.SQL("SELECT min({}) - 1 FROM {}").format(sql.Identifier(key), sql.Identifier(table))
    value = connection.execute(text(query.as_string())).scalar()
    return None if value is None else int(value)


def _batch_end(connection: Connection, table: str, key: str, after: int, batch_size: int) -> int | None:
    """The largest of the next `batch_size` keys after `after`, read through the key's index; None at the end."""
    query = sql.SQL(
        "SELECT max({key}) FROM (SELECT {key} FROM {table} WHERE {key} > {after} ORDER BY {key} LIMIT {n}) b"
    )
    statement = query.format(
        key=sql.Identifier(key), table=sql.Identifier(table), after=sql.Literal(after), n=sql.Literal(batch_size)
    )
    value = connection.execute(text(statement.as_string())).scalar()
    return None if value is None else int(value)


def _batch_update(table: str, assignments: str, pending: str, key: str, after: int, upto: int) -> str:
    statement = sql.SQL("UPDATE {table} SET {assignments} WHERE {key} > {after} AND {key} <= {upto} AND ({pending})")
    return statement.format(
        table=sql.Identifier(table),
        assignments=sql.SQL(assignments),
        key=sql.Identifier(key),
        after=sql.Literal(after),
        upto=sql.Literal(upto),
        pending=sql.SQL(pending),
    ).as_string()


def _offline_loop(table: str, assignments: str, pending: str, batch_size: int, key: str) -> str:
    """The same batches for the offline SQL: a DO block that commits after each (PostgreSQL 11 and later
    allow COMMIT in a DO block run outside a transaction block, which the autocommit block gives)."""
    loop = sql.SQL(
        "DO $backfill$ DECLARE after_key bigint; upto_key bigint; BEGIN "
        "SELECT min({key}) - 1 INTO after_key FROM {table}; "
        "LOOP "
        "SELECT max({key}) INTO upto_key FROM "
        "(SELECT {key} FROM {table} WHERE {key} > after_key ORDER BY {key} LIMIT {n}) b; "
        "EXIT WHEN upto_key IS NULL; "
        "UPDATE {table} SET {assignments} WHERE {key} > after_key AND {key} <= upto_key AND ({pending}); "
        "COMMIT; after_key := upto_key; "
        "END LOOP; END $backfill$"
    )
    return loop.format(
        key=sql.Identifier(key),
        table=sql.Identifier(table),
        n=sql.Literal(batch_size),
        assignments=sql.SQL(assignments),
        pending=sql.SQL(pending),
    ).as_string()


def _restore_lock_timeout() -> None:
    op.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)).as_string())
