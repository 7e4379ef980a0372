"""Writers on user_invitations while a migration needs its table: a lock wait, the expand/contract recipe, a rewrite.

The same steady stream of inserts (pgbench as the app role, two clients at RATE_PER_S) runs on a table of
a million invitations in every scenario, and each reports the latencies of the inserts that were due
while its event lasted, as ratios to two baselines measured in the same run: the writers alone (idle),
and beside a loop keeping one core busy (on this 2-core machine any migration's CPU is that much, so what
a scenario adds beyond it is its locks').

- The lock wait (issue 33 item 4): a revision of the tree that needs ACCESS EXCLUSIVE for a moment (ADD
  COLUMN) while a report's transaction holds ACCESS SHARE on the table for READER_S. Before this change a
  run waited once, up to lock_timeout 5 s, and every insert queued behind it; now it waits in tries of
  lock_retry.TRY_LOCK_TIMEOUT, rolled back and retried until the report ends. Goal: no insert over 1 s,
  p99 within 2x the busy-core baseline.
- The recipe (item 7): docs/expand-contract.md's revisions (fixtures/expand_contract), one step at a time
  through the runner as a deploy runs them: the previous version's insert during the expand, the new
  version's from then on.
- The change the migration gate refuses: ALTER COLUMN TYPE rewriting the table, run as any revision ran
  before the gate and these timeouts (lock_timeout 5 s, statement_timeout 30 min): the seconds writers are
  blocked are what the gate prevents.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from bench.pgbench import Latencies, WriterLoad
from bench.stats import Spread
from fixtures.cluster import ProvisionedDatabases, Server, drop_provisioned, provision_with_sql
from fixtures.expand_contract import (
    BACKFILL_REVISION,
    CHECK_REVISION,
    CONTRACT_REVISION,
    EXPAND_REVISION,
    example_trees,
)
from fixtures.revisions import revision_file
from migrations import runner
from migrations.shared import environment, lock_retry
from migrations.shared.heads import declared_head, default_location
from model.names import DatabaseKey, RoleNames
from ops import paths
from ops.commands.docs import between_markers
from ops.localpg import embedded

PREFIX = "benchlock"
GOAL_P99_OVER_BUSY = 2.0
BEFORE_LOCK_TIMEOUT = "5s"  # what env.py set for the whole run before issue 33 (and no retry)
LEAD_S, TAIL_S = 2.0, 1.0  # writers run alone this long before the event, and on after it
RATE_PER_S = 200
"""Invitations are written far less often than logs: a steady 200 a second leaves the two cores room, so a
latency here is a wait for a lock (or the CPU a migration takes), not writers queueing behind themselves."""


@dataclass(frozen=True)
class Sizes:
    rows: int
    reader_s: float
    """How long the report holds its lock once the revision has started."""
    baseline_s: float
    lock_runs: int
    least_step_s: float
    """The shortest writers' window around a recipe step or the rewrite, past LEAD_S and TAIL_S."""


FULL = Sizes(rows=1_000_000, reader_s=15.0, baseline_s=20.0, lock_runs=3, least_step_s=5.0)
QUICK = Sizes(rows=20_000, reader_s=1.5, baseline_s=3.0, lock_runs=1, least_step_s=1.0)

