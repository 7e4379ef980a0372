"""Medians with their spread, and latency percentiles."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def ratio_to(self, baseline: Spread) -> float:
        return self.median / baseline.median if baseline.median else float("inf")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of values already sorted ascending."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]
