"""A tree pointed at the wrong database is refused with nothing changed, whoever connects."""

from __future__ import annotations

import psycopg
import pytest

from fixtures.cluster import Deployment
from migrations import runner
from migrations.shared.placement_guard import WrongDatabaseError
from migrations.shared.tree import LOGS, MAIN, Tree
from model.names import DatabaseKey
from tests.migrations import catalog
from tests.support.fault_log import SeenFunction


def superuser_target(deployment: Deployment, tree: Tree, database: DatabaseKey) -> runner.Target:
    """Credentials that could create tables anywhere: only the guard stands in the way."""
    return runner.Target(tree, deployment.server.url(deployment.databases[database]))


@pytest.mark.fault(
    what="a migration tree pointed at the other database, with credentials that could create tables there",
    recovery="point it at its own database; nothing was created",
)
@pytest.mark.parametrize(
    ("tree", "wrong", "right"), [(LOGS, DatabaseKey.MAIN, "logs"), (MAIN, DatabaseKey.LOGS, "main")]
)
def test_a_tree_on_the_other_database_is_refused_and_nothing_is_created(
    fresh_deployment: Deployment, tree: Tree, wrong: DatabaseKey, right: str, fault_seen: SeenFunction
) -> None:
    with fresh_deployment.server.connect(fresh_deployment.databases[wrong]) as connection:
        before = catalog.tables(connection)
    with pytest.raises(WrongDatabaseError) as refused:
        runner.upgrade(superuser_target(fresh_deployment, tree, wrong))
    assert f"the {right} migration tree belongs to the database owned by a role named '*_{right}_owner'" in str(
        refused.value
    )
    assert fresh_deployment.databases[wrong] in str(refused.value)
    fault_seen(f"a run of the {right} tree", None, str(refused.value), "migration tree belongs to")
    with fresh_deployment.server.connect(fresh_deployment.databases[wrong]) as connection:
        assert catalog.tables(connection) == before == set()


@pytest.mark.parametrize("configured", ["headhunter_logs", "zzz_logs"])  # sorting before and after the real name
def test_the_configured_database_name_must_match(fresh_deployment: Deployment, configured: str) -> None:
    target = runner.Target(LOGS, fresh_deployment.migrator_url(DatabaseKey.LOGS), expected_database=configured)
    with pytest.raises(WrongDatabaseError, match=f"belongs to database '{configured}'"):
        runner.upgrade(target)
    assert runner.current_revision(target) is None


def test_the_database_name_from_the_environment_must_match(
    fresh_deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`alembic --name logs upgrade head` by hand takes the expected name from HEADHUNTER_LOGS_DATABASE."""
    monkeypatch.setenv(LOGS.expected_database_env_var, "headhunter_logs")
    target = runner.Target(LOGS, fresh_deployment.migrator_url(DatabaseKey.LOGS))
    with pytest.raises(WrongDatabaseError, match="belongs to database 'headhunter_logs'"):
        runner.upgrade(target)
    assert runner.current_revision(target) is None


@pytest.mark.parametrize(("tree", "other"), [(LOGS, MAIN), (MAIN, LOGS)])
def test_a_database_holding_the_other_trees_version_table_is_refused(
    fresh_deployment: Deployment, tree: Tree, other: Tree
) -> None:
    database = fresh_deployment.databases[DatabaseKey(tree.key)]
    with fresh_deployment.server.connect(database) as connection:
        connection.execute(f"CREATE TABLE {other.version_table} (version_num varchar(32) PRIMARY KEY)")
    target = runner.Target(tree, fresh_deployment.migrator_url(DatabaseKey(tree.key)), database)
    with pytest.raises(WrongDatabaseError, match=other.version_table):
        runner.upgrade(target)
    with fresh_deployment.server.connect(database) as connection:
        assert catalog.tables(connection) == {other.version_table}


def test_the_reviewers_sql_script_carries_the_guard(fresh_deployment: Deployment) -> None:
    """`--sql` output run by hand in the wrong database stops at its first statement."""
    script = runner.upgrade_sql(runner.Target(LOGS, fresh_deployment.migrator_url(DatabaseKey.LOGS)))
    guard = script[: script.index("END $guard$") + len("END $guard$")]
    with (
        fresh_deployment.server.connect(fresh_deployment.databases[DatabaseKey.MAIN]) as main,
        pytest.raises(psycopg.errors.RaiseException, match="the logs migration tree does not belong to database"),
    ):
        main.execute(guard)
    with fresh_deployment.server.connect(fresh_deployment.databases[DatabaseKey.LOGS]) as logs:
        logs.execute(guard)  # the right database passes