# Each insert a new invitation (the open-email and token indexes are unique), without RETURNING.
OLD_APP_INSERT = (
    "INSERT INTO user_invitations (email, token_hash, role, invited_by, expires_at) "
    "SELECT 'old-' || u || '@example.com', sha256(u::text::bytea), 'recruiter', 42, now() + interval '7 days' "
    "FROM gen_random_uuid() AS u;\n"
)
NEW_APP_INSERT = (
    "INSERT INTO user_invitations (email, email_normalized, token_hash, role, inviter_id, expires_at) "
    "SELECT 'new-' || u || '@example.com', 'new-' || u || '@example.com', sha256(u::text::bytea), 'recruiter', 42, "
    "now() + interval '7 days' FROM gen_random_uuid() AS u;\n"
)
LOCKING_REVISION = revision_file(
    "main_9990",
    "A column added: ACCESS EXCLUSIVE on user_invitations for a moment.",
    'op.execute("ALTER TABLE user_invitations ADD COLUMN lock_bench_note text")',
    'op.execute("ALTER TABLE user_invitations DROP COLUMN lock_bench_note")',
)
RECIPE = (
    (EXPAND_REVISION, "expand: two nullable columns and the sync trigger", OLD_APP_INSERT),
    (BACKFILL_REVISION, "expand: backfill in batches of 1,000", NEW_APP_INSERT),
    (CHECK_REVISION, "expand: CHECK NOT VALID, then VALIDATE", NEW_APP_INSERT),
    (CONTRACT_REVISION, "contract: SET NOT NULL, drop the trigger and invited_by", NEW_APP_INSERT),
)
UNSAFE_CHANGE = "ALTER TABLE user_invitations ALTER COLUMN invited_by TYPE numeric(20)"
UNDO_UNSAFE_CHANGE = "ALTER TABLE user_invitations ALTER COLUMN invited_by TYPE bigint"
RECIPE_UNDONE = (
    "DROP TRIGGER IF EXISTS user_invitations_expand_sync ON user_invitations",
    "DROP FUNCTION IF EXISTS user_invitations_expand_sync()",
    "ALTER TABLE user_invitations DROP CONSTRAINT IF EXISTS ck_user_invitations_email_normalized, "
    "DROP COLUMN IF EXISTS email_normalized, DROP COLUMN IF EXISTS inviter_id, "
    "ADD COLUMN IF NOT EXISTS invited_by bigint",
)


@dataclass(frozen=True)
class Event:
    """The inserts due while an event lasted, how long it lasted and how it ended."""

    latencies: Latencies
    seconds: float
    outcome: str
    overran: bool
    """The event outlasted the writers: inserts due after they stopped were not measured."""


def loaded(rows: int) -> ProvisionedDatabases:
    """The main database at head with `rows` invitations, on the embedded server, under the bench's prefix."""
    server = Server(embedded.start())
    databases = {key: f"{PREFIX}_{key}" for key in DatabaseKey}
    drop_provisioned(ProvisionedDatabases(server, RoleNames(PREFIX), databases, {}))
    provisioned = provision_with_sql(server, PREFIX)
    runner.upgrade(provisioned.migration_target(DatabaseKey.MAIN))
    with as_owner(provisioned) as main:
        main.execute(
            "INSERT INTO user_invitations (email, token_hash, role, invited_by, created_at, expires_at, accepted_at) "
            "SELECT 'user' || i || '@example.com', sha256(('seed' || i)::bytea), "
            "(ARRAY['admin','recruiter','hiring_manager','viewer'])[1 + i %% 4], NULLIF(i %% 7, 0) * 10, "
            "now() - (i %% 90) * interval '1 day', now() - (i %% 90) * interval '1 day' + interval '14 days', "
            "CASE WHEN i %% 3 = 0 THEN now() END FROM generate_series(1, %s) AS i",
            (rows,),
        )
    with provisioned.server.connect(provisioned.databases[DatabaseKey.MAIN]) as main:
        main.execute("VACUUM ANALYZE user_invitations")
    return provisioned


@contextmanager
def as_owner(provisioned: ProvisionedDatabases) -> Iterator[Any]:
    with provisioned.server.connect(provisioned.databases[DatabaseKey.MAIN]) as main:
        main.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(provisioned.names.owner(DatabaseKey.MAIN))))
        yield main


def writers(provisioned: ProvisionedDatabases, seconds: float, script: str) -> WriterLoad:
    login = provisioned.login_of(provisioned.names.of("app"))  # the role logs in through its members
    where = provisioned.server.connection
    database = provisioned.databases[DatabaseKey.MAIN]
    return WriterLoad(
        where.host, where.port, database, login, provisioned.passwords[login], seconds, RATE_PER_S, script=script
    )


