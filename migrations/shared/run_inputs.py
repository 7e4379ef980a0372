"""What a caller hands one run of a tree, as one typed object in Alembic's `config.attributes`.

The runner (scripts/migrate, the migration step, the tests) fills it; env.py reads it. The
password travels inside the SQLAlchemy URL object, never in a process argument or an environment
variable. A plain `alembic` command line has no run inputs: env.py then reads the tree's
environment variables and alembic.ini.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.engine import URL

ATTRIBUTE = "headhunter_run_inputs"


@dataclass
class RunInputs:
    url: URL | None = None
    """Where and as whom to connect (the tree's migrator)."""
    expected_database: str | None = None
    """The stack's configured name for the tree's database, checked by the placement guard."""
    configure_logger: bool = True
    """False for embedders that keep their own logging."""
    connection: Connection | None = None
    """An embedder's open connection, used instead of connecting."""
    applied: list[str] = field(default_factory=list)
    """Filled by the run: the revisions it applied, oldest first."""


def attach(config: Config, inputs: RunInputs) -> RunInputs:
    config.attributes[ATTRIBUTE] = inputs
    return inputs


def of(config: Config) -> RunInputs:
    """The caller's inputs; a command-line run gets the defaults (and keeps what it records)."""
    inputs = config.attributes.get(ATTRIBUTE)
    return inputs if isinstance(inputs, RunInputs) else attach(config, RunInputs())
