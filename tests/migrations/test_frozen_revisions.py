"""An applied revision does on every fresh database what it did when first applied, whatever the live model
says since (tests/unit/test_revision_imports.py checks the imports; this checks the behaviour on a server)."""

from __future__ import annotations

import pytest

from fixtures.cluster import ProvisionedDatabases
from migrations import runner
from migrations.shared.tree import LOGS
from model.log_lifecycle import PARTITION_INTERVALS, Interval
from model.names import DatabaseKey


def test_a_log_table_partitioned_later_leaves_logs_0004_as_it_was(
    provisioned: ProvisionedDatabases, logs_target: runner.Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third partitioned log table in the model (which its own, later revision creates) is not logs_0004's:
    a fresh database still migrates to head, and logs_0004 partitions its two tables only."""
    monkeypatch.setitem(PARTITION_INTERVALS, "audit_logs", Interval.DAY)
    runner.upgrade(logs_target)
    assert runner.current_revision(logs_target) == runner.head_revision(LOGS)
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        partitioned = logs.execute("SELECT relname FROM pg_class WHERE relkind = 'p' ORDER BY 1").fetchall()
    assert [name for (name,) in partitioned] == ["llm_logs", "system_logs"]
