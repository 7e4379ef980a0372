"""Every benchmark's quick run, so that none rots: it runs against the real server and engine and prints
its table, each row with its numbers (a benchmark that predates a change of the model fails here, not in
the hour-long `scripts/bench`)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys

import pytest

import bench
from bench import run
from ops.paths import REPO_ROOT

BENCHMARKS = [module.__name__ for module in run.BENCHMARKS]
MEASURED = re.compile(r"\d")
NOT_A_NUMBER = re.compile(r"\b(nan|inf)\b")


def table_rows(printed: str) -> list[list[str]]:
    """The data rows of every markdown table printed: the lines after a table's separator row."""
    rows, in_table = [], False
    for line in printed.splitlines():
        if not line.startswith("|"):
            in_table = False
        elif line.startswith("| ---"):
            in_table = True
        elif in_table:
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_every_benchmark_that_runs_alone_is_one_scripts_bench_runs() -> None:
    """A new module with a main() is a benchmark: it must be in run.BENCHMARKS, and so in the quick runs below."""
    standalone = {
        f"bench.{found.name}"
        for found in pkgutil.iter_modules(bench.__path__)
        if found.name != "run" and hasattr(importlib.import_module(f"bench.{found.name}"), "main")
    }
    assert standalone == set(BENCHMARKS)


@pytest.mark.slow
@pytest.mark.timeout(300)  # the slowest (rotation: two stacks deployed, one rotation each) takes about 2 min
@pytest.mark.parametrize("module", BENCHMARKS)
def test_a_quick_run_prints_its_tables_with_numbers(module: str) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", module, "--quick"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=280
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = table_rows(ran.stdout)
    assert rows, ran.stdout
    for row in rows:
        values = row[1:]  # the first cell names what was measured
        assert any(MEASURED.search(value) for value in values), row
        assert not any(NOT_A_NUMBER.search(value) for value in values), row
