"""`scripts/bench [--quick]`: every benchmark, then reports/bench.md, reports/bench.json and README.

Medians over several runs with min and max beside them; each result is a ratio to a baseline
measured in the same run.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import adoption_move, deploy_cost, fixture, index_value, live_load, log_lifecycle, migration_locks, rotation
from bench.pgbench import Latencies
from bench.stats import Spread
from fixtures.cluster import ProvisionedDatabases, Server, drop_provisioned
from ops import paths
from ops.commands import cli
from ops.commands.docs import between_markers

BENCHMARKS = (deploy_cost, live_load, index_value, adoption_move, log_lifecycle, rotation, migration_locks)
"""Every benchmark this command runs. Each also runs alone, `python -m bench.<module> [--quick]`, and its
quick run is in the suite (tests/toolchain/test_benchmarks.py), so that none rots unnoticed."""

README_BEGIN, README_END = "<!-- bench:begin (scripts/bench) -->", "<!-- bench:end -->"
# Its own block: `python -m bench.log_lifecycle` measures the lifecycle alone and renders only this one.
LIFECYCLE_BEGIN = "<!-- bench-lifecycle:begin (scripts/bench, python -m bench.log_lifecycle) -->"
LIFECYCLE_END = "<!-- bench-lifecycle:end -->"
ROTATION_BEGIN = "<!-- bench-rotation:begin (scripts/bench, python -m bench.rotation) -->"
ROTATION_END = "<!-- bench-rotation:end -->"


def fmt(spread: Spread, unit: str, digits: int = 1) -> str:
    return f"{spread.median:.{digits}f} {unit} ({spread.low:.{digits}f}-{spread.high:.{digits}f})"


VARIANTS = (
    deploy_cost.Variant("dev stack"),
    deploy_cost.Variant("dev stack, 10 extra read-only roles", read_only_roles=10),
    deploy_cost.Variant("dev stack, 30 extra read-only roles", read_only_roles=30),
    deploy_cost.Variant("dev stack, 5 tables in the logs tree", logs_tables=5),
    deploy_cost.Variant("dev stack, 100 tables in the logs tree", logs_tables=100),
    deploy_cost.Variant("dev stack, 500 tables in the logs tree", logs_tables=500),
)
GOAL_NOOP_OVER_FLOOR = 1.5
GOAL_NOOP_500_OVER_5_TABLES = 1.1
GOAL_COLD_MS_PER_ROLE_RESOURCE = 40.0


def measure_deploy_cost(server: Server, cold_runs: int, noop_pairs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as temp:
        floor = deploy_cost.floors(Path(temp))
        measured = {}
        for variant in VARIANTS:
            print(f"bench: deploy cost, {variant.label}", file=sys.stderr, flush=True)
            measured[variant.label] = deploy_cost.measure(server, variant, floor, cold_runs, noop_pairs)
    sql_floor = deploy_cost.plain_sql_provisioning(server, cold_runs)
    dev = measured[VARIANTS[0].label]
    rows = deploy_cost_rows(measured, sql_floor)
    growth = growth_rows(measured)
    five, five_hundred = measured[VARIANTS[3].label], measured[VARIANTS[5].label]
    thirty = per_added_resource(dev, measured[VARIANTS[2].label])
    goals = {
        "noop_dev_over_floor": dev.noop.ratio_to(dev.floor),
        "noop_dev_over_floor_with_secret": dev.noop.ratio_to(dev.floor_with_secret),
        "noop_500_over_5_tables": five_hundred.noop.ratio_to(five.noop),
        "cold_ms_per_resource_30_roles": thirty[0],
    }
    return {
        "measured": {label: asdict(m) for label, m in measured.items()},
        "plain_sql_provisioning_s": asdict(sql_floor),
        "goals": goals,
        "goals_met": {
            "noop_dev_over_floor": goals["noop_dev_over_floor"] <= GOAL_NOOP_OVER_FLOOR,
            "noop_500_over_5_tables": goals["noop_500_over_5_tables"] <= GOAL_NOOP_500_OVER_5_TABLES,
            "cold_ms_per_resource_30_roles": goals["cold_ms_per_resource_30_roles"] <= GOAL_COLD_MS_PER_ROLE_RESOURCE,
        },
        "rows": rows,
        "growth_rows": growth,
    }


def deploy_cost_rows(measured: dict[str, deploy_cost.Measured], sql_floor: Spread) -> list[tuple[str, ...]]:
    """The deploy cost table: the floors, each variant measured, and the same provisioning as plain SQL."""
    dev = next(iter(measured.values()))
    # Each variant's ratio is to the empty program's runs paired with its own; this row shows the dev stack's.
    rows: list[tuple[str, ...]] = [
        ("empty Python program (the engine's floor)", "0", "-", fmt(dev.floor, "s", 2), "1.00x", "-"),
        ("empty Python program, one secret in its stack", "0", "-", fmt(dev.floor_with_secret, "s", 2), "-", "1.00x"),
    ]
    rows += [
        (
            m.variant.label,
            str(m.resources),
            fmt(m.cold, "s", 2),
            fmt(m.noop, "s", 2),
            f"{m.noop.ratio_to(m.floor):.2f}x",
            f"{m.noop.ratio_to(m.floor_with_secret):.2f}x",
        )
        for m in measured.values()
    ]
    rows.append(("roles, databases, grants as plain SQL, one psql session", "-", fmt(sql_floor, "s", 3), "-", "-", "-"))
    return rows


def per_added_resource(base: deploy_cost.Measured, grown: deploy_cost.Measured) -> tuple[float, float]:
    """(cold, no-op) milliseconds per resource `grown` has more than `base`."""
    added = grown.resources - base.resources
    return (
        1000 * (grown.cold.median - base.cold.median) / added,
        1000 * (grown.noop.median - base.noop.median) / added,
    )


def growth_rows(measured: dict[str, deploy_cost.Measured]) -> list[tuple[str, ...]]:
    dev, five = measured[VARIANTS[0].label], measured[VARIANTS[3].label]
    rows: list[tuple[str, ...]] = []
    for grown in (measured[VARIANTS[1].label], measured[VARIANTS[2].label]):
        cold_ms, noop_ms = per_added_resource(dev, grown)
        rows.append(
            (
                f"+{grown.variant.read_only_roles} read-only roles (+{grown.resources - dev.resources} resources)",
                f"{cold_ms:.1f} ms per resource",
                f"{noop_ms:.1f} ms per resource",
                f"{grown.noop.ratio_to(dev.noop):.2f}x",
            )
        )
    for grown in (measured[VARIANTS[4].label], measured[VARIANTS[5].label]):
        added = grown.variant.logs_tables - five.variant.logs_tables
        rows.append(
            (
                f"{grown.variant.logs_tables} tables in the logs tree, against 5 (+{added} tables)",
                f"{1000 * (grown.cold.median - five.cold.median) / added:.1f} ms per table",
                f"{1000 * (grown.noop.median - five.noop.median) / added:.2f} ms per table",
                f"{grown.noop.ratio_to(five.noop):.2f}x",
            )
        )
    return rows


def measure_live_load(
    provisioned: ProvisionedDatabases, runs: int, least_build_window_s: float = 10.0
) -> dict[str, Any]:
    build_s = live_load.idle_build_seconds(provisioned)
    # Writers run well past the build: a build slowed by the writers must still end while they write.
    seconds = live_load.LEAD_S + max(least_build_window_s, 4 * build_s) + live_load.TAIL_S
    scenarios: dict[str, list[dict[str, float]]] = {"idle": [], "project (CONCURRENTLY)": [], "plain CREATE INDEX": []}
    for _ in range(runs):
        idle = live_load.idle(provisioned, seconds)
        scenarios["idle"].append(summary(idle))
        for label, build in (
            ("project (CONCURRENTLY)", live_load.project_build),
            ("plain CREATE INDEX", live_load.plain_build),
        ):
            window = live_load.under_load(provisioned, build, seconds)
            scenarios[label].append(
                {**summary(window.latencies), "build_s": window.build_seconds, "overran": window.overran}
            )
            live_load.reset(provisioned)
    idle_p99 = Spread.of([run["p99_ms"] for run in scenarios["idle"]])
    rows = []
    for label, results in scenarios.items():
        p50, p99, worst = (Spread.of([r[key] for r in results]) for key in ("p50_ms", "p99_ms", "max_ms"))
        slow = max(int(r["over_1s"]) for r in results)
        rows.append(
            (
                label,
                fmt(p50, "ms", 2),
                fmt(p99, "ms", 2),
                fmt(worst, "ms", 0),
                str(slow),
                f"{p99.ratio_to(idle_p99):.2f}x",
            )
        )
    project_p99 = Spread.of([r["p99_ms"] for r in scenarios["project (CONCURRENTLY)"]])
    project_slow = max(int(r["over_1s"]) for r in scenarios["project (CONCURRENTLY)"])
    return {
        "scenarios": scenarios,
        "rows": rows,
        "idle_build_s": build_s,
        "goal_met": project_p99.ratio_to(idle_p99) <= 2.0 and project_slow == 0,
    }


def summary(latencies: Latencies) -> dict[str, float]:
    return {
        "p50_ms": latencies.p50,
        "p99_ms": latencies.p99,
        "max_ms": latencies.max,
        "over_1s": latencies.over_one_second,
        "inserts": len(latencies.values_ms),
        "inserts_per_s": latencies.inserts_per_second,
    }


def measure_index_value(
    provisioned: ProvisionedDatabases, runs: int, repeats: int, writer_s: float = 8.0
) -> dict[str, Any]:
    throughput: dict[str, list[float]] = {"without secondary indexes": [], "with the tree's indexes": []}
    without = index_value.time_queries(provisioned, repeats)
    for _ in range(runs):
        throughput["without secondary indexes"].append(
            live_load.idle(provisioned, writer_s, rate_per_s=None).inserts_per_second
        )
    live_load.project_build(provisioned)
    with_indexes = index_value.time_queries(provisioned, repeats)
    for _ in range(runs):
        throughput["with the tree's indexes"].append(
            live_load.idle(provisioned, writer_s, rate_per_s=None).inserts_per_second
        )
    base = Spread.of(throughput["without secondary indexes"])
    rows = [
        (
            label,
            f"{Spread.of(v).median:.0f} inserts/s ({min(v):.0f}-{max(v):.0f})",
            f"{Spread.of(v).ratio_to(base):.2f}x",
        )
        for label, v in throughput.items()
    ]
    queries = []
    for label in index_value.ADMIN_QUERIES:
        before, after = without[label], with_indexes[label]
        queries.append(
            (
                label,
                fmt(before.latency_ms, "ms", 2),
                fmt(after.latency_ms, "ms", 2),
                f"{before.latency_ms.ratio_to(after.latency_ms):.1f}x faster",
                ", ".join(after.plan_indexes) or "no index",
            )
        )
    return {"insert_rows": rows, "query_rows": queries, "throughput": throughput}


def measure_adoption_move(server: Server, rows: int, runs: int) -> dict[str, Any]:
    measured = [adoption_move.measure(server, rows) for _ in range(runs)]
    move_rate = Spread.of([run.rows / run.move_s for run in measured])
    floor_rate = Spread.of([run.rows / run.floor_s for run in measured])
    held = Spread.of([1000 * run.lock_held_s for run in measured])
    table_rows = [
        (
            "binary COPY between the databases (the floor)",
            f"{floor_rate.median:,.0f} rows/s ({floor_rate.low:,.0f}-{floor_rate.high:,.0f})",
            "1.00x",
            "-",
        ),
        (
            "scripts/adopt's move (ids, map, watermark, checksums, final step)",
            f"{move_rate.median:,.0f} rows/s ({move_rate.low:,.0f}-{move_rate.high:,.0f})",
            f"{move_rate.ratio_to(floor_rate):.2f}x",
            fmt(held, "ms", 0),
        ),
    ]
    return {"runs": [asdict(run) for run in measured], "rows": table_rows, "misplaced_rows": rows}


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


DEPLOY_COST_HEADER = (
    "what",
    "resources",
    "cold `up`",
    "no-op `up`",
    "no-op vs empty program",
    "vs empty program with a secret",
)


def markdown(results: dict[str, Any], sizes: fixture.Sizes) -> str:
    cost = results["deploy_cost"]
    return "\n\n".join(
        [
            f"Measured {results['date']} on this project's 2-core machine; {sizes.system_logs:,} rows in system_logs, "
            f"{sizes.llm_logs:,} in llm_logs. Medians, (min-max).",
            "**Deploy cost** (plain `pulumi up --yes --skip-preview`: the real engine, provider and server; "
            "cold = from nothing, both trees migrated; no-op = nothing to change, each run paired with one of "
            f"the empty program; goals: {goals_line(cost)})\n\n" + table(DEPLOY_COST_HEADER, cost["rows"]),
            "**Growth** (medians of the variants above)\n\n"
            + table(("added", "cold `up`", "no-op `up`", "no-op vs without"), cost["growth_rows"]),
            live_load_section(results["live_load"]),
            *index_value_sections(results["index_value"]),
            adoption_move_section(results["adoption_move"]),
        ]
    )


def live_load_section(load: dict[str, Any]) -> str:
    return (
        "**Writers while logs_0003 builds its indexes** (p99 goal: within 2x idle, nothing over 1 s: "
        f"{'met' if load['goal_met'] else 'NOT met'})\n\n"
        + table(("scenario", "p50", "p99", "max", "inserts over 1 s", "p99 vs idle"), load["rows"])
    )


def index_value_sections(value: dict[str, Any]) -> list[str]:
    return [
        "**Insert throughput of the logs writer**\n\n" + table(("table", "throughput", "ratio"), value["insert_rows"]),
        "**Admin queries**\n\n"
        + table(("query", "without indexes", "with indexes", "speed-up", "index used"), value["query_rows"]),
    ]


def adoption_move_section(move: dict[str, Any]) -> str:
    return (
        f"**Adoption: moving {move['misplaced_rows']:,} misplaced rows** "
        "(`scripts/adopt --apply`, no writer; throughput as a ratio to the floor)\n\n"
        + table(("what", "throughput", "vs the floor", "final lock held"), move["rows"])
    )


def lifecycle_markdown(lifecycle: dict[str, Any], date: str) -> str:
    sizes = lifecycle["sizes"]
    return "\n\n".join(
        [
            f"Measured {date} on this project's 2-core machine; {sizes['rows']:,} generated rows over "
            f"{sizes['days']} days in each system_logs pair, {sizes['llm_rows']:,} in each llm_logs pair; "
            "one run (no medians).",
            *lifecycle_sections(lifecycle),
        ]
    )


def lifecycle_sections(lifecycle: dict[str, Any]) -> list[str]:
    sizes, goals = lifecycle["sizes"], lifecycle["goals"]
    met = {True: "met", False: "NOT met"}
    retention_goal = (
        f"goals: at least {log_lifecycle.GOAL_DROP_FASTER:.0f}x faster ({goals['drop_faster']:.0f}x: "
        f"{met[goals['drop_faster'] >= log_lifecycle.GOAL_DROP_FASTER]}), at least "
        f"{log_lifecycle.GOAL_LESS_WAL:.0f}x less WAL ({goals['less_wal']:.0f}x: "
        f"{met[goals['less_wal'] >= log_lifecycle.GOAL_LESS_WAL]}), space returned "
        f"({met[bool(goals['drop_returns_space'])]})"
    )
    build_goal = (
        f"goal: p99 within {log_lifecycle.GOAL_BUILD_P99_OVER_IDLE:.0f}x idle, nothing over 1 s "
        f"({goals['build_p99_over_idle']:.2f}x, {goals['build_inserts_over_1s']} over 1 s: "
        f"{met[goals['build_p99_over_idle'] <= 2.0 and goals['build_inserts_over_1s'] == 0]}; "
        f"{goals['build_p99_over_one_core_busy']:.2f}x the writers beside a busy core and no build)"
    )
    return [
        f"**Log retention: the oldest {sizes['dropped_days']} of {sizes['days']} days of a {sizes['rows']:,}-row "
        f"system_logs** (writers inserting throughout; {retention_goal})\n\n"
        + table(
            ("how", "time", "WAL written", "disk returned", "writers' p99", "inserts over 1 s"),
            lifecycle["retention_rows"],
        ),
        "**Admin queries, partitioned vs not** (the same rows: the retention window left by the above, in "
        f"{lifecycle['queried_partitions'][log_lifecycle.PARTITIONED]} daily partitions with the default premake; "
        f"p50 / p99; no query slower by more than 10%: {met[bool(goals['no_query_slower'])]})\n\n"
        + table(("query", "unpartitioned", "partitioned", "speed-up (p50)"), lifecycle["query_rows"]),
        f"**Writers while an index revision builds on system_logs** ({build_goal})\n\n"
        + table(("table", "build", "p50", "p99", "max", "inserts over 1 s", "p99 vs idle"), lifecycle["build_rows"]),
        "**logs_0004's online conversion of the deployment above** (both log tables, writers on; no row moved, "
        "so it should beat the floor)\n\n"
        + table(
            ("what", "time", "vs the floor", "lock held (at most)", "inserts over 1 s", "rows kept"),
            lifecycle["conversion_rows"],
        ),
    ]


def goals_line(cost: dict[str, Any]) -> str:
    goals, met = cost["goals"], cost["goals_met"]
    parts = [
        f"no-op dev stack {goals['noop_dev_over_floor']:.2f}x the empty program (≤ {GOAL_NOOP_OVER_FLOOR}x; "
        f"{goals['noop_dev_over_floor_with_secret']:.2f}x the one holding a secret)",
        f"500 tables {goals['noop_500_over_5_tables']:.2f}x 5 tables (≤ {GOAL_NOOP_500_OVER_5_TABLES}x)",
        f"30 roles {goals['cold_ms_per_resource_30_roles']:.1f} ms per resource cold "
        f"(≤ {GOAL_COLD_MS_PER_ROLE_RESOURCE:.0f})",
    ]
    keys = ("noop_dev_over_floor", "noop_500_over_5_tables", "cold_ms_per_resource_30_roles")
    return "; ".join(f"{part}: {'met' if met[key] else 'NOT met'}" for part, key in zip(parts, keys, strict=True))


def update_readme(text: str, begin: str = README_BEGIN, end_marker: str = README_END) -> None:
    readme = paths.REPO_ROOT / "README.md"
    readme.write_text(between_markers(readme.read_text(), begin, end_marker, text))


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("bench", sys.argv[1:] if argv is None else argv)
    sizes = fixture.Sizes(200_000, 50_000) if args.quick else fixture.Sizes()
    runs, repeats = (1, 3) if args.quick else (3, 15)
    started = time.monotonic()
    print(f"bench: loading {sizes.system_logs:,} + {sizes.llm_logs:,} rows", file=sys.stderr)
    provisioned = fixture.loaded_logs_database(sizes)
    try:
        cost = measure_deploy_cost(
            provisioned.server, cold_runs=1 if args.quick else 3, noop_pairs=2 if args.quick else 5
        )
        print("bench: writers under a migration", file=sys.stderr)
        load = measure_live_load(provisioned, runs)
        print("bench: what the indexes are worth", file=sys.stderr)
        value = measure_index_value(provisioned, runs, repeats)
        print("bench: the adoption's move of misplaced rows", file=sys.stderr)
        move = measure_adoption_move(provisioned.server, 100_000 if args.quick else 1_000_000, runs)
        # Last: it converts the deployment's tables to partitions (logs_0004), which nothing above expects.
        lifecycle_sizes = log_lifecycle.Sizes(300_000, llm_rows=50_000) if args.quick else log_lifecycle.Sizes()
        lifecycle = log_lifecycle.measure(
            provisioned, lifecycle_sizes, 20 if args.quick else 200, 15.0 if args.quick else 60.0
        )
    finally:
        drop_provisioned(provisioned)
    print("bench: password rotation under clients", file=sys.stderr)
    rotations = rotation.measure(provisioned.server, 2 if args.quick else 10)
    print("bench: writers while a migration needs user_invitations", file=sys.stderr)
    locks = migration_locks.measure(migration_locks.QUICK if args.quick else migration_locks.FULL)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "quick": args.quick,
        "deploy_cost": cost,
        "live_load": load,
        "index_value": value,
        "adoption_move": move,
        "log_lifecycle": lifecycle,
        "rotation": [asdict(run) for run in rotations],
        "migration_locks": locks,
        "elapsed_s": time.monotonic() - started,
    }
    reports = paths.REPO_ROOT / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "bench.json").write_text(json.dumps(results, indent=2, default=str))
    text = markdown(results, sizes)
    lifecycle_text = lifecycle_markdown(lifecycle, results["date"])
    rotation_text = rotation.markdown(rotations, results["date"])
    locks_text = migration_locks.markdown(locks, results["date"])
    (reports / "bench.md").write_text(f"{text}\n\n{lifecycle_text}\n\n{rotation_text}\n\n{locks_text}\n")
    if not args.quick:
        update_readme(text)
        update_readme(lifecycle_text, LIFECYCLE_BEGIN, LIFECYCLE_END)
        update_readme(rotation_text, ROTATION_BEGIN, ROTATION_END)
        migration_locks.update_doc(locks_text)
    print(f"{text}\n\n{lifecycle_text}\n\n{rotation_text}\n\n{locks_text}")
    print(f"bench: done in {results['elapsed_s']:.0f}s; reports/bench.md, reports/bench.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
