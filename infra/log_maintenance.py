"""The log tables' partition maintenance as a step of every deploy, after the logs tree.

A Python dynamic provider, like the migration step. Every preview and deploy asks the logs
database how far each table's partitions reach (one catalog query, in the provider's diff) and plans
an update when the premake window reaches past the newest partition, when the oldest partition has
passed retention, or when logRetention or logPremake changed; otherwise it plans no change, and
`pulumi preview --expect-no-changes` holds. So days without a deploy, or a partition dropped by
hand, are seen by the next preview and repaired by the next deploy. The diff reads with the inputs'
credentials, because the state keeps no password; when the server cannot be asked (or the inputs are
not known yet), it falls back to the reach recorded by the last run. Deleting the step (destroy)
drops nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from infra.migration_step import migrator_target
from infra.server_login import ServerLogin
from model.log_lifecycle import LogLifecycle

# Inputs whose change means maintenance must run again: where it connects, and what it is told to keep.
RERUN_WHEN_CHANGED = ("host", "port", "database", "user", "retention_days", "premake_days", "revision", "grants")


class MaintenanceFailedError(Exception):
    pass


def _lifecycle(props: dict[str, Any]) -> LogLifecycle:
    retention = {table: int(days) for table, days in props["retention_days"].items()}
    return LogLifecycle(retention_days=retention, premake_days=int(props["premake_days"]))


def is_due(coverage: dict[str, dict[str, str]], lifecycle: LogLifecycle, now: datetime) -> bool:
    """Whether a partition is missing from the premake window, or one has passed retention."""
    for table in lifecycle.retention_days:
        reach = coverage.get(table)
        if reach is None:
            return True
        if datetime.fromisoformat(reach["covered_until"]) <= lifecycle.premake_until(now):
            return True
        if datetime.fromisoformat(reach["oldest_ends"]) <= lifecycle.retention_cutoff(table, now):
            return True
    return False


def _maintain(props: dict[str, Any]) -> dict[str, Any]:
    from migrations import maintenance

    target = migrator_target({**props, "tree": "logs"})
    try:
        report = maintenance.maintain(target, _lifecycle(props), grants=props["grants"])
    except Exception as error:  # the database's own message is what the operator needs
        raise MaintenanceFailedError(f"log partition maintenance failed on {props['database']!r}: {error}") from None
    # The password stays in the outputs, a secret (additional_secret_outputs): a destroy, which gets
    # only the outputs, must connect to take the partitions' grants back before the roles are dropped.
    return {
        **props,
        "created": report.created,
        "dropped": report.dropped,
        "coverage": {table: asdict(reach) for table, reach in report.coverage.items()},
    }


def _live_state(props: dict[str, Any]) -> tuple[dict[str, dict[str, str]], bool] | None:
    """The partitions' reach as the database has it now, and whether their grants differ from the
    inputs'; None when it cannot be asked."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from migrations import maintenance

    try:
        # A short connect timeout: a preview must not hang on a server it cannot reach.
        url = migrator_target({**props, "tree": "logs"}).url.update_query_dict({"connect_timeout": "5"})
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                reach = {table: asdict(reach) for table, reach in maintenance.coverage(connection).items()}
                return reach, maintenance.grants_differ(connection, props["grants"])
        finally:
            engine.dispose()
    except Exception:  # unknown inputs in a preview, a server down: the recorded reach decides
        return None


class _MaintenanceProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"partitions@{props['database']}", outs=_maintain(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in RERUN_WHEN_CHANGED if olds.get(key) != news.get(key)]
        live = _live_state(news)
        coverage, grants_drifted = live or (olds.get("coverage") or {}, False)
        due = grants_drifted or is_due(coverage, _lifecycle(news), datetime.now(UTC))
        return DiffResult(changes=bool(changed) or due, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_maintain(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Destroying the stack drops no partition; it takes back the runtime roles' grants on the log
        tables and partitions, which the roles' DROP ROLE would otherwise stop at (2BP01)."""
        from migrations import maintenance

        if props.get("password"):
            maintenance.release(migrator_target({**props, "tree": "logs"}), sorted(props.get("grants") or {}))


@dataclass(frozen=True)
class LogMaintenanceArgs:
    login: ServerLogin
    """The logs tree's migrator on the logs database."""
    lifecycle: LogLifecycle
    revision: pulumi.Input[str]
    """The logs tree's revision after its migration step: maintenance runs after it, and again when it changes."""
    grants: dict[str, list[str]]
    """Role -> privileges every log table and partition holds (model.privileges.new_table_grants)."""


class LogMaintenance(pulumi.dynamic.Resource):
    """Each log table's partitions made through the premake window and none past retention."""

    created: pulumi.Output[dict[str, list[str]]]
    """The partitions the last run made, per table."""
    dropped: pulumi.Output[dict[str, list[str]]]
    """The partitions the last run dropped, per table."""
    coverage: pulumi.Output[dict[str, dict[str, str]]]
    """Per table: `oldest_ends` and `covered_until`, the bounds of its oldest and newest partitions."""

    def __init__(self, name: str, args: LogMaintenanceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            **args.login.props(),
            "retention_days": dict(args.lifecycle.retention_days),
            "premake_days": args.lifecycle.premake_days,
            "revision": args.revision,
            "grants": args.grants,
            "created": None,
            "dropped": None,
            "coverage": None,
        }
        secret_password = pulumi.ResourceOptions(additional_secret_outputs=["password"])
        super().__init__(_MaintenanceProvider(), name, props, pulumi.ResourceOptions.merge(opts, secret_password))
