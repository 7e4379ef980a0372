"""pytest-alembic's own checks on both trees, through env.py as an embedder drives it.

pytest-alembic hands env.py its engine in `config.attributes["connection"]` (Alembic's documented
place), so these runs go through the placement guard, the run lock and SET ROLE like any other.
Two of its checks are not run: `test_model_definitions_match_ddl` (the trees have no SQLAlchemy
models; the revisions are the schema, read by migrations/schema.py), and the experimental
`test_downgrade_leaves_no_trace`, which runs each upgrade inside a savepoint of its own connection
and rolls it back: env.py commits around its placement guard and run lock (an open transaction
would make Alembic skip its COMMIT), and the logs tree's CONCURRENTLY builds cannot run inside a
transaction at all. On the main tree it reports the upgrade as undone by nothing, because the
rollback found it committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from alembic.config import Config as AlembicConfig
from pytest_alembic import Config, MigrationContext, runner
from pytest_alembic.tests import default
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from fixtures.cluster import ProvisionedDatabases
from migrations.runner import ALEMBIC_INI
from model.names import DatabaseKey

# The lowest revision whose downgrade the checks may run, per tree: logs_0004 refuses its downgrade
# (it would rewrite every log row under a lock; partition_conversion.ConversionRefusedError says so).
NO_DOWNGRADE_AT_OR_BELOW = {DatabaseKey.MAIN: None, DatabaseKey.LOGS: "logs_0004"}
CHECKS: dict[str, Callable[[MigrationContext], None]] = {
    "single_head_revision": default.test_single_head_revision,
    "upgrade": default.test_upgrade,
    "up_down_consistency": default.test_up_down_consistency,
}


@pytest.fixture(params=list(DatabaseKey), ids=[key.value for key in DatabaseKey])
def alembic_runner_of_a_tree(
    request: pytest.FixtureRequest, provisioned: ProvisionedDatabases
) -> Iterator[MigrationContext]:
    key: DatabaseKey = request.param
    target = provisioned.migration_target(key)
    # alembic.ini's section of the tree and nothing of ours: the engine is all env.py is given.
    alembic_config = AlembicConfig(str(ALEMBIC_INI), ini_section=key.value)
    config = Config(alembic_config=alembic_config, minimum_downgrade_revision=NO_DOWNGRADE_AT_OR_BELOW[key])
    engine = create_engine(target.url, poolclass=NullPool)
    try:
        with runner(config, engine) as context:
            yield context
    finally:
        engine.dispose()


@pytest.mark.parametrize("check", list(CHECKS))
def test_pytest_alembic_check_passes(alembic_runner_of_a_tree: MigrationContext, check: str) -> None:
    CHECKS[check](alembic_runner_of_a_tree)
