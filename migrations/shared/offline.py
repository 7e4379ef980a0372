"""The body of both env.py files in offline mode: the SQL of an upgrade, for review and for the gate.

`alembic upgrade --sql` (scripts/migrate STACK TREE upgrade --sql) prints what an online run would
execute: the placement guard first, then the revisions as the database's owner.
"""

from __future__ import annotations

from alembic.runtime.environment import EnvironmentContext
from psycopg import sql

from migrations.shared import environment
from migrations.shared.placement_guard import offline_guard_sql
from migrations.shared.tree import Tree


def run_offline(context: EnvironmentContext, tree: Tree) -> None:
    """`alembic upgrade --sql`: the script opens with the placement guard and acts as the owner."""
    context.configure(
        dialect_name="postgresql",
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **environment.common_options(tree),
    )
    with context.begin_transaction():
        context.execute(offline_guard_sql(tree, environment.expected_database(context, tree)))
        context.execute(
            "DO $role$ BEGIN EXECUTE format('SET ROLE %I', (SELECT pg_get_userbyid(datdba) FROM pg_database "
            "WHERE datname = current_database())); END $role$"
        )
        context.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(environment.LOCK_TIMEOUT)).as_string())
        context.run_migrations()
        context.execute(environment.restrict_version_table_sql(tree))
