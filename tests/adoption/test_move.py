"""The move of a misplaced table's rows: each row once, by content; after a kill anywhere; with a live writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import psycopg
import pytest
from psycopg import sql

from fixtures.fault_log import SeenFunction
from fixtures.legacy import LegacyDatabases, insert_system_logs, run_as_broad_role, stack_view
from model.names import DatabaseKey, RoleNames
from ops.adoption import move
from ops.adoption.catalog import read_database
from ops.adoption.inspect import plan_from
from ops.adoption.move import (
    KILL_AT_ENV_VAR,
    RETIRED_SCHEMA,
    KillPoint,
    MoveSpec,
    copy_batch,
    finish_retired,
    move_table,
    spec_for,
)
from ops.adoption.move_progress import PROGRESS_SCHEMA, ensure_progress_tables
from ops.adoption.revision_shapes import RevisionShape
from ops.adoption.server_access import AdminAccess
from ops.errors import UserError
from ops.paths import REPO_ROOT

TABLE = "system_logs"


def spec(legacy: LegacyDatabases, admin: AdminAccess) -> MoveSpec:
    main, logs = legacy.databases[DatabaseKey.MAIN], legacy.databases[DatabaseKey.LOGS]
    with admin.connect(main) as connection:
        return spec_for(read_database(connection).tables[TABLE], main, logs)


def contents(admin: AdminAccess, database: str, schema: str, columns: tuple[str, ...]) -> Counter[str]:
    """Every row's content (all columns but the id) as text, counted: a row moved twice counts 2."""
    query = sql.SQL("SELECT ROW({})::text FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(column) for column in columns), sql.Identifier(schema, TABLE)
    )
    with admin.connect(database) as connection:
        return Counter(row[0] for row in connection.execute(query).fetchall())


def in_public(admin: AdminAccess, database: str) -> bool:
    with admin.connect(database) as connection:
        return connection.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{TABLE}",)).fetchone() == (True,)


