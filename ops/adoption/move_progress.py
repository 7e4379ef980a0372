"""Where a move keeps its progress: the destination database's `headhunter_adoption` schema.

`moves` holds one row per moved table (its watermark, rows moved, when it finished) and
`moved_rows` the id each source row was given in the destination, written in the same transaction
as the rows themselves. The schema is the admin's: a schema or table of that name owned by anyone
else (the broad legacy role owns the database while the move runs) is refused, not trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ops.errors import ExitCode, UserError

PROGRESS_SCHEMA = "headhunter_adoption"
MOVES = sql.Identifier(PROGRESS_SCHEMA, "moves")
MOVED_ROWS = sql.Identifier(PROGRESS_SCHEMA, "moved_rows")


@dataclass(frozen=True)
class Progress:
    watermark: int
    """The highest source id moved by a batch; rows above it are still to move."""
    rows: int
    finished: bool


def ensure_progress_tables(target: psycopg.Connection[Any]) -> None:
    target.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(PROGRESS_SCHEMA)))
    target.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (source_database text, source_table text, "
            "watermark bigint NOT NULL DEFAULT 0, rows_moved bigint NOT NULL DEFAULT 0, finished_at timestamptz, "
            "PRIMARY KEY (source_database, source_table))"
        ).format(MOVES)
    )
    target.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (source_database text, source_table text, source_id bigint, "
            "target_id bigint NOT NULL, PRIMARY KEY (source_database, source_table, source_id))"
        ).format(MOVED_ROWS)
    )
    strangers = target.execute(
        "SELECT coalesce(c.relname, n.nspname) FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid "
        "WHERE n.nspname = %s AND (n.nspowner <> current_user::regrole OR c.relowner <> current_user::regrole)",
        (PROGRESS_SCHEMA,),
    ).fetchall()
    if strangers:
        target.rollback()
        raise UserError(
            f"{PROGRESS_SCHEMA} ({', '.join(row[0] for row in strangers)}) in the destination database belongs to "
            "another role than the admin: it is not trusted with the move's progress; find out who made it, then "
            "drop it or hand it to the admin.",
            ExitCode.VERIFY_FAILED,
        )
    target.commit()


def read_progress(target: psycopg.Connection[Any], source_database: str, table: str) -> Progress:
    """The table's progress, its row made on the first run; commits (a read that holds no lock after)."""
    target.execute(
        sql.SQL("INSERT INTO {} (source_database, source_table) VALUES (%s, %s) ON CONFLICT DO NOTHING").format(MOVES),
        (source_database, table),
    )
    row = target.execute(
        sql.SQL(
            "SELECT watermark, rows_moved, finished_at IS NOT NULL FROM {} WHERE source_database = %s "
            "AND source_table = %s"
        ).format(MOVES),
        (source_database, table),
    ).fetchone()
    target.commit()
    assert row is not None
    return Progress(int(row[0]), int(row[1]), bool(row[2]))


def unfinished_moves(target: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(source database, table) of each move begun and not finished; [] when no move ever ran. Reads only."""
    if target.execute("SELECT to_regclass(%s)", (f"{PROGRESS_SCHEMA}.moves",)).fetchone() == (None,):
        return []
    query = sql.SQL("SELECT source_database, source_table FROM {} WHERE finished_at IS NULL ORDER BY 1, 2")
    return [(row[0], row[1]) for row in target.execute(query.format(MOVES)).fetchall()]


def mark_finished(target: psycopg.Connection[Any], source_database: str, table: str) -> None:
    target.execute(
        sql.SQL("UPDATE {} SET finished_at = now() WHERE source_database = %s AND source_table = %s").format(MOVES),
        (source_database, table),
    )
    target.commit()
