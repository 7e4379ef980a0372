"""One migration run per tree at a time: a session-level advisory lock on the migration connection.

A session lock, because a transaction-scoped one (pg_advisory_xact_lock) is released when a
revision leaves its transaction for CREATE INDEX CONCURRENTLY (autocommit_block). On the migration
connection, so that it lives exactly as long as the work: a lock on a second connection can be
freed (that backend exits) while the migration's backend still runs. Every attempt is committed at
once: a lock query left in an open transaction would make Alembic take it for the caller's and
skip its own COMMIT, silently rolling the DDL back (aegra#565, Telegram-Archive#71). A second run
waits, bounded, then finds the revisions applied and does nothing. Inside an embedder's open
transaction nothing is committed (commit=False): Alembic then runs inside that transaction, and a
session lock outlives its rollback until it is released here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, PendingRollbackError

from migrations.shared.tree import Tree

POLL_INTERVAL_S = 0.5


class LockTimeoutError(RuntimeError):
    """Another run of the same tree held the lock for longer than we were willing to wait."""


@contextmanager
def tree_run_lock(connection: Connection, tree: Tree, wait_s: float, commit: bool = True) -> Iterator[None]:
    key = {"key": tree.advisory_lock_key}
    deadline = time.monotonic() + wait_s
    announced = False
    while not _try_lock(connection, key, commit):
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
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
            if commit:
                connection.commit()
        except (DBAPIError, PendingRollbackError):
            pass  # the connection is gone, and the lock with it


def _try_lock(connection: Connection, key: dict[str, int], commit: bool) -> bool:
    acquired = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar_one())
    if commit:
        connection.commit()
    return acquired
