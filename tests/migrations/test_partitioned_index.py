"""An index revision on a partitioned log table: ON ONLY the parent, CONCURRENTLY on each partition, ATTACH."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fixtures import catalog
from fixtures.cluster import ProvisionedDatabases
from fixtures.revisions import revision_file
from migrations import runner
from model.names import DatabaseKey
from ops.paths import REPO_ROOT

INDEX_REVISION = revision_file(
    "logs_9990",
    "A later index revision, as a team would write one.",
    "create_concurrently(INDEXES)",
    "drop_concurrently(INDEXES)",
    imports="from migrations.shared.concurrent_index import ConcurrentIndex, create_concurrently, drop_concurrently\n\n"
    'INDEXES = (ConcurrentIndex("idx_system_logs_trace_id", "system_logs", "(trace_id) WHERE trace_id IS NOT NULL"),)',
)


def tree_with_index_revision(tmp_path: Path) -> Path:
    tree = tmp_path / "logs"
    shutil.copytree(REPO_ROOT / "migrations" / "logs", tree, ignore=shutil.ignore_patterns("__pycache__"))
    head = runner.head_revision(runner.tree_named("logs"))
    (tree / "versions" / "logs_9990_trace_index.py").write_text(INDEX_REVISION.replace("{down}", head))
    return tree


@contextmanager
def writer_inserting(provisioned: ProvisionedDatabases, lock_timeout: str) -> Iterator[list[BaseException]]:
    """The logs writer inserting into system_logs until the block ends; yields the errors it met."""
    failures: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        with provisioned.connect_as(provisioned.names.of("logs_writer"), DatabaseKey.LOGS) as logs:
            logs.execute(f"SET lock_timeout = '{lock_timeout}'")
            while not stop.is_set():
                try:
                    logs.execute("INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'w', 'x')")
                except BaseException as error:  # asserted by the caller
                    failures.append(error)
                    return

    thread = threading.Thread(target=write)
    thread.start()
    try:
        yield failures
    finally:
        stop.set()
        thread.join(timeout=30)


def test_an_index_revision_builds_on_every_partition_while_a_writer_inserts(
    migrated: ProvisionedDatabases, logs_target: runner.Target, tmp_path: Path
) -> None:
    target = runner.Target(
        logs_target.tree, logs_target.url, logs_target.expected_database, tree_with_index_revision(tmp_path)
    )
    with writer_inserting(migrated, "1s") as failures:
        assert runner.upgrade(target).applied == ("logs_9990",)
    assert failures == []
    with migrated.server.connect(migrated.databases[DatabaseKey.LOGS]) as logs:
        assert catalog.invalid_indexes(logs) == set()
        on_partitions = logs.execute(
            "SELECT count(*), count(*) FILTER (WHERE x.indexrelid IN (SELECT inhrelid FROM pg_inherits "
            "WHERE inhparent = 'idx_system_logs_trace_id'::regclass)) FROM pg_inherits p "
            "JOIN pg_index x ON x.indrelid = p.inhrelid JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE p.inhparent = 'system_logs'::regclass AND pg_get_indexdef(x.indexrelid) LIKE '%(trace_id)%'"
        ).fetchone()
        partitions = logs.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'system_logs'::regclass"
        ).fetchone()
    assert on_partitions is not None and partitions is not None
    assert on_partitions == (partitions[0], partitions[0])  # every partition has it, each attached to the parent's


def test_its_downgrade_drops_the_index_from_the_parent_and_every_partition_while_a_writer_inserts(
    migrated: ProvisionedDatabases, logs_target: runner.Target, tmp_path: Path
) -> None:
    """DROP INDEX CONCURRENTLY is refused on a partitioned index: the helper drops the parent's under a
    short lock_timeout instead, and the partitions' go with it."""
    target = runner.Target(
        logs_target.tree, logs_target.url, logs_target.expected_database, tree_with_index_revision(tmp_path)
    )
    runner.upgrade(target)
    with writer_inserting(migrated, "2s") as failures:
        runner.downgrade(target, runner.head_revision(runner.tree_named("logs")))
    assert failures == []
    with migrated.server.connect(migrated.databases[DatabaseKey.LOGS]) as logs:
        left = logs.execute(
            "SELECT count(*) FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE (t.relname = 'system_logs' OR t.relispartition) "
            "AND pg_get_indexdef(x.indexrelid) LIKE '%(trace_id)%'"
        ).fetchone()
    assert left == (0,)
    assert runner.current_revision(target) == runner.head_revision(runner.tree_named("logs"))
