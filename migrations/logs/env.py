"""Alembic environment of the logs tree: system_logs and llm_logs, in the logs database only."""

from logging.config import fileConfig

from alembic import context

from migrations.shared import environment, offline, run_inputs
from migrations.shared.tree import LOGS

config = context.config
if config.config_file_name is not None and run_inputs.of(config).configure_logger:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations_offline() -> None:
    """Print the SQL for review (`alembic --name logs upgrade head --sql`), guarded by placement."""
    offline.run_offline(context, LOGS)


def run_migrations_online() -> None:
    """Migrate the logs database as its owner, after the placement guard and under the run lock."""
    environment.run_online(context, LOGS)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
