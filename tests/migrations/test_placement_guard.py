"""A tree pointed at the wrong database is refused with nothing changed, whoever connects."""

from __future__ import annotations

import psycopg
import pytest

from fixtures import catalog
from fixtures.cluster import ProvisionedDatabases
from fixtures.fault_log import SeenFunction
from migrations import runner
from migrations.shared.placement_guard import WrongDatabaseError
from migrations.shared.tree import LOGS, MAIN, Tree
from model.names import DatabaseKey

pytestmark = [pytest.mark.matrix]


def superuser_target(provisioned: ProvisionedDatabases, tree: Tree, database: DatabaseKey) -> runner.Target:
    """Credentials that could create tables anywhere: only the guard stands in the way."""
    return runner.Target(tree, provisioned.server.url(provisioned.databases[database]))


@pytest.mark.fault(
    what="a migration tree pointed at the other database, with credentials that could create tables there",
    recovery="point it at its own database; nothing was created",
)
@pytest.mark.parametrize(
    ("tree", "wrong", "right"), [(LOGS, DatabaseKey.MAIN, "logs"), (MAIN, DatabaseKey.LOGS, "main")]
)
def test_a_tree_on_the_other_database_is_refused_and_nothing_is_created(
    provisioned: ProvisionedDatabases, tree: Tree, wrong: DatabaseKey, right: str, fault_seen: SeenFunction
) -> None:
    with provisioned.server.connect(provisioned.databases[wrong]) as connection:
        before = catalog.tables(connection)
    with pytest.raises(WrongDatabaseError) as refused:
        runner.upgrade(superuser_target(provisioned, tree, wrong))
    assert f"the {right} migration tree belongs to the database owned by a role named '*_{right}_owner'" in str(
        refused.value
    )
    assert provisioned.databases[wrong] in str(refused.value)
    fault_seen(f"a run of the {right} tree", None, str(refused.value), "migration tree belongs to")
    with provisioned.server.connect(provisioned.databases[wrong]) as connection:
        assert catalog.tables(connection) == before == set()


@pytest.mark.parametrize("configured", ["headhunter_logs", "zzz_logs"])  # sorting before and after the real name
def test_the_configured_database_name_must_match(provisioned: ProvisionedDatabases, configured: str) -> None:
    target = runner.Target(LOGS, provisioned.migrator_url(DatabaseKey.LOGS), expected_database=configured)
    with pytest.raises(WrongDatabaseError, match=f"belongs to database '{configured}'"):
        runner.upgrade(target)
    assert runner.current_revision(target) is None


def test_the_database_name_from_the_environment_must_match(
    provisioned: ProvisionedDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`alembic --name logs upgrade head` by hand takes the expected name from HEADHUNTER_LOGS_DATABASE."""
    monkeypatch.setenv(LOGS.expected_database_env_var, "headhunter_logs")
    target = runner.Target(LOGS, provisioned.migrator_url(DatabaseKey.LOGS))
    with pytest.raises(WrongDatabaseError, match="belongs to database 'headhunter_logs'"):
        runner.upgrade(target)
    assert runner.current_revision(target) is None


@pytest.mark.parametrize(("tree", "other"), [(LOGS, MAIN), (MAIN, LOGS)])
def test_a_database_holding_the_other_trees_version_table_is_refused(
    provisioned: ProvisionedDatabases, tree: Tree, other: Tree
) -> None:
    database = provisioned.databases[DatabaseKey(tree.key)]
    with provisioned.server.connect(database) as connection:
        connection.execute(f"CREATE TABLE {other.version_table} (version_num varchar(32) PRIMARY KEY)")
    target = runner.Target(tree, provisioned.migrator_url(DatabaseKey(tree.key)), database)
    with pytest.raises(WrongDatabaseError, match=other.version_table):
        runner.upgrade(target)
    with provisioned.server.connect(database) as connection:
        assert catalog.tables(connection) == {other.version_table}


def test_the_reviewers_sql_script_carries_the_guard(provisioned: ProvisionedDatabases) -> None:
    """`--sql` output run by hand in the wrong database stops at its first statement."""
    script = runner.upgrade_sql(runner.Target(LOGS, provisioned.migrator_url(DatabaseKey.LOGS)))
    guard = script[: script.index("END $guard$") + len("END $guard$")]
    with (
        provisioned.server.connect(provisioned.databases[DatabaseKey.MAIN]) as main,
        pytest.raises(psycopg.errors.RaiseException, match="the logs migration tree does not belong to database"),
    ):
        main.execute(guard)
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        logs.execute(guard)  # the right database passes
