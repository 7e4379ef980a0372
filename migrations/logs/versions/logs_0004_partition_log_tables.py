"""Partition system_logs and llm_logs by time, in place and online.

Revision ID: logs_0004
Revises: logs_0003
Create Date: 2026-12-04

Both tables only grow: old rows leave only by retention, and a DELETE of a month of logs writes as
much WAL as the rows themselves and returns no space. Partitioned by created_at, retention drops
whole partitions (migrations.shared.partitions), in milliseconds and with no WAL to speak of.

The interval per table (model.log_lifecycle.PARTITION_INTERVALS, which maintenance follows too)
follows its volume and its retention:
- system_logs by DAY: the busiest table, kept for weeks (30 days by default); a day is a partition
  small enough to drop at once and to index quickly, and queries for "the last hour" read one;
- llm_logs by MONTH: one row per model call, far fewer rows, kept for over a year (400 days) for
  cost reports by month; daily partitions would mean some 400 tables for little gain.

Existing rows are not moved: each table becomes the partition `<table>_p_before` of its partitioned
successor (migrations.shared.partition_conversion says how, and why it blocks writers for a moment
only). The primary key becomes (id, created_at), as PostgreSQL requires of a partitioned table; the
other indexes are the same, under the same names, on the parent and on every partition.

The downgrade is refused: it would rewrite every row into one table under a lock.
"""

from collections.abc import Sequence
from datetime import timedelta

from migrations.shared.partition_conversion import convert, refuse_downgrade
from model.log_lifecycle import PARTITION_INTERVALS

revision: str = "logs_0004"
down_revision: str | None = "logs_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Made ahead here so that the tree alone leaves tables that take today's and the next weeks' rows;
# the stack's maintenance (headhunter-db:logPremake) keeps the window after that.
PREMAKE = timedelta(days=14)


def upgrade() -> None:
    for table, interval in PARTITION_INTERVALS.items():
        convert(table, interval, PREMAKE)


def downgrade() -> None:
    refuse_downgrade("system_logs")
