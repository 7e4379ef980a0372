"""scripts/adopt's plan of the review's deployment: read from the server, checked table by table."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
import pytest
from psycopg import sql

from fixtures.legacy import LegacyDatabases, run_as_broad_role, stack_view
from infra.scram import scram_sha256_verifier
from migrations.shared.tree import TREES
from model.names import DatabaseKey, RoleNames
from ops.adoption import apply
from ops.adoption.baseline import Rename
from ops.adoption.inspect import StackView, plan_from
from ops.adoption.move import RETIRED_SCHEMA, retire_table
from ops.adoption.plan import Plan, RoleAction
from ops.adoption.revision_shapes import RevisionShape
from ops.adoption.server_access import AdminAccess
from ops.errors import ExitCode, UserError


def plan_of(legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]) -> Plan:
    return plan_from(stack_view(dict(legacy.databases), RoleNames(legacy.prefix)), admin, shapes)


def test_the_plan_of_the_reviews_deployment_stamps_each_tree_moves_the_misplaced_rows_and_renames_hand_made_indexes(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    plan = plan_of(legacy, admin, shapes)
    main, logs = plan.databases
    assert plan.refusals == [] and plan.pending
    assert main.baseline is not None and main.baseline.revision == "main_0001"
    assert [(m.table, m.rows, m.destination) for m in main.misplaced] == [("system_logs", 1000, DatabaseKey.LOGS)]
    assert main.legacy_versions == ("3b5f7a8c9d2e",)
    assert main.foreign_owned == ("user_invitations",)
    # logs: the worker's tables are logs_0002's; two of logs_0003's indexes exist under other names.
    assert logs.baseline is not None and logs.baseline.revision == "logs_0002"
    assert set(logs.baseline.renames) == {
        Rename("system_logs", "ix_logs_level_time", "idx_system_logs_level_created"),
        Rename("llm_logs", "llm_logs_by_model", "idx_llm_logs_model_created"),
        Rename("system_logs", "system_logs_level_check", "ck_system_logs_level", "constraint"),
    }
    assert len(logs.baseline.to_build) == 6 and "idx_system_logs_errors" in logs.baseline.to_build
    text = plan.render()
    for line in (
        "will move 1,000 rows of the misplaced system_logs to the logs database's system_logs",
        "will stamp alembic_version_main at main_0001",
        "will retire alembic_version (at 3b5f7a8c9d2e)",
        "will rename index ix_logs_level_time on system_logs to idx_system_logs_level_created",
        "will rename constraint system_logs_level_check on system_logs to ck_system_logs_level",
        "will stamp alembic_version_logs at logs_0002",
        f"{legacy.broad_role} (LOGIN): owns database {legacy.databases[DatabaseKey.MAIN]}",
    ):
        assert line in text, text


def test_a_table_that_differs_from_every_revision_is_refused_with_each_difference_named(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    main = legacy.databases[DatabaseKey.MAIN]
    run_as_broad_role(legacy, main, "ALTER TABLE user_invitations ALTER COLUMN email TYPE varchar(255)")
    run_as_broad_role(legacy, main, "ALTER TABLE user_invitations DROP CONSTRAINT ck_user_invitations_role")
    plan = plan_of(legacy, admin, shapes)
    assert plan.refusals == [
        f"{main}: against revision main_0001: user_invitations: column email is character varying(255) NOT NULL, "
        "the revision has text NOT NULL",
        f"{main}: against revision main_0001: user_invitations: constraint ck_user_invitations_role "
        "CHECK ((role = ANY (ARRAY['admin'::text, 'recruiter'::text, 'hiring_manager'::text, 'viewer'::text]))) "
        "is missing",
    ]
    assert "REFUSED" in plan.render()


@pytest.mark.parametrize(
    ("statement", "holder"),
    [
        ("CREATE TABLE app_notes (id int CONSTRAINT {name} PRIMARY KEY)", "a constraint of app_notes"),
        ("CREATE INDEX {name} ON user_invitations (role)", "an index of user_invitations"),
        ("CREATE TABLE {name} (id int)", "the table {name}"),
    ],
)
def test_a_relation_named_like_the_stamped_version_tables_key_is_refused_by_name(
    legacy: LegacyDatabases,
    admin: AdminAccess,
    shapes: dict[DatabaseKey, list[RevisionShape]],
    statement: str,
    holder: str,
) -> None:
    """Found by a held-out run: the stamp then failed half-way through --apply with a traceback."""
    main = legacy.databases[DatabaseKey.MAIN]
    name = f"{TREES['main'].version_table}_pkc"
    run_as_broad_role(legacy, main, statement.format(name=name))
    plan = plan_of(legacy, admin, shapes)
    assert plan.refusals == [
        f"{main}: {holder.format(name=name)} is named {name}, the name of the primary key of the version table "
        f"{TREES['main'].version_table} that the stamp creates: rename it (ALTER INDEX ... RENAME, or ALTER TABLE "
        "... RENAME CONSTRAINT) and plan again"
    ]
    assert "REFUSED" in plan.render()


def test_a_stamp_that_fails_after_the_plan_names_the_database_error_not_a_traceback(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    """A relation made between the plan and the apply: the stamp step's failure is a UserError (exit 7)."""
    plan = plan_of(legacy, admin, shapes)
    assert plan.refusals == []
    main = legacy.databases[DatabaseKey.MAIN]
    name = f"{TREES['main'].version_table}_pkc"
    run_as_broad_role(legacy, main, f"CREATE TABLE app_notes (id int CONSTRAINT {name} PRIMARY KEY)")
    said: list[str] = []
    database = plan.database(DatabaseKey.MAIN)
    apply.take_ownership(admin, database, said.append)  # the apply's step before it
    with pytest.raises(UserError) as failed:
        apply.baseline_tree(admin, database, said.append)
    assert failed.value.exit_code == ExitCode.MIGRATION_FAILED
    version_table = TREES["main"].version_table
    expected = f'{main}: stamping {version_table} at main_0001 failed: relation "{name}" already exists'
    assert expected in str(failed.value)


