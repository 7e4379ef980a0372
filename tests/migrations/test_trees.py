"""Each tree on its own database: what head looks like, and the way down and back up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from fixtures import catalog
from fixtures.cluster import ProvisionedDatabases
from fixtures.revisions import revision_file
from migrations import runner
from migrations.schema import TreeSchema, head_schema, read_schema
from migrations.shared.tree import LOGS, TREES
from model.names import DatabaseKey
from ops.paths import REPO_ROOT

pytestmark = [pytest.mark.matrix]

LOGS_TABLES = {"system_logs", "llm_logs", "alembic_version_logs"}
MAIN_TABLES = {"user_invitations", "alembic_version_main"}
REVIEW_INDEXES = {"idx_system_logs_level_created", "idx_system_logs_component_created", "idx_system_logs_errors"}


def test_each_tree_has_a_single_head() -> None:
    for tree in TREES.values():
        script = ScriptDirectory.from_config(Config(str(runner.ALEMBIC_INI), ini_section=tree.key))
        assert len(script.get_heads()) == 1, tree.key


def test_from_empty_each_table_lands_in_its_own_database_only(migrated: ProvisionedDatabases) -> None:
    with migrated.server.connect(migrated.databases[DatabaseKey.LOGS]) as logs:
        assert catalog.tables(logs) == LOGS_TABLES
        assert catalog.indexes(logs) >= REVIEW_INDEXES
        assert catalog.invalid_indexes(logs) == set()
    with migrated.server.connect(migrated.databases[DatabaseKey.MAIN]) as main:
        assert catalog.tables(main) == MAIN_TABLES
        assert not any(index.startswith(("idx_system_logs", "idx_llm_logs")) for index in catalog.indexes(main))


# Every index of each database at head, as PostgreSQL prints it back: columns, their order and
# direction, INCLUDE and WHERE. Written out by hand from the trees' revisions, on purpose.
INDEXES_AT_HEAD = {
    DatabaseKey.MAIN: {
        "alembic_version_main_pkc": "UNIQUE INDEX alembic_version_main_pkc ON public.alembic_version_main USING btree "
        "(version_num)",
        "idx_user_invitations_open_expiry": "INDEX idx_user_invitations_open_expiry ON public.user_invitations USING "
        "btree (expires_at) WHERE ((accepted_at IS NULL) AND (revoked_at IS NULL))",
        "uq_user_invitations_open_email": "UNIQUE INDEX uq_user_invitations_open_email ON public.user_invitations "
        "USING btree (lower(email)) WHERE ((accepted_at IS NULL) AND (revoked_at IS NULL))",
        "uq_user_invitations_token_hash": "UNIQUE INDEX uq_user_invitations_token_hash ON public.user_invitations "
        "USING btree (token_hash)",
        "user_invitations_pkey": "UNIQUE INDEX user_invitations_pkey ON public.user_invitations USING btree (id)",
    },
    DatabaseKey.LOGS: {
        "alembic_version_logs_pkc": "UNIQUE INDEX alembic_version_logs_pkc ON public.alembic_version_logs USING btree "
        "(version_num)",
        "idx_llm_logs_created_model_cost": "INDEX idx_llm_logs_created_model_cost ON ONLY public.llm_logs USING btree "
        "(created_at) INCLUDE (model, cost_usd, total_tokens)",
        "idx_llm_logs_failures": "INDEX idx_llm_logs_failures ON ONLY public.llm_logs USING btree (created_at DESC) "
        "WHERE (status <> 'success'::text)",
        "idx_llm_logs_model_created": "INDEX idx_llm_logs_model_created ON ONLY public.llm_logs USING btree "
        "(model, created_at DESC)",
        "idx_llm_logs_request_id": "INDEX idx_llm_logs_request_id ON ONLY public.llm_logs USING btree (request_id) "
        "WHERE (request_id IS NOT NULL)",
        "idx_system_logs_component_created": "INDEX idx_system_logs_component_created ON ONLY public.system_logs USING "
        "btree (component, created_at DESC)",
        "idx_system_logs_errors": "INDEX idx_system_logs_errors ON ONLY public.system_logs USING btree "
        "(error_type, created_at) WHERE (error_type IS NOT NULL)",
        "idx_system_logs_level_created": "INDEX idx_system_logs_level_created ON ONLY public.system_logs USING btree "
        "(level, created_at DESC)",
        "idx_system_logs_request_id": "INDEX idx_system_logs_request_id ON ONLY public.system_logs USING btree "
        "(request_id) WHERE (request_id IS NOT NULL)",
        "llm_logs_pkey": "UNIQUE INDEX llm_logs_pkey ON ONLY public.llm_logs USING btree (id, created_at)",
        "system_logs_pkey": "UNIQUE INDEX system_logs_pkey ON ONLY public.system_logs USING btree (id, created_at)",
    },
}


def test_every_index_at_head_has_exactly_its_definition(migrated: ProvisionedDatabases) -> None:
    for key, expected in INDEXES_AT_HEAD.items():
        with migrated.server.connect(migrated.databases[key]) as connection:
            rows = connection.execute(catalog.INDEX_DEFINITIONS).fetchall()
        assert {name: definition.removeprefix("CREATE ") for name, definition in rows} == expected, key


def test_every_object_belongs_to_the_owner_not_the_migrator(migrated: ProvisionedDatabases) -> None:
    for key in DatabaseKey:
        with migrated.server.connect(migrated.databases[key]) as connection:
            owners = set(catalog.table_owners(connection).values())
        assert owners == {migrated.names.owner(key)}


def test_a_second_upgrade_applies_nothing(migrated: ProvisionedDatabases) -> None:
    for key in DatabaseKey:
        result = runner.upgrade(migrated.migration_target(key))
        assert result.applied == ()
        assert result.after == runner.head_revision(TREES[key.value])


def test_the_partitioning_revision_refuses_its_downgrade_and_changes_nothing(provisioned: ProvisionedDatabases) -> None:
    target = provisioned.migration_target(DatabaseKey.LOGS)
    runner.upgrade(target, "logs_0004")
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        before = catalog.tables(logs)
    with pytest.raises(Exception, match="logs_0004 is not downgraded: system_logs would have to be rewritten"):
        runner.downgrade(target, "base")
    assert runner.current_revision(target) == "logs_0004"
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        assert catalog.tables(logs) == before


def test_downgrade_to_base_and_upgrade_to_head(provisioned: ProvisionedDatabases) -> None:
    """Every revision below the partitioning one goes down and up again."""
    for key in DatabaseKey:
        target = provisioned.migration_target(key)
        runner.upgrade(target, "logs_0003" if key is DatabaseKey.LOGS else "head")
        runner.downgrade(target, "base")
        with provisioned.server.connect(provisioned.databases[key]) as connection:
            assert catalog.tables(connection) == {target.tree.version_table}
        assert runner.current_revision(target) is None
        result = runner.upgrade(target)
        assert result.after == runner.head_revision(target.tree)
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        assert catalog.tables(logs) == LOGS_TABLES
        assert catalog.invalid_indexes(logs) == set()


BOUND_VALUE_REVISION = revision_file(
    "logs_9995",
    "A revision with a bound parameter, as a data migration has.",
    'op.execute(sa.table("system_logs", sa.column("message", sa.Text)).update().values(message="reviewed"))',
)


def test_the_sql_for_review_carries_values_not_placeholders(logs_target: runner.Target, tmp_path: Path) -> None:
    """The reviewer runs the printed script as it is: a bound value is written into it."""
    tree_copy = tmp_path / "logs"
    shutil.copytree(REPO_ROOT / "migrations" / "logs", tree_copy)
    revision = BOUND_VALUE_REVISION.replace("{down}", runner.head_revision(LOGS))
    (tree_copy / "versions" / "logs_9995_bound.py").write_text(revision)
    script = runner.upgrade_sql(runner.Target(LOGS, logs_target.url, logs_target.expected_database, tree_copy))
    assert "UPDATE system_logs SET message='reviewed'" in script, script[-2000:]


def test_downgrading_the_index_revision_drops_its_indexes_and_keeps_the_tables(
    provisioned: ProvisionedDatabases,
) -> None:
    target = provisioned.migration_target(DatabaseKey.LOGS)
    runner.upgrade(target, "logs_0003")
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        before, tables_before = catalog.indexes(logs), catalog.tables(logs)
    runner.downgrade(target, "logs_0002")
    with provisioned.server.connect(provisioned.databases[DatabaseKey.LOGS]) as logs:
        after = catalog.indexes(logs)
        assert catalog.tables(logs) == tables_before
    dropped = before - after
    assert dropped and all(name.startswith("idx_") for name in dropped), dropped
    assert not any(name.startswith("idx_") for name in after), after


def test_upgrade_sql_is_printed_for_review_and_changes_nothing(logs_target: runner.Target) -> None:
    script = runner.upgrade_sql(logs_target)
    assert 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx_system_logs_errors" ON "system_logs"' in script
    assert script.index("$guard$") < script.index("CREATE TABLE IF NOT EXISTS system_logs")
    assert runner.current_revision(logs_target) is None


def test_only_the_owner_may_touch_the_version_table(migrated: ProvisionedDatabases) -> None:
    """Default privileges would hand alembic_version to the runtime roles: env.py takes it back."""
    with migrated.server.connect(migrated.databases[DatabaseKey.MAIN]) as main:
        grantees = main.execute(
            "SELECT DISTINCT pg_get_userbyid(acl.grantee) FROM pg_class c, aclexplode(c.relacl) acl "
            "WHERE c.relname = 'alembic_version_main'"
        ).fetchall()
    assert {row[0] for row in grantees} <= {migrated.names.owner(DatabaseKey.MAIN)}


def test_the_schema_read_from_a_tree_is_what_migrating_with_it_creates(migrated: ProvisionedDatabases) -> None:
    """migrations/schema.py (what the deploy grants and scripts/verify expects) reads the trees right."""
    for key in DatabaseKey:
        tree = TREES[key.value]
        expected = head_schema(tree)
        with migrated.server.connect(migrated.databases[key]) as connection:
            assert catalog.tables(connection) == expected.tables | {tree.version_table}
            assert catalog.indexes(connection) == expected.indexes


def test_the_schema_reading_follows_drops_and_keys() -> None:
    script = (
        "CREATE TABLE a (\n    id int, \n    PRIMARY KEY (id)\n);\n"
        "CREATE TABLE b (\n    id int, \n    CONSTRAINT uq_b UNIQUE (id)\n);\n"
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "ix_a" ON "a" (id);\n'
        "DO $x$ BEGIN RAISE EXCEPTION 'DROP INDEX uq_b'; END $x$;\n"
        "DROP TABLE a;\n"
    )
    assert read_schema(script, "v") == TreeSchema(frozenset({"b"}), frozenset({"uq_b"}))


def test_the_schema_reading_leaves_partitions_to_their_table_and_reads_on_past_them() -> None:
    script = (
        "CREATE TABLE logs (\n    id int\n);\n"
        'CREATE TABLE IF NOT EXISTS "logs_p20261206" (LIKE "logs" INCLUDING DEFAULTS);\n'
        'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "logs_p_before_pkey" ON "logs" (id, created_at);\n'
        "CREATE TABLE audit (\n    id int\n);\n"
    )
    assert read_schema(script, "v") == TreeSchema(frozenset({"logs", "audit"}), frozenset())


def test_alembic_by_hand_migrates_its_tree_and_logs_each_revision(provisioned: ProvisionedDatabases) -> None:
    """As an operator runs it: the URL without its password, the password where libpq reads it."""
    url = provisioned.migrator_url(DatabaseKey.LOGS)
    env = {
        **os.environ,
        LOGS.url_env_var: url.set(password=None).render_as_string(hide_password=False),
        LOGS.expected_database_env_var: provisioned.databases[DatabaseKey.LOGS],
        "PGPASSWORD": str(url.password),
    }
    alembic = [sys.executable, "-m", "alembic", "-c", "alembic.ini", "--name", "logs", "upgrade", "head"]
    run = subprocess.run(alembic, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "Running upgrade  -> logs_0001" in run.stderr and "logs_0002 -> logs_0003" in run.stderr, run.stderr
    target = runner.Target(LOGS, url, provisioned.databases[DatabaseKey.LOGS])
    assert runner.current_revision(target) == runner.head_revision(LOGS)
