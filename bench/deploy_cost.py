"""What deploying the real stack costs, through the real engine, provider and server.

Every timing is a plain `pulumi up --yes --skip-preview` of the pinned CLI, as the README gives
it, on a file backend and the project's virtualenv. The engine's floor is an empty Python program
deployed the same way. Its no-op `up` alternates with the stack's own no-op `up`, so both are
measured on the same machine at the same moment. The stack is the project's program with the dev
stack's settings; variants add read-only roles (stack config) or grow the logs tree to more tables
(a copy of the trees with generated revisions, run through HEADHUNTER_MIGRATIONS_DIR). The
physical floor is the same roles, databases and grants as plain SQL in one psql session.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from psycopg import sql

from bench import fixture
from bench.stats import Spread
from fixtures.cluster import ProvisionedDatabases, Server, drop_provisioned, login_roles
from fixtures.plain_sql import provisioning_statements
from fixtures.project_stack import ProjectStack, cleanup, project_folder, project_stack
from migrations.shared.heads import declared_head, default_location
from model.names import DatabaseKey, RoleNames
from ops.localpg import embedded
from ops.localpg.embedded import client_bin_dir

PREFIX = "benchstack"
SHIPPED_LOGS_TABLES = 2  # system_logs and llm_logs; each variant checks the count it deployed


@dataclass(frozen=True)
class Variant:
    label: str
    read_only_roles: int = 0
    logs_tables: int = SHIPPED_LOGS_TABLES


@dataclass(frozen=True)
class Measured:
    variant: Variant
    resources: int
    cold: Spread
    noop: Spread
    floor: Spread
    """The empty program's no-op `up`, each run next to one of `noop`'s."""
    floor_with_secret: Spread
    """The same empty program whose stack holds one secret, also run next to each of `noop`'s.

    A stack with secrets in its state pays the passphrase's key derivation (1,000,000 PBKDF2
    rounds) on every `up`; an empty program's stack without one does not."""


@dataclass(frozen=True)
class Floors:
    empty: ProjectStack
    with_secret: ProjectStack


def floors(folder: Path) -> Floors:
    """The empty program twice: as it is, and with one secret in its stack (the dev stack holds many)."""
    (folder / "empty").mkdir()
    (folder / "secret").mkdir()
    with_secret = floor_project(folder / "secret")
    check(with_secret, "config", "set", "--secret", "probe", "a-secret-the-program-never-reads")
    check(with_secret, "up", "--yes", "--skip-preview")
    return Floors(floor_project(folder / "empty"), with_secret)


def floor_project(folder: Path) -> ProjectStack:
    """An empty Python program on the same CLI, language host and virtualenv."""
    env = project_folder(folder)
    (folder / "infra").unlink()
    (folder / "empty").mkdir()
    (folder / "empty" / "__main__.py").write_text('"""Declares nothing: the engine\'s floor."""\n')
    runtime = yaml.safe_load((folder / "Pulumi.yaml").read_text())["runtime"]
    (folder / "Pulumi.yaml").write_text(yaml.safe_dump({"name": "floor", "runtime": runtime, "main": "empty/"}))
    floor = ProjectStack(folder, "floor", "floor", env)
    check(floor, "stack", "init")
    check(floor, "up", "--yes", "--skip-preview")
    return floor


def variant_stack(folder: Path, variant: Variant) -> ProjectStack:
    readers = [{"name": f"{PREFIX}_reader_{n}", "database": "logs"} for n in range(variant.read_only_roles)]
    (folder / "project").mkdir()
    stack = project_stack(folder / "project", "bench", PREFIX, readOnlyRoles=readers)
    if variant.logs_tables != SHIPPED_LOGS_TABLES:
        trees = grown_trees(folder / "migrations", variant.logs_tables - SHIPPED_LOGS_TABLES)
        stack.env["HEADHUNTER_MIGRATIONS_DIR"] = str(trees)
    check(stack, "stack", "init")
    return stack


def grown_trees(folder: Path, added_tables: int) -> Path:
    """Both trees, the logs tree with one revision per added table, as a team's tree grows."""
    for key in ("main", "logs"):
        shutil.copytree(default_location(key), folder / key, ignore=shutil.ignore_patterns("__pycache__"))
    down = declared_head(folder / "logs")
    for n in range(added_tables):
        revision = f"bench_{n:04d}"
        (folder / "logs" / "versions" / f"{revision}_table.py").write_text(
            f'"""Create bench_table_{n}."""\n\n'
            "import sqlalchemy as sa\nfrom alembic import op\n\n"
            f'revision = "{revision}"\ndown_revision = "{down}"\nbranch_labels = None\ndepends_on = None\n\n\n'
            "def upgrade() -> None:\n"
            f'    op.create_table("bench_table_{n}", sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True), '
            'sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()), '
            'sa.Column("payload", sa.Text, nullable=False))\n\n\n'
            f'def downgrade() -> None:\n    op.drop_table("bench_table_{n}")\n'
        )
        down = revision
    return folder