def test_each_row_moves_once_by_content_and_the_source_table_is_retired_not_dropped(
    legacy: LegacyDatabases, admin: AdminAccess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(move, "BATCH_ROWS", 300)
    moving = spec(legacy, admin)
    logs_before = contents(admin, moving.target_database, "public", moving.columns)
    source = contents(admin, moving.source_database, "public", moving.columns)
    lines: list[str] = []
    report = move_table(admin, moving, lines.append)
    assert contents(admin, moving.target_database, "public", moving.columns) == logs_before + source
    assert contents(admin, moving.source_database, RETIRED_SCHEMA, moving.columns) == source
    assert not in_public(admin, moving.source_database)
    assert report.rows == 1000 and report.lock_held_s < 1.0
    assert any("rows/s" in line for line in lines) and "retired to" in lines[-1], lines


def test_rows_that_arrive_after_the_check_are_caught_up_and_checked_from_there_before_the_lock(
    legacy: LegacyDatabases, admin: AdminAccess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 3's unlocked catch-up passes: rows written between the check and the final step (a writer
    still aimed at the old table) are moved, and checked from where the last check ended, before the lock."""
    monkeypatch.setattr(move, "BATCH_ROWS", 300)
    monkeypatch.setattr(move, "FINAL_STEP_MAX_ROWS", 50)
    moving = spec(legacy, admin)
    logs_before = contents(admin, moving.target_database, "public", moving.columns)
    checks: list[int] = []
    check_and_repair = move.check_and_repair

    def check_then_write(
        source: move.Connection, target: move.Connection, spec: MoveSpec, schema: str, say: move.Say, after: int = 0
    ) -> int:
        checked = check_and_repair(source, target, spec, schema, say, after=after)
        checks.append(after)
        if len(checks) <= 2:  # writes arrive after each of the first two checks of the public table
            insert_system_logs(legacy, moving.source_database, 120, f"meanwhile {len(checks)}")
        return checked

    monkeypatch.setattr(move, "check_and_repair", check_then_write)
    lines: list[str] = []
    report = move_table(admin, moving, lines.append)
    source = contents(admin, moving.source_database, RETIRED_SCHEMA, moving.columns)
    assert sum(source.values()) == 1000 + 2 * 120
    assert contents(admin, moving.target_database, "public", moving.columns) == logs_before + source
    assert report.rows == 1240
    assert [line for line in lines if "arrived meanwhile" in line] == [
        f"  {TABLE}: 120 rows arrived meanwhile; moving them before the lock"
    ] * 2, lines
    assert checks[0] == 0 and 0 < checks[1] < checks[2], checks  # each pass checks from the last one on


def test_a_move_killed_mid_batch_is_finished_by_the_next_run_with_no_row_lost_or_doubled(
    legacy: LegacyDatabases, admin: AdminAccess
) -> None:
    moving = spec(legacy, admin)
    insert_system_logs(legacy, moving.source_database, 200_000, "main, later")
    logs_before = contents(admin, moving.target_database, "public", moving.columns)
    source = contents(admin, moving.source_database, "public", moving.columns)
    mover = start_move(legacy, admin, moving, batch=2000)
    wait_for_line(mover, "rows moved")
    time.sleep(0.05)  # inside a later batch
    mover.kill()
    mover.wait()
    assert in_public(admin, moving.source_database), "killed before the end, the source stays where it was"
    move_table(admin, moving, lambda _: None)
    assert contents(admin, moving.target_database, "public", moving.columns) == logs_before + source


def test_a_move_killed_while_it_waits_for_the_final_lock_is_finished_by_the_next_run(
    legacy: LegacyDatabases, admin: AdminAccess
) -> None:
    moving = spec(legacy, admin)
    logs_before = contents(admin, moving.target_database, "public", moving.columns)
    source = contents(admin, moving.source_database, "public", moving.columns)
    with admin.connect(moving.source_database, autocommit=False) as reader:
        reader.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(TABLE)))  # holds ACCESS SHARE
        mover = start_move(legacy, admin, moving, batch=300)
        wait_for_line(mover, "other sessions kept the table")  # every row is across; the retire waits for the lock
        mover.kill()
        mover.wait()
    assert in_public(admin, moving.source_database)
    assert contents(admin, moving.target_database, "public", moving.columns) == logs_before + source
    report = move_table(admin, moving, lambda _: None)
    assert report.rows == 0, "the second run found every row moved already"
    assert contents(admin, moving.target_database, "public", moving.columns) == logs_before + source
    assert not in_public(admin, moving.source_database)


def test_a_writer_inserting_into_the_old_table_throughout_the_move_loses_nothing(
    legacy: LegacyDatabases, admin: AdminAccess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(move, "BATCH_ROWS", 1000)
    moving = spec(legacy, admin)
    insert_system_logs(legacy, moving.source_database, 50_000, "main, later")
    logs_before = contents(admin, moving.target_database, "public", moving.columns)
    writer = Writer(legacy)
    writer.start()
    while writer.inserted < 20:
        time.sleep(0.01)
    move_table(admin, moving, lambda _: None)
    writer.join(timeout=30)
    assert isinstance(writer.stopped_by, psycopg.errors.UndefinedTable), writer.stopped_by
    retired = contents(admin, moving.source_database, RETIRED_SCHEMA, moving.columns)
    assert sum(count for row, count in retired.items() if "written during the move" in row) == writer.inserted
    assert contents(admin, moving.target_database, "public", moving.columns) == logs_before + retired


class Writer(threading.Thread):
    """The misconfigured worker: inserts into the main database's system_logs until the table is gone."""

    def __init__(self, legacy: LegacyDatabases) -> None:
        super().__init__(daemon=True)
        self.legacy = legacy
        self.inserted = 0
        self.stopped_by: Exception | None = None

    def run(self) -> None:
        database = self.legacy.databases[DatabaseKey.MAIN]
        with self.legacy.server.connect(database, self.legacy.broad_role, self.legacy.password) as connection:
            try:
                while True:
                    connection.execute(
                        "INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'worker', %s)",
                        (f"written during the move {self.inserted}",),
                    )
                    self.inserted += 1
            except psycopg.Error as error:
                self.stopped_by = error


def start_move(
    legacy: LegacyDatabases, admin: AdminAccess, moving: MoveSpec, batch: int, kill_at: str = ""
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fixtures.run_move",
            moving.source_database,
            moving.target_database,
            TABLE,
            str(batch),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PGPASSWORD": admin.password, KILL_AT_ENV_VAR: kill_at},
        stdout=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process: subprocess.Popen[str], fragment: str) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if fragment in line:
            return line
        assert line or process.poll() is None, f"the move ended before printing {fragment!r}"
    raise AssertionError(f"no line with {fragment!r} within 60 s")


def test_progress_is_kept_in_a_schema_of_the_admin_only(legacy: LegacyDatabases, admin: AdminAccess) -> None:
    moving = spec(legacy, admin)
    move_table(admin, moving, lambda _: None)
    with admin.connect(moving.target_database) as connection:
        schema = connection.execute(
            "SELECT pg_get_userbyid(nspowner), nspacl FROM pg_namespace WHERE nspname = %s", (PROGRESS_SCHEMA,)
        ).fetchone()
    assert schema == (admin.user, None), "the admin's, and no one else may use it"


def test_a_progress_schema_someone_else_made_is_refused_before_any_row_moves(
    legacy: LegacyDatabases, admin: AdminAccess
) -> None:
    moving = spec(legacy, admin)
    logs_before = contents(admin, moving.target_database, "public", moving.columns)
    with legacy.server.connect(moving.target_database, legacy.broad_role, legacy.password) as broad:
        broad.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(PROGRESS_SCHEMA)))
    with pytest.raises(UserError, match="belongs to another role than the admin"):
        move_table(admin, moving, lambda _: None)
    assert contents(admin, moving.target_database, "public", moving.columns) == logs_before


