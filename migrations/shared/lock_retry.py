"""A revision that cannot get its lock at once gives up quickly and tries again, so writers never queue long.

A statement waiting for a lock it cannot have (an ALTER TABLE behind a long report's ACCESS SHARE)
is itself in the lock queue: every INSERT that arrives after it waits behind it, although the report
blocks no INSERT. So each try waits at most TRY_LOCK_TIMEOUT; on lock_not_available (55P03) the
revision's transaction is rolled back (Alembic runs one per revision) and the revision runs again
after a pause that doubles, with jitter, until RETRY_BUDGET_S is spent. Then the run fails, naming
the revision and the sessions that held the lock it waited for, and the database stays at the
revision before it.

Why these numbers. pgroll waits 500 ms per try and retries whole transactions with an exponential,
jittered backoff (pkg/db/db.go); GitLab's with_lock_retries starts at 100 ms per try; the
django-pg-zero-downtime-migrations README suggests 2 s; strong_migrations suggests 10 s and retries
nothing by default. A try's lock_timeout is the longest an insert queued behind it waits, and while
a long report holds the table the tries come often enough that this wait becomes the writers' p99:
with 150 ms tries bench.migration_locks measured p99 266 ms behind a report (5.2x the writers beside
a busy core), with 50 ms tries 91 ms (1.6x, the issue's goal is 2x). A single INSERT holds its lock
for a millisecond or two, so 50 ms is still many times what a revision waits on a table with short
writers; a table with long transactions costs more tries, each as cheap. The first pause (250 ms)
lets the writers queued behind a try drain before the next; pauses double to 5 s, so a long report
meets a try every few seconds, not a queue; two minutes outwait a slow report or a batch job's
transaction without holding the deploy for long.

Retrying the whole revision is safe because a revision is one transaction: its rollback undid
everything the failed try did. Work a revision does in an autocommit block (a concurrent index
build, a batched backfill, partition_conversion's steps) is committed as it goes and must be
idempotent: the project's helpers are (concurrent_index drops an INVALID leftover before building
again, IF NOT EXISTS everywhere; partition_conversion picks up where a killed run stopped). A helper
that sets its own lock_timeout also owns its retries (0 for a concurrent build's wait for older
transactions, which blocks no writer; 1 s tries in partitions.with_lock_retries and the conversion's
swap): a lock timeout under a lock_timeout other than the run's is its decision, and is not retried.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime

import psycopg
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

TRY_LOCK_TIMEOUT = "50ms"
FIRST_PAUSE_S = 0.25
MAX_PAUSE_S = 5.0
RETRY_BUDGET_S = 120.0
WATCH_INTERVAL_S = 0.05
LOCK_NOT_AVAILABLE = "55P03"

# Who blocks the migration's session while it waits: pg_blocking_pids() needs no privilege; what a
# session of another role runs, and since when, shows only to a member of pg_read_all_stats.
BLOCKERS = text(
    """
SELECT b.pid, b.application_name, b.usename, b.state, b.xact_start, b.query_start, left(b.query, 200),
       w.relation::regclass::text, w.mode,
       (SELECT string_agg(h.mode, ', ' ORDER BY h.mode) FROM pg_locks h
        WHERE h.pid = b.pid AND h.granted AND h.locktype = w.locktype AND h.relation IS NOT DISTINCT FROM w.relation)
