"""pytest-alembic's own checks on both trees, through env.py as an embedder drives it.

pytest-alembic hands env.py its engine in `config.attributes["connection"]` (Alembic's documented
place), so these runs go through the placement guard, the run lock and SET ROLE like any other. Its
experimental `test_downgrade_leaves_no_trace` hands in instead a wrapper lending one connection inside
its own transaction, rolled back around each upgrade and downgrade: env.py then commits nothing, runs
each try in a savepoint and puts the session back as found (migrations/shared/environment.py). One
check is not run: `test_model_definitions_match_ddl` (the trees have no SQLAlchemy models; the
revisions are the schema, read by migrations/schema.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.config import Config as AlembicConfig
from pytest_alembic import Config, MigrationContext, runner
from pytest_alembic.tests import default, experimental
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from fixtures.cluster import ProvisionedDatabases
from fixtures.revisions import NEW_TABLE_REVISION
from migrations.runner import ALEMBIC_INI
from model.names import DatabaseKey
from ops.paths import REPO_ROOT

# The lowest revision whose downgrade the checks may run, per tree: logs_0004 refuses its downgrade
# (it would rewrite every log row under a lock; partition_conversion.ConversionRefusedError says so).
NO_DOWNGRADE_AT_OR_BELOW = {DatabaseKey.MAIN: None, DatabaseKey.LOGS: "logs_0004"}


def downgrade_leaves_no_trace(alembic_runner: MigrationContext) -> None:
    """The experimental check, from where a deploy leaves the database, committed, before the check's own
    transaction begins.

    The check runs every step inside one transaction of its own, rolled back (nested ones around each
    cycle), so env.py runs inside it (nothing committed, each try in a savepoint). Two things cannot
    happen inside that transaction, and a deploy has done both before any revision above the floor:
    - the revisions at or below the downgrade floor (logs_0004) build indexes CONCURRENTLY, which
      PostgreSQL refuses in a transaction block: the tree is brought to its floor first;
    - Alembic never drops its version table, not even on a downgrade to base, and the check leaves
      only a table named `alembic_version` out of its comparison: from an empty database it would
      find the tree's own (alembic_version_main) made by the first upgrade and kept by its downgrade.
      A tree without a floor is taken one revision up and down first, which leaves the table, empty.
    """
    floor = alembic_runner.config.minimum_downgrade_revision
    if floor is not None:
        alembic_runner.migrate_up_to(floor)
    else:
        alembic_runner.migrate_up_one()
        alembic_runner.migrate_down_one()
    experimental.test_downgrade_leaves_no_trace(alembic_runner)


CHECKS: dict[str, Callable[[MigrationContext], None]] = {
    "single_head_revision": default.test_single_head_revision,
    "upgrade": default.test_upgrade,
    "up_down_consistency": default.test_up_down_consistency,
    "downgrade_leaves_no_trace": downgrade_leaves_no_trace,
}


def alembic_runner_on(key: DatabaseKey, script_location: Path | None = None) -> Config:
    """pytest-alembic's config for a tree: alembic.ini's section of the tree and nothing of ours."""
    alembic_config = AlembicConfig(str(ALEMBIC_INI), ini_section=key.value)
    if script_location is not None:
        alembic_config.set_main_option("script_location", str(script_location))
    return Config(alembic_config=alembic_config, minimum_downgrade_revision=NO_DOWNGRADE_AT_OR_BELOW[key])


@pytest.fixture(params=list(DatabaseKey), ids=[key.value for key in DatabaseKey])
def alembic_runner_of_a_tree(
    request: pytest.FixtureRequest, provisioned: ProvisionedDatabases
) -> Iterator[MigrationContext]:
    key: DatabaseKey = request.param
    target = provisioned.migration_target(key)
    config = alembic_runner_on(key)  # the engine is all env.py is given
    engine = create_engine(target.url, poolclass=NullPool)
    try:
        with runner(config, engine) as context:
            yield context
    finally:
        engine.dispose()


@pytest.mark.parametrize("check", list(CHECKS))
def test_pytest_alembic_check_passes(alembic_runner_of_a_tree: MigrationContext, check: str) -> None:
    CHECKS[check](alembic_runner_of_a_tree)


def test_the_experimental_check_cycles_a_logs_revision_above_the_floor(
    provisioned: ProvisionedDatabases, tmp_path: Path
) -> None:
    """The logs tree's floor is its head today, so the check above has nothing of it to cycle: a revision
    added after the floor (a table, as a team adds one) is upgraded and downgraded inside the check's
    transaction, through env.py, and its downgrade is seen to leave nothing."""
    tree_copy = tmp_path / "logs"
    shutil.copytree(REPO_ROOT / "migrations" / "logs", tree_copy)
    revision = NEW_TABLE_REVISION.replace("{down}", NO_DOWNGRADE_AT_OR_BELOW[DatabaseKey.LOGS] or "")
    (tree_copy / "versions" / "logs_9998_audit_events.py").write_text(revision)
    target = provisioned.migration_target(DatabaseKey.LOGS)
    engine = create_engine(target.url, poolclass=NullPool)
    try:
        with runner(alembic_runner_on(DatabaseKey.LOGS, tree_copy), engine) as context:
            downgrade_leaves_no_trace(context)
            assert context.current == "logs_9998"  # its last step upgrades to the head, in its transaction, committed
    finally:
        engine.dispose()