def measure(server: Server, variant: Variant, floor: Floors, cold_runs: int, noop_pairs: int) -> Measured:
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as temp:
        folder = Path(temp)
        stack = variant_stack(folder, variant)
        cleanup(stack, server)
        cold, noop, floor_runs, secret_floor_runs, resources = [], [], [], [], 0
        try:
            for run in range(cold_runs):
                cold.append(timed(stack, "up", "--yes", "--skip-preview"))
                if run == cold_runs - 1:
                    check_tables(server, variant)
                    resources = resource_count(stack)
                    for _ in range(noop_pairs):
                        floor_runs.append(timed(floor.empty, "up", "--yes", "--skip-preview"))
                        secret_floor_runs.append(timed(floor.with_secret, "up", "--yes", "--skip-preview"))
                        noop.append(timed(stack, "up", "--yes", "--skip-preview"))
                check(stack, "destroy", "--yes", "--skip-preview")
        finally:
            cleanup(stack, server)
    return Measured(
        variant, resources, Spread.of(cold), Spread.of(noop), Spread.of(floor_runs), Spread.of(secret_floor_runs)
    )


def timed(stack: ProjectStack, *args: str) -> float:
    started = time.perf_counter()
    check(stack, *args)
    return time.perf_counter() - started


def check(stack: ProjectStack, *args: str) -> None:
    result = stack.pulumi(*args)
    if result.returncode != 0:
        raise RuntimeError(f"pulumi {' '.join(args)} failed:\n{(result.stdout + result.stderr)[-3000:]}")


def resource_count(stack: ProjectStack) -> int:
    """Resources in the stack's state, the stack and its providers left out (what `up` prints)."""
    exported = stack.pulumi("stack", "export")
    resources = json.loads(exported.stdout)["deployment"]["resources"]
    return sum(1 for r in resources if not r["type"].startswith("pulumi:"))


def check_tables(server: Server, variant: Variant) -> None:
    """The logs database holds the variant's tables: the benchmark measured what it says. The log tables'
    partitions (logs_0004) are parts of their table, not tables of the tree."""
    with server.connect(f"{PREFIX}_logs") as logs:
        query = sql.SQL(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') "
            "AND NOT relispartition AND relname <> {}"
        )
        row = logs.execute(query.format(sql.Literal("alembic_version_logs"))).fetchone()
    if row is None or row[0] != variant.logs_tables:
        raise RuntimeError(f"{variant.label}: expected {variant.logs_tables} tables in the logs database, found {row}")


def plain_sql_provisioning(server: Server, repeats: int) -> Spread:
    """The same databases, roles and grants as one psql session runs them (no migrations)."""
    samples = []
    for attempt in range(repeats):
        names = RoleNames(f"sqlfloor{attempt}")
        databases = {key: f"{names.prefix}_{key}" for key in DatabaseKey}
        passwords = {role: "unused-password" for role in login_roles(names)}
        script = []
        for statement in provisioning_statements(names, databases, passwords):
            script.append(f"\\connect {statement.database or 'postgres'}")
            script.append(statement.sql.as_string(None) + ";")
        connection = server.connection
        started = time.perf_counter()
        subprocess.run(
            [
                str(client_bin_dir() / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                connection.host,
                "-p",
                str(connection.port),
                "-U",
                connection.user,
                "-d",
                "postgres",
            ],
            input="\n".join(script),
            text=True,
            check=True,
            capture_output=True,
            env={"PGPASSWORD": connection.password, "PATH": "/usr/bin:/bin"},
        )
        samples.append(time.perf_counter() - started)
        drop_provisioned(ProvisionedDatabases(server, names, databases, passwords))
    return Spread.of(samples)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.deploy_cost [--quick]`: the deploy cost alone (scripts/bench runs it too), printed.
    A full run measures every variant as scripts/bench does; --quick the dev stack once, beside its floors."""
    from bench import run

    server = Server(embedded.start())
    if not fixture.quick_asked(argv):
        cost = run.measure_deploy_cost(server, cold_runs=3, noop_pairs=5)
        print(run.table(run.DEPLOY_COST_HEADER, cost["rows"]))
        print(f"goals: {run.goals_line(cost)}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as temp:
        dev = measure(server, run.VARIANTS[0], floors(Path(temp)), cold_runs=1, noop_pairs=1)
    print(
        run.table(
            run.DEPLOY_COST_HEADER, run.deploy_cost_rows({dev.variant.label: dev}, plain_sql_provisioning(server, 1))
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
