"""Databases for the benchmarks on the embedded server, with a few million log rows."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from psycopg import sql

from fixtures.cluster import ProvisionedDatabases, Server, drop_provisioned, provision_with_sql
from migrations import runner
from model.names import DatabaseKey, RoleNames
from ops.localpg import embedded

PREFIX = "bench"
LEVELS = "ARRAY['DEBUG','INFO','INFO','INFO','INFO','INFO','INFO','WARNING','WARNING','ERROR']"
MODELS = "ARRAY['gpt-4o','gpt-4o-mini','claude-sonnet','claude-haiku','gemini-pro','mistral-large','llama-70b','o3']"


@dataclass(frozen=True)
class Sizes:
    system_logs: int = 3_000_000
    llm_logs: int = 1_000_000


QUICK_SIZES = Sizes(20_000, 5_000)
"""A benchmark's quick run alone (`python -m bench.X --quick`, the suite's check that it still runs): seconds."""


def quick_asked(argv: list[str] | None) -> bool:
    """`--quick` among a benchmark module's arguments (sys.argv's when None)."""
    return "--quick" in (sys.argv[1:] if argv is None else argv)


@contextmanager
def loaded(quick: bool) -> Iterator[ProvisionedDatabases]:
    """The bench's logs database at logs_0002 with its rows, for one benchmark run alone; dropped afterwards."""
    provisioned = loaded_logs_database(QUICK_SIZES if quick else Sizes())
    try:
        yield provisioned
    finally:
        drop_provisioned(provisioned)


def loaded_logs_database(sizes: Sizes) -> ProvisionedDatabases:
    """Provision from scratch, migrate the logs tree to just before its index revision, load rows."""
    server = Server(embedded.start())
    drop_provisioned(
        ProvisionedDatabases(server, RoleNames(PREFIX), {key: f"{PREFIX}_{key}" for key in DatabaseKey}, {})
    )
    provisioned = provision_with_sql(server, PREFIX)
    runner.upgrade(provisioned.migration_target(DatabaseKey.LOGS), "logs_0002")
    with server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        logs.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(provisioned.names.owner(DatabaseKey.LOGS))))
        logs.execute(
            "INSERT INTO system_logs (created_at, level, component, message, error_type, request_id) "
            f"SELECT now() - random() * interval '30 days', ({LEVELS})[1 + i % 10], 'component_' || (i % 20), "
            "'event ' || i || ' handled by the worker with a message of realistic length', "
            "CASE WHEN i % 10 = 9 THEN 'Error' || (i % 7) END, md5(i::text) "
            f"FROM generate_series(1, {sizes.system_logs}) AS i"
        )
        logs.execute(
            "INSERT INTO llm_logs (created_at, component, provider, model, status, prompt_tokens, "
            "completion_tokens, latency_ms, cost_usd, error_type, request_id) "
            f"SELECT now() - random() * interval '90 days', 'feature_' || (i % 5), 'vendor', ({MODELS})[1 + i % 8], "
            "CASE WHEN i % 50 = 0 THEN 'error' ELSE 'success' END, 200 + i % 800, 50 + i % 300, 100 + i % 2000, "
            "(i % 1000) / 100000.0, CASE WHEN i % 50 = 0 THEN 'RateLimit' END, md5(i::text) "
            f"FROM generate_series(1, {sizes.llm_logs}) AS i"
        )
        logs.execute("RESET ROLE")
        logs.execute("VACUUM ANALYZE system_logs, llm_logs")
    return provisioned
