"""The logs database's lifecycle: how much time a partition holds, how long rows live, how far ahead.

Each log table is range-partitioned on created_at by PARTITION_INTERVALS (logs_0004 says why each);
a stack decides each table's retention and the premake window, both in whole days (stack config
`logRetention` and `logPremake`, validated by infra/settings.py). Changing a table's interval here
changes the partitions made from then on; those made before keep theirs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class Interval(enum.StrEnum):
    """How much time one partition holds."""

    DAY = "day"
    MONTH = "month"

    def start_of(self, moment: datetime) -> datetime:
        """The start of the partition that holds `moment`."""
        day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return day if self is Interval.DAY else day.replace(day=1)

    def after(self, start: datetime) -> datetime:
        """The start of the partition after the one starting at `start`."""
        if self is Interval.DAY:
            return start + timedelta(days=1)
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)

    def suffix(self, start: datetime) -> str:
        """The partition's name suffix, pg_partman-like: p20261204 for a day, p202612 for a month."""
        return start.strftime("p%Y%m%d" if self is Interval.DAY else "p%Y%m")


PARTITION_INTERVALS = {"system_logs": Interval.DAY, "llm_logs": Interval.MONTH}
LOG_TABLES = tuple(PARTITION_INTERVALS)
"""The partitioned log tables of the logs database, each with a retention."""
MAX_RETENTION_DAYS = 3660  # ten years: beyond that a typo (400 for 40, a year written as days twice) is likelier
MAX_PREMAKE_DAYS = 366


@dataclass(frozen=True)
class LogLifecycle:
    retention_days: Mapping[str, int]
    """Per log table: a partition whose every row is older than this many days is dropped."""
    premake_days: int
    """Partitions exist for every moment from now to this many days ahead."""

    def as_output(self) -> dict[str, object]:
        """The stack's `log_lifecycle` output: what scripts/verify checks the partitions against."""
        return {"retention_days": dict(self.retention_days), "premake_days": self.premake_days}

    def premake_until(self, now: datetime) -> datetime:
        return now + timedelta(days=self.premake_days)

    def retention_cutoff(self, table: str, now: datetime) -> datetime:
        """Rows older than this are past retention: a partition that ends at or before it is dropped."""
        return now - timedelta(days=self.retention_days[table])


def days_text(days: int) -> str:
    """A number of days as the stack config writes it: 30d."""
    return f"{days}d"
