"""Alembic environment of the main tree: the application's tables, in the main database only."""

from logging.config import fileConfig

from alembic import context

from migrations.shared import environment, offline, run_inputs
from migrations.shared.tree import MAIN

config = context.config
if config.config_file_name is not None and run_inputs.of(config).configure_logger:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations_offline() -> None:
    """Print the SQL for review (`alembic --name main upgrade head --sql`), guarded by placement."""
    offline.run_offline(context, MAIN)


def run_migrations_online() -> None:
    """Migrate the main database as its owner, after the placement guard and under the run lock."""
    environment.run_online(context, MAIN)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
