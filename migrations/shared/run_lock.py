"""One migration run per tree at a time: a session-level advisory lock held on its own connection.

Why its own connection, and a session lock: a transaction-scoped lock (pg_advisory_xact_lock) is
released when a revision leaves its transaction for CREATE INDEX CONCURRENTLY (autocommit_block),
and a lock query on the migration connection would open a transaction before Alembic's own, after
which Alembic skips its commit and the DDL is silently rolled back (aegra#565, Telegram-Archive#71).
A second run waits, bounded, then finds the revisions applied and does nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from migrations.shared.tree import Tree

POLL_INTERVAL_S = 0.5


class LockTimeoutError(RuntimeError):
    """Another run of the same tree held the lock for longer than we were willing to wait."""


@contextmanager
def tree_run_lock(engine: Engine, tree: Tree, wait_s: float) -> Iterator[None]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock_connection:
        deadline = time.monotonic() + wait_s
        announced = False
        while not lock_connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": tree.advisory_lock_key}
        ).scalar_one():
            if time.monotonic() >= deadline:
                raise LockTimeoutError(
                    f"another migration run of the {tree.key} tree held its lock for over {wait_s:.0f}s: "
                    "wait for it to finish (pg_stat_activity shows it), then run again."
                )
            if not announced:
                print(f"waiting for another migration run of the {tree.key} tree to finish", file=sys.stderr)
                announced = True
            time.sleep(POLL_INTERVAL_S)
        try:
            yield
        finally:
            lock_connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": tree.advisory_lock_key})