FROM pg_locks w JOIN pg_stat_activity b ON b.pid = ANY (pg_blocking_pids(w.pid))
WHERE w.pid = :pid AND NOT w.granted
ORDER BY b.pid
"""
)


class LockRetriesExhaustedError(RuntimeError):
    """A revision did not get its lock within the retry budget; nothing of its transaction was kept."""


@dataclass(frozen=True)
class Blocker:
    """A session the migration waited behind, as pg_locks and pg_stat_activity showed it."""

    pid: int
    application_name: str
    user: str | None
    state: str | None
    transaction_start: datetime | None
    query_start: datetime | None
    query: str | None
    relation: str | None
    wanted_mode: str
    held_modes: str | None

    def describe(self) -> str:
        holds = f"holds {self.held_modes}" if self.held_modes else "is queued ahead for"
        what = f"pid {self.pid} (application_name {self.application_name!r}, user {self.user or '?'})"
        if self.query_start is None:
            since = "; its query and start are hidden from the migrator (grant it pg_read_all_stats to see them)"
        else:
            since = (
                f", {self.state}, transaction started {self.transaction_start:%Y-%m-%d %H:%M:%S%z}, "
                f"query started {self.query_start:%Y-%m-%d %H:%M:%S%z}: {self.query!r}"
            )
        return f"{what} {holds} on {self.relation or 'an object'}, which conflicts with {self.wanted_mode}{since}"


def is_lock_not_available(error: BaseException) -> bool:
    """55P03 anywhere in the error's chain: SQLAlchemy wraps the driver's error, a cleanup may wrap that."""
    seen: BaseException | None = error
    while seen is not None:
        original = seen.orig if isinstance(seen, DBAPIError) else seen
        if isinstance(original, psycopg.Error) and original.sqlstate == LOCK_NOT_AVAILABLE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def pauses(first_s: float = FIRST_PAUSE_S, most_s: float = MAX_PAUSE_S) -> Iterator[float]:
    """Doubling pauses with "equal jitter" (half fixed, half random): two runs never retry in step, and a
    pause never shrinks to nothing, which would give the writers queued behind the last try no time to drain."""
    pause = first_s
    while True:
        yield pause / 2 + random.uniform(0, pause / 2)  # noqa: S311 (spreading retries, not a secret)
        pause = min(pause * 2, most_s)


def run_with_lock_retries(
    connection: Connection,
    attempt: Callable[[], None],
    prepare: Callable[[], None],
    failing_step: Callable[[], str],
    in_savepoint: bool,
    ours: str,
) -> None:
    """Run `attempt` (the pending revisions) until it does not fail on a lock, within RETRY_BUDGET_S.

    `prepare` sets the session up before each try (a failed try may have left a revision's SETs);
    `failing_step` names the revision that was running; `in_savepoint` wraps each try in a savepoint,
    for an embedder's open transaction, which a failed try must not abort. Only a lock timeout under
    `ours`, the run's lock_timeout, is retried: a helper that set its own (partitions.with_lock_retries,
    partition_conversion's swap, each with its own tries and its own way of giving up) has decided
    already, and a second layer of retries would only multiply its waits.
    """
    deadline = time.monotonic() + RETRY_BUDGET_S
    backoff = pauses()
    watch: BlockerWatch | None = None
    tries = 0
    try:
        while True:
            tries += 1
            prepare()
            try:
                with _try_scope(connection, in_savepoint):
                    attempt()
                return
            except DBAPIError as error:
                if not is_lock_not_available(error) or not _under(connection, ours):
                    raise
                pause = next(backoff)
                step = failing_step()
                if time.monotonic() + pause > deadline:
                    blockers = watch.last_seen() if watch is not None else []
                    raise LockRetriesExhaustedError(_exhausted(step, tries, blockers)) from error
                print(
                    f"{step}: lock not granted within {TRY_LOCK_TIMEOUT}, rolled back; try {tries + 1} in {pause:.2f}s",
                    file=sys.stderr,
                )
                if watch is None:
                    watch = BlockerWatch.start(connection)
                time.sleep(pause)
    finally:
        if watch is not None:
            watch.stop()


def _under(connection: Connection, lock_timeout: str) -> bool:
    """Whether the session's lock_timeout, after the failed try was rolled back, is still `lock_timeout`."""
    same = text("SELECT current_setting('lock_timeout')::interval = CAST(:ours AS interval)")
    return bool(connection.execute(same, {"ours": lock_timeout}).scalar_one())


def _try_scope(connection: Connection, in_savepoint: bool) -> AbstractContextManager[object]:
    return connection.begin_nested() if in_savepoint else nullcontext()


def _exhausted(step: str, tries: int, blockers: list[Blocker]) -> str:
    held_by = (
        "; ".join(blocker.describe() for blocker in blockers)
        if blockers
        else "no session was seen holding it (it was released between two looks)"
    )
    pids = ", ".join(str(blocker.pid) for blocker in blockers) or "<pid>"
    return (
        f"{step} did not get its lock in {tries} tries of {TRY_LOCK_TIMEOUT} over {RETRY_BUDGET_S:.0f}s, and each "
        f"try was rolled back: the database stays at the revision before it. Held by: {held_by}. Fix: let that "
        f"transaction end, or end it (SELECT pg_terminate_backend(pid) for {pids}), then run the deploy again; "
        "a revision that needs a lock every reader conflicts with (ACCESS EXCLUSIVE) should run when no long "
        "transaction reads its table."
    )


class BlockerWatch:
    """Looks, from a second session, at who blocks the migration's session while a try waits.

    The migration's own session cannot ask while it waits, and once a try has timed out its lock
    request is gone from pg_locks: only a look taken during the wait names the holder. Started at
    the first retry, so a run that gets its locks at once never opens the second connection.
    """

    def __init__(self, watcher: Connection, migration_pid: int) -> None:
        self._watcher = watcher
        self._pid = migration_pid
        self._stop = threading.Event()
        self._seen: list[Blocker] = []
        self._thread = threading.Thread(target=self._watch, name="lock-retry-watch", daemon=True)

    @classmethod
    def start(cls, connection: Connection) -> BlockerWatch | None:
        """None when a second session cannot be had (a connection limit): the run goes on without names."""
        pid = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
        try:
            watcher = connection.engine.connect()
        except DBAPIError as error:
            print(f"cannot watch the lock's holder: {str(error.orig).strip()}", file=sys.stderr)
            return None
        watch = cls(watcher, pid)
        watch._thread.start()
        return watch

    def _watch(self) -> None:
        try:
            while not self._stop.wait(WATCH_INTERVAL_S):
                rows = self._watcher.execute(BLOCKERS, {"pid": self._pid}).all()
                self._watcher.rollback()  # each look sees the present, and holds no snapshot
                if rows:
                    self._seen = [Blocker(*row) for row in rows]
        except DBAPIError:
            pass  # the watch only adds names to a failure's message; its own failure ends it quietly
        finally:
            self._watcher.close()

    def last_seen(self) -> list[Blocker]:
        return list(self._seen)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