def baseline(provisioned: ProvisionedDatabases, seconds: float, one_core_busy: bool) -> Latencies:
    """The writers alone, or beside a loop that keeps one core busy and takes no lock."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if one_core_busy else None
    try:
        with writers(provisioned, seconds, OLD_APP_INSERT) as load:
            pass
    finally:
        if spin is not None:
            spin.kill()
            spin.wait()
    return load.latencies()


def during(provisioned: ProvisionedDatabases, window_s: float, script: str, action: Callable[[], str]) -> Event:
    """Writers for `window_s`; the action starts LEAD_S in. Latencies of the inserts due while it ran."""
    with writers(provisioned, window_s, script) as load:
        time.sleep(LEAD_S)
        started = time.time()
        outcome = action()
        finished = time.time()
    seconds = finished - started
    return Event(load.latencies(started, finished), seconds, outcome, seconds > window_s - LEAD_S - TAIL_S)


@contextmanager
def as_before_this_change() -> Iterator[None]:
    """One wait of lock_timeout 5 s and no retry: how a run waited for its locks before issue 33's item 4."""
    saved = environment.LOCK_TIMEOUT, lock_retry.RETRY_BUDGET_S
    environment.LOCK_TIMEOUT, lock_retry.RETRY_BUDGET_S = BEFORE_LOCK_TIMEOUT, 0.0
    try:
        yield
    finally:
        environment.LOCK_TIMEOUT, lock_retry.RETRY_BUDGET_S = saved


def lock_wait(provisioned: ProvisionedDatabases, target: runner.Target, reader_s: float, before: bool) -> Event:
    """The locking revision while a report holds ACCESS SHARE on the table for `reader_s` from its start."""
    window = LEAD_S + reader_s + lock_retry.MAX_PAUSE_S + 1.0 + TAIL_S
    main = provisioned.databases[DatabaseKey.MAIN]
    enders: list[threading.Timer] = []
    with provisioned.server.connect(main, autocommit=False) as report:

        def migrate() -> str:
            report.execute("SET application_name = 'bench report'")
            report.execute("SELECT count(*) FROM user_invitations")
            enders.append(threading.Timer(reader_s, report.rollback))
            enders[0].start()
            try:
                with as_before_this_change() if before else nullcontext():
                    runner.upgrade(target)
                return "applied once the report ended"
            except lock_retry.LockRetriesExhaustedError:  # the old settings' outcome: one wait, then failure
                return "gave up: lock timeout, not applied"

        event = during(provisioned, window, OLD_APP_INSERT, migrate)
        for ender in enders:  # the event ends with the run, whether the report still reads or not
            ender.join()
    with as_owner(provisioned) as owner:
        owner.execute("ALTER TABLE user_invitations DROP COLUMN IF EXISTS lock_bench_note")
        owner.execute("UPDATE alembic_version_main SET version_num = %s", (declared_head(default_location("main")),))
    return event


def recipe(provisioned: ProvisionedDatabases, target: runner.Target, least_s: float) -> list[tuple[str, Event]]:
    """Each step of the recipe with writers, sized by a first pass without them (then undone)."""
    idle_s = {}
    for revision, _, _ in RECIPE:
        started = time.monotonic()
        runner.upgrade(target, revision)
        idle_s[revision] = time.monotonic() - started
    undo_recipe(provisioned)
    steps = []
    for revision, label, script in RECIPE:
        window = LEAD_S + max(least_s, 3 * idle_s[revision]) + TAIL_S

        def step(revision: str = revision) -> str:
            return f"{runner.upgrade(target, revision).after} applied"

        steps.append((f"{revision} {label}", during(provisioned, window, script, step)))
    undo_recipe(provisioned)
    return steps


def undo_recipe(provisioned: ProvisionedDatabases) -> None:
    """Back to the head's schema and rows: the recipe's objects dropped, the writers' rows deleted, the table
    rewritten compact (the backfill updated every row), so each pass starts from the same table."""
    with as_owner(provisioned) as owner:
        for statement in RECIPE_UNDONE:
            owner.execute(statement)
        owner.execute("DELETE FROM user_invitations WHERE email LIKE 'old-%' OR email LIKE 'new-%'")
        owner.execute("UPDATE alembic_version_main SET version_num = %s", (declared_head(default_location("main")),))
    with provisioned.server.connect(provisioned.databases[DatabaseKey.MAIN]) as main:
        main.execute("VACUUM FULL ANALYZE user_invitations")