def test_a_misplaced_table_of_another_shape_than_its_destination_is_refused(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    run_as_broad_role(legacy, legacy.databases[DatabaseKey.MAIN], "ALTER TABLE system_logs DROP COLUMN trace_id")
    main = legacy.databases[DatabaseKey.MAIN]
    assert plan_of(legacy, admin, shapes).refusals == [
        f"{main}.system_logs (misplaced): against logs.system_logs: column trace_id is missing (expected text NULL)",
        f"{main}.system_logs (misplaced): against logs.system_logs: constraint ck_system_logs_trace_id "
        "CHECK (((trace_id IS NULL) OR (trace_id ~ '^[0-9a-f]{32}$'::text))) is missing",
    ]


def test_with_every_index_of_the_revision_made_by_hand_the_logs_tree_is_stamped_at_the_index_revision(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    logs = legacy.databases[DatabaseKey.LOGS]
    head = shapes[DatabaseKey.LOGS][-1].inventory
    for number, index in enumerate(head.indexes):
        if index.name not in ("idx_system_logs_level_created", "idx_llm_logs_model_created"):
            create = index.definition.replace("CREATE INDEX ON", f"CREATE INDEX by_hand_{number} ON", 1)
            run_as_broad_role(legacy, logs, create)
    baseline = plan_of(legacy, admin, shapes).databases[1].baseline
    assert baseline is not None
    index_renames = [rename for rename in baseline.renames if rename.kind == "index"]
    assert (baseline.revision, len(index_renames), baseline.to_build) == ("logs_0003", len(head.indexes), ())


def test_the_plan_changes_nothing_on_the_server(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    before = catalog_snapshot(admin, legacy)
    plan_of(legacy, admin, shapes)
    assert catalog_snapshot(admin, legacy) == before


def test_a_server_without_the_databases_plans_nothing_to_adopt(
    admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    names = {DatabaseKey.MAIN: "absent_db", DatabaseKey.LOGS: "absent_logs"}
    plan = plan_from(stack_view(names, RoleNames("absent")), admin, shapes)
    assert not plan.pending and "does not exist: the deploy creates it" in plan.render()
    assert "nothing to adopt: neither database exists; `scripts/up test` creates them." in plan.render()


def catalog_snapshot(admin: AdminAccess, legacy: LegacyDatabases) -> list[Any]:
    """Every database's owner and ACL, and each database's tables, indexes, owners, ACLs and row counts."""
    with admin.connect() as connection:
        snapshot: list[Any] = connection.execute(
            "SELECT datname, datdba, datacl::text FROM pg_database ORDER BY 1"
        ).fetchall()
        snapshot += connection.execute("SELECT rolname FROM pg_roles ORDER BY 1").fetchall()
    for database in legacy.databases.values():
        with admin.connect(database) as connection:
            snapshot += connection.execute(
                "SELECT n.nspname, c.relname, c.relowner, c.relacl::text FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', "
                "'information_schema', 'pg_toast') ORDER BY 1, 2"
            ).fetchall()
            for table in ("system_logs", "alembic_version"):
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                if connection.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,):
                    snapshot += connection.execute(query).fetchall()
    return snapshot


def test_an_index_a_failed_concurrent_build_left_invalid_is_dropped_not_counted(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    logs = legacy.databases[DatabaseKey.LOGS]
    with pytest.raises(psycopg.errors.UniqueViolation):
        run_as_broad_role(legacy, logs, "CREATE UNIQUE INDEX CONCURRENTLY half_built ON system_logs (level)")
    plan = plan_of(legacy, admin, shapes)
    assert plan.databases[1].inventory is not None
    assert plan.databases[1].inventory.invalid_indexes == ("half_built",)
    assert "will drop the invalid index half_built (a failed concurrent build)" in plan.render()


def test_dropping_a_legacy_role_that_owns_another_database_is_refused(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    other = f"{legacy.prefix}_reports"
    with admin.connect() as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(other), sql.Identifier(legacy.broad_role))
        )
    try:
        view = stack_view(dict(legacy.databases), RoleNames(legacy.prefix), **{legacy.broad_role: "drop"})
        plan = plan_from(view, admin, shapes)
    finally:
        with admin.connect() as connection:
            connection.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(other)))
    assert plan.refusals == [
        f"legacyRoles drops {legacy.broad_role}, which owns or is granted objects in {other} as well: hand them "
        "over there first, or make it nologin"
    ]


def test_rows_misplaced_in_main_while_the_logs_database_is_missing_move_after_the_deploy(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    with admin.connect() as connection:
        connection.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(legacy.databases[DatabaseKey.LOGS])))
    plan = plan_of(legacy, admin, shapes)
    assert plan.refusals == [] and plan.existing == [DatabaseKey.MAIN]
    assert [(m.table, m.after_deploy) for m in plan.databases[0].misplaced] == [("system_logs", True)]
    assert "system_logs after the deploy has made it" in plan.render()


