"""When a deploy plans its log maintenance step (infra.log_maintenance.is_due): each bound, from both sides.

The step's diff plans a run only when is_due says so: a bound read wrong means partitions not made
before the writers need them, or rows kept past retention with the deploy saying nothing is due.
The bounds are those of migrations.shared.partitions: a partition is made for every moment up to
and including the premake window's end, and one whose upper bound is at or before the retention
cutoff is dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.log_maintenance import is_due
from model.log_lifecycle import LOG_TABLES, LogLifecycle

NOW = datetime(2026, 12, 7, 15, 30, tzinfo=UTC)
# Retentions that differ per table: a bound read from the wrong table fails one of the cases.
LIFECYCLE = LogLifecycle(retention_days={"system_logs": 30, "llm_logs": 400}, premake_days=14)
JUST = timedelta(microseconds=1)
INSIDE = timedelta(days=1)


def coverage(
    table: str | None = None, covered_until: datetime | None = None, oldest_ends: datetime | None = None
) -> dict[str, dict[str, str]]:
    """Every table covered a day past the premake window, its oldest partition ending a day inside
    retention (nothing due), but `table`'s bounds where given; as the step records them (isoformat)."""
    reach = {
        name: {
            "oldest_ends": (LIFECYCLE.retention_cutoff(name, NOW) + INSIDE).isoformat(),
            "covered_until": (LIFECYCLE.premake_until(NOW) + INSIDE).isoformat(),
        }
        for name in LOG_TABLES
    }
    if table is not None and covered_until is not None:
        reach[table]["covered_until"] = covered_until.isoformat()
    if table is not None and oldest_ends is not None:
        reach[table]["oldest_ends"] = oldest_ends.isoformat()
    return reach


def test_nothing_missing_ahead_and_nothing_past_retention_is_not_due() -> None:
    assert is_due(coverage(), LIFECYCLE, NOW) is False


@pytest.mark.parametrize("table", LOG_TABLES)
def test_a_table_without_partitions_is_due(table: str) -> None:
    reach = coverage()
    del reach[table]
    assert is_due(reach, LIFECYCLE, NOW) is True


@pytest.mark.parametrize("table", LOG_TABLES)
@pytest.mark.parametrize(
    ("past_window_end", "due"),
    [
        (-INSIDE, True),  # a day of the window has no partition
        (timedelta(0), True),  # the window's last moment has none: partitions end before their upper bound
        (JUST, False),
    ],
    ids=["short by a day", "ends at the window's end", "reaches past it"],
)
def test_the_premake_window_is_due_until_a_partition_reaches_past_its_end(
    table: str, past_window_end: timedelta, due: bool
) -> None:
    covered_until = LIFECYCLE.premake_until(NOW) + past_window_end
    assert is_due(coverage(table, covered_until=covered_until), LIFECYCLE, NOW) is due


@pytest.mark.parametrize("table", LOG_TABLES)
@pytest.mark.parametrize(
    ("past_cutoff", "due"),
    [
        (-INSIDE, True),  # every row a day past retention
        (timedelta(0), True),  # ends exactly at the cutoff: every row it may hold is older, retention drops it
        (JUST, False),  # may hold a row of the retention window: kept
    ],
    ids=["a day past retention", "ends exactly at retention", "within retention"],
)
def test_retention_is_due_once_the_oldest_partition_ends_at_or_before_the_cutoff(
    table: str, past_cutoff: timedelta, due: bool
) -> None:
    oldest_ends = LIFECYCLE.retention_cutoff(table, NOW) + past_cutoff
    assert is_due(coverage(table, oldest_ends=oldest_ends), LIFECYCLE, NOW) is due