def unsafe_change(provisioned: ProvisionedDatabases, least_s: float) -> Event:
    """The rewrite the gate refuses, as a revision ran it before the gate, sized by a run without writers."""

    def rewrite() -> str:
        with as_owner(provisioned) as owner:
            owner.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(BEFORE_LOCK_TIMEOUT)))
            owner.execute("SET statement_timeout = '30min'")
            owner.execute(UNSAFE_CHANGE)
        return "table rewritten under ACCESS EXCLUSIVE"

    started = time.monotonic()
    rewrite()
    idle_s = time.monotonic() - started
    undo_unsafe_change(provisioned)
    event = during(provisioned, LEAD_S + max(least_s, 3 * idle_s) + TAIL_S, OLD_APP_INSERT, rewrite)
    undo_unsafe_change(provisioned)
    return event


def undo_unsafe_change(provisioned: ProvisionedDatabases) -> None:
    with as_owner(provisioned) as owner:
        owner.execute(UNDO_UNSAFE_CHANGE)
        owner.execute("DELETE FROM user_invitations WHERE email LIKE 'old-%'")


def measure(sizes: Sizes) -> dict[str, Any]:
    provisioned = loaded(sizes.rows)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-locks-") as folder:
            return _measure(provisioned, sizes, Path(folder))
    finally:
        drop_provisioned(provisioned)


def _measure(provisioned: ProvisionedDatabases, sizes: Sizes, folder: Path) -> dict[str, Any]:
    head = declared_head(default_location("main"))
    locking = folder / "locking"
    shutil.copytree(default_location("main"), locking / "main")
    (locking / "main" / "versions" / "main_9990_lock_bench.py").write_text(LOCKING_REVISION.replace("{down}", head))
    target = provisioned.migration_target(DatabaseKey.MAIN)
    locking_target = runner.Target(target.tree, target.url, target.expected_database, locking / "main")
    recipe_target = runner.Target(
        target.tree, target.url, target.expected_database, example_trees(folder / "recipe") / "main"
    )
    print("bench: writers alone, and beside a busy core", file=sys.stderr, flush=True)
    idle = [baseline(provisioned, sizes.baseline_s, one_core_busy=False) for _ in range(sizes.lock_runs)]
    busy = [baseline(provisioned, sizes.baseline_s, one_core_busy=True) for _ in range(sizes.lock_runs)]
    print("bench: a revision behind a long report, before and now", file=sys.stderr, flush=True)
    before = [lock_wait(provisioned, locking_target, sizes.reader_s, before=True) for _ in range(sizes.lock_runs)]
    now = [lock_wait(provisioned, locking_target, sizes.reader_s, before=False) for _ in range(sizes.lock_runs)]
    print("bench: the expand/contract recipe, step by step", file=sys.stderr, flush=True)
    steps = recipe(provisioned, recipe_target, sizes.least_step_s)
    print("bench: the rewrite the gate refuses", file=sys.stderr, flush=True)
    rewrite = unsafe_change(provisioned, sizes.least_step_s)
    return summarize(sizes, idle, busy, before, now, steps, rewrite)