def test_an_admin_that_is_no_superuser_and_no_member_of_the_owner_is_told_which_grant_it_needs(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    """As on RDS or Cloud SQL: the admin can create databases and roles, not read another role's tables."""
    managed = f"{legacy.prefix}admin"
    password = secrets.token_urlsafe(12)
    with admin.connect() as connection:
        connection.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
                sql.Identifier(managed), sql.Literal(scram_sha256_verifier(password))
            )
        )
        # RDS's master user reaches the postgres database; the embedded server lets only its admin in.
        connection.execute(sql.SQL("GRANT CONNECT ON DATABASE postgres TO {}").format(sql.Identifier(managed)))
    try:
        managed_admin = AdminAccess(admin.host, admin.port, managed, password)
        with pytest.raises(UserError) as refused:
            plan_from(stack_view(dict(legacy.databases), RoleNames(legacy.prefix)), managed_admin, shapes)
    finally:
        with admin.connect() as connection:
            connection.execute(sql.SQL("REVOKE CONNECT ON DATABASE postgres FROM {}").format(sql.Identifier(managed)))
            connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(managed)))
    main = legacy.databases[DatabaseKey.MAIN]
    assert f"GRANT {legacy.broad_role} TO {managed} (for {main}, " in str(refused.value)
    assert "Nothing was changed." in str(refused.value)


