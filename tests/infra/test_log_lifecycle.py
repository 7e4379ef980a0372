"""The log tables' lifecycle: partitions made through the premake window, none past retention, no stray rows."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from model.log_lifecycle import LOG_TABLES
from model.names import DatabaseKey
from ops.deploy.deployed_stack import DeployedStack


def partition_bounds(logs: psycopg.Connection, table: str) -> list[tuple[str, datetime | None, datetime]]:
    """(name, lower, upper) of each partition, oldest first; lower None for MINVALUE. Bounds read in UTC."""
    logs.execute("SET TIME ZONE 'UTC'")
    rows = logs.execute(
        "SELECT c.relname, "
        "  nullif(substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']*)''\\)'), '')::timestamptz, "
        "  substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']*)''\\)')::timestamptz "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s) ORDER BY 3",
        (f"public.{table}",),
    ).fetchall()
    return [(name, lower, upper) for name, lower, upper in rows]


@pytest.mark.parametrize("table", LOG_TABLES)
def test_partitions_reach_through_the_premake_window(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, table: str
) -> None:
    bounds = partition_bounds(catalogs[DatabaseKey.LOGS], table)
    assert bounds, f"{table} has no partitions: run scripts/migrate {stack.stack} logs upgrade"
    window_ends = stack.lifecycle().premake_until(datetime.now(UTC))
    newest = bounds[-1]
    assert newest[2] > window_ends, (
        f"{table}'s newest partition {newest[0]} ends {newest[2]:%Y-%m-%d %H:%M}, before the premake window's end "
        f"({window_ends:%Y-%m-%d %H:%M}): rows dated after it are refused; run scripts/maintain {stack.stack}"
    )


@pytest.mark.parametrize("table", LOG_TABLES)
def test_no_partition_is_past_retention(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, table: str
) -> None:
    cutoff = stack.lifecycle().retention_cutoff(table, datetime.now(UTC))
    expired = [name for name, _, upper in partition_bounds(catalogs[DatabaseKey.LOGS], table) if upper <= cutoff]
    assert not expired, (
        f"{table} keeps partitions whose rows are all older than its retention ({cutoff:%Y-%m-%d %H:%M}): "
        f"{', '.join(expired)}; run scripts/maintain {stack.stack}, which drops them"
    )


@pytest.mark.parametrize("table", LOG_TABLES)
def test_no_default_partition_holds_stray_rows(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, table: str
) -> None:
    """The stack makes no DEFAULT partition: one added by hand would block DETACH CONCURRENTLY."""
    logs = catalogs[DatabaseKey.LOGS]
    default = logs.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'",
        (f"public.{table}",),
    ).fetchone()
    if default is None:
        return
    count = logs.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", default[0]))).fetchone()
    assert default is None, (
        f"{table} has the DEFAULT partition {default[0]} holding {count[0] if count else 0} rows outside the "
        f"partitions made: move its rows into {table} (INSERT ... SELECT after detaching it), then drop it"
    )


@pytest.mark.parametrize("table", LOG_TABLES)
def test_every_partition_belongs_to_the_owner(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, table: str
) -> None:
    owner = stack.names.owner(DatabaseKey.LOGS)
    others = (
        catalogs[DatabaseKey.LOGS]
        .execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) AND pg_get_userbyid(c.relowner) <> %s",
            (f"public.{table}", owner),
        )
        .fetchall()
    )
    assert not others, f"partitions of {table} not owned by {owner}: {others}; ALTER TABLE ... OWNER TO {owner}"


@pytest.mark.parametrize("table", LOG_TABLES)
def test_no_partition_is_left_half_detached_or_detached_and_kept(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, table: str
) -> None:
    """A retention run stopped mid-way leaves a partition "detach pending", or detached and not dropped."""
    logs = catalogs[DatabaseKey.LOGS]
    pending = logs.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) AND i.inhdetachpending",
        (f"public.{table}",),
    ).fetchall()
    detached = logs.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' "
        "AND NOT relispartition AND relname ~ %s",
        (f"^{table}_p(_before|[0-9]{{6}}|[0-9]{{8}})$",),
    ).fetchall()
    leftovers = sorted(row[0] for row in pending + detached)
    assert not leftovers, (
        f"{table}: {', '.join(leftovers)} left by a retention run that stopped half-way; "
        f"run scripts/maintain {stack.stack}, which finishes and drops them"
    )
