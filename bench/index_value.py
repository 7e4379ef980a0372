"""Do the indexes earn their keep? Insert throughput and admin-query latency, with and without them."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import psycopg

from bench import fixture
from bench.stats import Spread
from fixtures.cluster import ProvisionedDatabases
from model.names import DatabaseKey

# The admin pages' queries the indexes exist for.
ADMIN_QUERIES = {
    "recent errors of one type": (
        "SELECT id, created_at, component, message FROM system_logs "
        "WHERE error_type = 'Error3' ORDER BY created_at DESC LIMIT 50"
    ),
    "recent logs of one component": (
        "SELECT id, created_at, level, message FROM system_logs "
        "WHERE component = 'component_7' ORDER BY created_at DESC LIMIT 100"
    ),
    "recent logs at one level": (
        "SELECT id, created_at, component, message FROM system_logs "
        "WHERE level = 'WARNING' ORDER BY created_at DESC LIMIT 100"
    ),
    "LLM cost per model per day (7 days)": (
        "SELECT model, date_trunc('day', created_at) AS day, sum(cost_usd), sum(total_tokens) FROM llm_logs "
        "WHERE created_at >= now() - interval '7 days' GROUP BY 1, 2"
    ),
}


@dataclass(frozen=True)
class QueryTiming:
    latency_ms: Spread
    plan_indexes: tuple[str, ...]


def reader(provisioned: ProvisionedDatabases) -> psycopg.Connection:
    return provisioned.connect_as(provisioned.names.of("logs_reader"), DatabaseKey.LOGS)


def indexes_in_plan(plan: object) -> list[str]:
    if isinstance(plan, dict):
        found = [plan["Index Name"]] if "Index Name" in plan else []
        return found + [name for value in plan.values() for name in indexes_in_plan(value)]
    if isinstance(plan, list):
        return [name for item in plan for name in indexes_in_plan(item)]
    return []


def time_queries(provisioned: ProvisionedDatabases, repeats: int) -> dict[str, QueryTiming]:
    timings: dict[str, QueryTiming] = {}
    with reader(provisioned) as connection:
        for label, query in ADMIN_QUERIES.items():
            connection.execute(query).fetchall()  # warm the cache: we compare plans, not disk reads
            samples = []
            for _ in range(repeats):
                started = time.perf_counter()
                connection.execute(query).fetchall()
                samples.append((time.perf_counter() - started) * 1000.0)
            row = connection.execute(f"EXPLAIN (FORMAT JSON) {query}").fetchone()
            assert row is not None
            plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
            timings[label] = QueryTiming(Spread.of(samples), tuple(dict.fromkeys(indexes_in_plan(plan))))
    return timings


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.index_value [--quick]`: what the indexes are worth, alone (scripts/bench runs it too),
    printed; --quick on a small table, once, with short runs of writers."""
    from bench import run

    quick = fixture.quick_asked(argv)
    with fixture.loaded(quick) as provisioned:
        value = run.measure_index_value(
            provisioned, runs=1 if quick else 3, repeats=3 if quick else 15, writer_s=2.0 if quick else 8.0
        )
    print("\n\n".join(run.index_value_sections(value)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
