"""Partition system_logs and llm_logs by time, in place and online.

Revision ID: logs_0004
Revises: logs_0003
Create Date: 2026-12-04

Both tables only grow: old rows leave only by retention, and a DELETE of a month of logs writes as
much WAL as the rows themselves and returns no space. Partitioned by created_at, retention drops
whole partitions (migrations.shared.partitions), in milliseconds and with no WAL to speak of.

The interval per table follows its volume and its retention:
- system_logs by DAY: the busiest table, kept for weeks (30 days by default); a day is a partition
  small enough to drop at once and to index quickly, and queries for "the last hour" read one;
- llm_logs by MONTH: one row per model call, far fewer rows, kept for over a year (400 days) for
  cost reports by month; daily partitions would mean some 400 tables for little gain.

Existing rows are not moved: each table becomes the partition `<table>_p_before` of its partitioned
successor (migrations.shared.partition_conversion says how, and why it blocks writers for a moment
only). The primary key becomes (id, created_at), as PostgreSQL requires of a partitioned table; the
other indexes are the same, under the same names, on the parent and on every partition.

The downgrade is refused: it would rewrite every row into one table under a lock.

The tables and their intervals are frozen here, as this revision first ran (model.log_lifecycle's
PARTITION_INTERVALS on 2026-12-04): a revision already applied must do the same on every database
it still meets, so a log table partitioned later (added to the model) gets a revision of its own
rather than changing this one. The interval arithmetic is copied too, for the same reason.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from migrations.shared.partition_conversion import convert, refuse_downgrade

revision: str = "logs_0004"
down_revision: str | None = "logs_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Made ahead here so that the tree alone leaves tables that take today's and the next weeks' rows;
# the stack's maintenance (headhunter-db:logPremake) keeps the window after that.
PREMAKE = timedelta(days=14)

# Read by the migration gate (docs/migration-gate.md), as a literal; they change nothing this revision does.
gate_waivers = [
    {
        "rule": "drop-or-rename-outside-contract",
        "statement": 'ALTER TABLE "system_logs" RENAME TO "system_logs_p_before"',
        "reason": "the old table becomes the first partition of its successor, which takes the name system_logs "
        "in the same transaction (partition_conversion's swap: milliseconds under a 1 s lock_timeout): the "
        "application never sees a table or a column go, it writes to and reads system_logs throughout",
    },
    {
        "rule": "drop-or-rename-outside-contract",
        "statement": 'ALTER TABLE "llm_logs" RENAME TO "llm_logs_p_before"',
        "reason": "the old table becomes the first partition of its successor, which takes the name llm_logs "
        "in the same transaction (partition_conversion's swap: milliseconds under a 1 s lock_timeout): the "
        "application never sees a table or a column go, it writes to and reads llm_logs throughout",
    },
]


@dataclass(frozen=True)
class FrozenInterval:
    """A day or a month of rows per partition, in UTC, named pg_partman-like (migrations.shared.partitions.Interval)."""

    monthly: bool

    def start_of(self, moment: datetime) -> datetime:
        day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return day.replace(day=1) if self.monthly else day

    def after(self, start: datetime) -> datetime:
        if not self.monthly:
            return start + timedelta(days=1)
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)

    def suffix(self, start: datetime) -> str:
        return start.strftime("p%Y%m" if self.monthly else "p%Y%m%d")


DAY = FrozenInterval(monthly=False)
MONTH = FrozenInterval(monthly=True)
PARTITION_INTERVALS = {"system_logs": DAY, "llm_logs": MONTH}


def upgrade() -> None:
    for table, interval in PARTITION_INTERVALS.items():
        convert(table, interval, PREMAKE)


def downgrade() -> None:
    refuse_downgrade("system_logs")