@pytest.mark.fault(
    what="the move of misplaced rows is killed (SIGKILL) after a batch's commit, under the final lock with the last "
    "rows committed in the destination but the source not yet retired, and after the retire",
    recovery="the next `--apply` goes on from the watermark (or finishes the retired table's check); every row is "
    "in the logs database once, compared by content",
)
@pytest.mark.parametrize("kill_at", list(KillPoint))
def test_a_move_killed_at_each_step_is_finished_by_the_next_apply_with_each_row_once(
    legacy: LegacyDatabases,
    admin: AdminAccess,
    shapes: dict[DatabaseKey, list[RevisionShape]],
    kill_at: KillPoint,
    fault_seen: SeenFunction,
) -> None:
    moving = spec(legacy, admin)
    insert_system_logs(legacy, moving.source_database, 20_000, "main, later")
    logs_before = contents(admin, moving.target_database, "public", moving.columns)
    source = contents(admin, moving.source_database, "public", moving.columns)
    mover = start_move(legacy, admin, moving, batch=3000, kill_at=kill_at)
    printed, _ = mover.communicate(timeout=120)
    assert mover.returncode == -signal.SIGKILL
    fault_seen(f"a move killed at {kill_at}", mover.returncode, printed, TABLE)

    main, logs = plan_from(stack_view(dict(legacy.databases), RoleNames(legacy.prefix)), admin, shapes).databases
    if kill_at is KillPoint.RETIRED:
        assert not in_public(admin, moving.source_database) and main.misplaced == ()
        assert logs.unfinished_moves == (f"{moving.source_database}.{TABLE}",)
        with admin.connect(moving.target_database, autocommit=False) as target:
            finish_retired(admin, target, moving, lambda _: None)
    else:
        assert in_public(admin, moving.source_database), "the source is retired in the final step's commit only"
        assert [table.table for table in main.misplaced] == [TABLE]
        move_table(admin, moving, lambda _: None)
    assert contents(admin, moving.target_database, "public", moving.columns) == logs_before + source
    assert contents(admin, moving.source_database, RETIRED_SCHEMA, moving.columns) == source
    after = plan_from(stack_view(dict(legacy.databases), RoleNames(legacy.prefix)), admin, shapes)
    assert (after.databases[0].misplaced, after.databases[1].unfinished_moves) == ((), ())


def test_a_row_committed_after_its_batch_read_past_its_id_is_moved_by_the_check(
    legacy: LegacyDatabases, admin: AdminAccess
) -> None:
    """Writers commit out of order: an id taken first may commit after a later one has been moved."""
    moving = spec(legacy, admin)
    logs_before = contents(admin, moving.target_database, "public", moving.columns)
    late = legacy.server.connect(moving.source_database, legacy.broad_role, legacy.password, autocommit=False)
    late.execute("INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'slow', 'committed late')")
    run_as_broad_role(
        legacy,
        moving.source_database,
        "INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'fast', 'committed first')",
    )
    with (
        admin.connect(moving.target_database, autocommit=False) as target,
        admin.connect(moving.source_database) as source_db,
    ):
        ensure_progress_tables(target)
        copy_batch(source_db, target, moving, 10_000)  # reads past the uncommitted row's id
    late.commit()
    late.close()
    lines: list[str] = []
    move_table(admin, moving, lines.append)
    source = contents(admin, moving.source_database, RETIRED_SCHEMA, moving.columns)
    assert any("committed late" in row for row in source)
    assert contents(admin, moving.target_database, "public", moving.columns) == logs_before + source
    assert any("1 rows committed after their batch had read past them" in line for line in lines), lines


def test_a_row_changed_in_the_source_after_it_was_moved_stops_the_move_before_the_source_is_retired(
    legacy: LegacyDatabases, admin: AdminAccess
) -> None:
    """Same count, other content: only the checksum can tell, and nothing may be retired on a mismatch."""
    moving = spec(legacy, admin)
    with (
        admin.connect(moving.target_database, autocommit=False) as target,
        admin.connect(moving.source_database) as source_db,
    ):
        ensure_progress_tables(target)
        copy_batch(source_db, target, moving, 10_000)
    run_as_broad_role(
        legacy, moving.source_database, "UPDATE system_logs SET message = 'edited after the move' WHERE id = 1"
    )
    with pytest.raises(UserError, match="rows were changed or deleted in"):
        move_table(admin, moving, lambda _: None)
    assert in_public(admin, moving.source_database), "nothing was retired"