def test_a_stack_holding_the_databases_without_a_successful_deploy_has_its_deploy_pending(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    """An apply killed during its deploy: the databases are in the state, the stack has no outputs yet."""
    names = dict(legacy.databases)
    half_done = StackView("test", names, RoleNames(legacy.prefix), {}, lambda _: True, deployed=False)
    plan = plan_from(half_done, admin, shapes)
    assert plan.deploy_pending and plan.pending
    assert "the stack's last deploy did not finish: --apply deploys again" in plan.render()
    finished = StackView("test", names, RoleNames(legacy.prefix), {}, lambda _: True, deployed=True)
    assert not plan_from(finished, admin, shapes).deploy_pending


def retired_owners(admin: AdminAccess, database: str) -> list[tuple[str, str]]:
    """The retired schema's owner, then each table retired there with its owner."""
    with admin.connect(database) as connection:
        schema = connection.execute(
            "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (RETIRED_SCHEMA,)
        ).fetchall()
        tables = connection.execute(
            "SELECT relname, pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = to_regnamespace(%s) "
            "AND relkind = 'r' ORDER BY 1",
            (RETIRED_SCHEMA,),
        ).fetchall()
        return schema + tables


def test_what_a_run_retired_goes_to_the_owner_role_and_the_plan_says_so_until_it_has(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    """A legacy role the stack keeps must reach nothing once --apply has run: not even the tables it owned in public
    before they were retired (an apply killed after retiring them, or one from before the hand-over)."""
    main, owner = legacy.databases[DatabaseKey.MAIN], f"{legacy.prefix}_main_owner"
    with admin.connect(main) as connection:
        retire_table(connection, "alembic_version")  # as the baseline step retires it
    database = plan_of(legacy, admin, shapes).database(DatabaseKey.MAIN)
    assert database.retired_foreign_owned == ("", "alembic_version")
    assert f"will give the retired {RETIRED_SCHEMA}, {RETIRED_SCHEMA}.alembic_version to {owner}" in "\n".join(
        f"will {line}" for line in database.changes()
    )
    said: list[str] = []
    try:
        apply.take_ownership(admin, database, said.append)  # the step that makes the owner role
        apply.hand_over_retired(admin, database, said.append)
        assert retired_owners(admin, main) == [(RETIRED_SCHEMA, owner), ("alembic_version", owner)]
        assert plan_of(legacy, admin, shapes).database(DatabaseKey.MAIN).retired_foreign_owned == ()
    finally:
        legacy.drop()
        with admin.connect() as connection:
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))
    assert said[-1] == f"{main}: {RETIRED_SCHEMA} and the tables retired there owned by {owner}"


def test_a_legacy_role_made_nologin_no_longer_logs_in_and_keeps_what_it_has(
    legacy: LegacyDatabases, admin: AdminAccess, shapes: dict[DatabaseKey, list[RevisionShape]]
) -> None:
    main = legacy.databases[DatabaseKey.MAIN]
    plan = plan_of(legacy, admin, shapes)
    said: list[str] = []
    apply.settle_legacy_role(admin, plan, RoleAction(legacy.broad_role, "nologin"), said.append)
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        run_as_broad_role(legacy, main, "SELECT 1")
    with admin.connect(main) as connection:
        owner = connection.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'user_invitations'")
        assert owner.fetchone() == (legacy.broad_role,), "nologin takes nothing away"
    assert said == [f"{legacy.broad_role}: can no longer log in"]