def summarize(
    sizes: Sizes,
    idle: list[Latencies],
    busy: list[Latencies],
    before: list[Event],
    now: list[Event],
    steps: list[tuple[str, Event]],
    rewrite: Event,
) -> dict[str, Any]:
    idle_p99 = Spread.of([run.p99 for run in idle])
    busy_p99 = Spread.of([run.p99 for run in busy])

    def row(label: str, event: str, runs: list[Latencies]) -> tuple[str, ...]:
        p50, p99, worst = (Spread.of([getattr(run, key) for run in runs]) for key in ("p50", "p99", "max"))
        return (
            label,
            event,
            _ms(p50),
            _ms(p99),
            _ms(worst),
            str(max(run.over_one_second for run in runs)),
            f"{p99.ratio_to(idle_p99):.2f}x",
            f"{p99.ratio_to(busy_p99):.2f}x",
        )

    def happened(events: list[Event]) -> str:
        seconds = Spread.of([event.seconds for event in events])
        overran = " (outlasted the writers)" if any(event.overran for event in events) else ""
        return f"{seconds.median:.1f} s, {events[0].outcome}{overran}"

    now_p99 = Spread.of([event.latencies.p99 for event in now])
    now_over_1s = max(event.latencies.over_one_second for event in now)
    rows = [
        row("writers alone (idle)", "-", idle),
        row("writers beside a busy core", "-", busy),
        row(
            f"revision behind a {sizes.reader_s:.0f} s report, before (one wait, lock_timeout {BEFORE_LOCK_TIMEOUT})",
            happened(before),
            [event.latencies for event in before],
        ),
        row(
            f"revision behind a {sizes.reader_s:.0f} s report, now (tries of {lock_retry.TRY_LOCK_TIMEOUT}, retried)",
            happened(now),
            [event.latencies for event in now],
        ),
        *(row(f"recipe {label}", happened([event]), [event.latencies]) for label, event in steps),
        row("ALTER COLUMN TYPE, refused by the gate (as run before it)", happened([rewrite]), [rewrite.latencies]),
    ]
    return {
        "sizes": sizes.__dict__,
        "rows": rows,
        "goal": {
            "p99_over_busy": now_p99.ratio_to(busy_p99),
            "inserts_over_1s": now_over_1s,
            "met": now_p99.ratio_to(busy_p99) <= GOAL_P99_OVER_BUSY and now_over_1s == 0,
        },
        "rewrite_blocked_s": rewrite.latencies.max / 1000.0,
    }


def _ms(spread: Spread) -> str:
    return f"{spread.median:.1f} ms ({spread.low:.1f}-{spread.high:.1f})"


HEADER = ("scenario", "event", "p50", "p99", "max", "inserts over 1 s", "p99 vs idle", "p99 vs busy core")
DOC = "docs/benchmarks.md"
BEGIN = "<!-- bench-migration-locks:begin (python -m bench.migration_locks) -->"
END = "<!-- bench-migration-locks:end -->"


def markdown(results: dict[str, Any], date: str) -> str:
    sizes, goal = results["sizes"], results["goal"]
    met = "met" if goal["met"] else "NOT met"
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in results["rows"]]
    return "\n\n".join(
        [
            f"Measured {date} on this project's 2-core machine; {sizes['rows']:,} rows in user_invitations, "
            f"{RATE_PER_S} inserts/s from two clients as the app role; latencies of the inserts due while each "
            f"event lasted (schedule lag included); baselines and the lock wait: medians of {sizes['lock_runs']} "
            "runs (min-max), the recipe and the rewrite: one run.",
            f"**Writers while a migration needs user_invitations** (goal for the revision behind a report, now: "
            f"no insert over 1 s and p99 within {GOAL_P99_OVER_BUSY:.0f}x the busy-core baseline: "
            f"{goal['p99_over_busy']:.2f}x, {goal['inserts_over_1s']} over 1 s, {met}; the gate's refusal spared "
            f"the writers {results['rewrite_blocked_s']:.1f} s blocked)",
            "\n".join(lines),
        ]
    )


def update_doc(text: str) -> None:
    doc = paths.REPO_ROOT / DOC
    if not doc.exists():
        doc.write_text(f"# Benchmarks\n\n{BEGIN}\n{END}\n")
    doc.write_text(between_markers(doc.read_text(), BEGIN, END, text))


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.migration_locks [--quick]`: these measurements alone (scripts/bench runs them too); a
    full run renders docs/benchmarks.md's section, a quick one (a small table, one run) only prints."""
    from bench import fixture

    quick = fixture.quick_asked(argv)
    results = measure(QUICK if quick else FULL)
    date = time.strftime("%Y-%m-%d")
    reports = paths.REPO_ROOT / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "bench-migration-locks.json").write_text(json.dumps({**results, "date": date}, indent=2))
    text = markdown(results, date)
    if not quick:
        update_doc(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
