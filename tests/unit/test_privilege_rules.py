"""What the model promises for read-only roles, for verification's expectations and for the log lifecycle.

Every expected value is written out from docs/architecture.md (the role model, the privilege matrix,
"Add a read-only role") and Pulumi.yaml, not recomputed with model/privileges.py: a slip in the model
turns these red instead of agreeing with itself. The stack is the dev stack's prefix with one reader
of the logs database, `headhunter_analyst`, as in the docs' example.
"""

from __future__ import annotations

import json

from model.log_lifecycle import LogLifecycle, days_text
from model.names import DatabaseKey, RoleKind, RoleNames
from model.privileges import (
    ObjectKind,
    Rule,
    RuntimeRoleSpec,
    Via,
    expected_memberships,
    grantees,
    new_table_grants,
    read_only_role,
    role_keys,
    rules,
)

NAMES = RoleNames("headhunter")
ANALYST = "headhunter_analyst"
READERS: tuple[RuntimeRoleSpec, ...] = (read_only_role(ANALYST, DatabaseKey.LOGS),)
# What a reader reads, all through its group: CONNECT, USAGE on the schema, SELECT on the tables.
READS = {
    ObjectKind.DATABASE: frozenset({"CONNECT"}),
    ObjectKind.SCHEMA: frozenset({"USAGE"}),
    ObjectKind.TABLES: frozenset({"SELECT"}),
}
NOTHING = frozenset[str]()


def rows_of(table: tuple[Rule, ...], grantee: str) -> dict[tuple[DatabaseKey, ObjectKind], tuple[frozenset[str], Via]]:
    """The grantee's rows, by database and kind of object."""
    return {(rule.database, rule.kind): (rule.privileges, rule.via) for rule in table if rule.grantee == grantee}


def test_a_read_only_role_reads_its_database_through_its_group_and_holds_nothing_of_its_own() -> None:
    expected = {(DatabaseKey.LOGS, kind): (privileges, Via.READERS) for kind, privileges in READS.items()}
    # No new-tables row (the group's default privileges reach it), nothing in the main database.
    assert rows_of(rules(READERS), ANALYST) == expected


def test_each_login_of_a_read_only_role_reads_what_the_role_reads() -> None:
    table = rules(READERS)
    for login in (f"{ANALYST}_a", f"{ANALYST}_b"):
        expected = {(DatabaseKey.LOGS, kind): (privileges, Via.LOGIN) for kind, privileges in READS.items()}
        assert rows_of(table, login) == expected, login


def test_the_readers_group_holds_the_grants_once_and_nothing_in_the_other_database() -> None:
    expected = {(DatabaseKey.LOGS, kind): (privileges, Via.GRANT) for kind, privileges in READS.items()}
    expected[DatabaseKey.LOGS, ObjectKind.NEW_TABLES] = (frozenset({"SELECT"}), Via.DEFAULT_PRIVILEGES)
    expected[DatabaseKey.MAIN, ObjectKind.DATABASE] = (NOTHING, Via.REVOKED)
    assert rows_of(rules(READERS), "logs_readers") == expected


def test_every_runtime_role_has_its_connect_to_the_other_database_revoked() -> None:
    table = rules(READERS)
    for key, other in (("app", DatabaseKey.LOGS), ("logs_writer", DatabaseKey.MAIN), ("logs_reader", DatabaseKey.MAIN)):
        assert rows_of(table, key)[other, ObjectKind.DATABASE] == (NOTHING, Via.REVOKED), key


def test_public_has_connect_and_the_schema_revoked_in_both_databases() -> None:
    expected = {
        (database, kind): (NOTHING, Via.REVOKED)
        for database in DatabaseKey
        for kind in (ObjectKind.DATABASE, ObjectKind.SCHEMA)
    }
    assert rows_of(rules(READERS), "public") == expected


def test_the_stack_has_a_reader_its_two_logins_and_its_group_as_roles() -> None:
    by_name = {grantee.name: grantee for grantee in grantees(NAMES, READERS)}
    assert (by_name[ANALYST].kind, by_name[ANALYST].database) == (RoleKind.RUNTIME, DatabaseKey.LOGS)
    for login in (f"{ANALYST}_a", f"{ANALYST}_b"):
        assert (by_name[login].kind, by_name[login].database) == (RoleKind.LOGIN, DatabaseKey.LOGS), login
    assert by_name["headhunter_logs_readers"].kind is RoleKind.READERS


def test_a_login_takes_its_limits_from_its_runtime_roles_key_and_every_other_role_from_its_own() -> None:
    """Connection limits and timeouts are set per role key; a read-only role's key is its name."""
    config_keys = {grantee.name: grantee.config_key for grantee in grantees(NAMES, READERS)}
    assert config_keys["headhunter_app_a"] == "app"
    assert config_keys["headhunter_logs_reader_b"] == "logs_reader"
    assert config_keys[f"{ANALYST}_a"] == ANALYST
    assert config_keys["headhunter_app"] == "app"
    assert config_keys["headhunter_main_migrator"] == "main_migrator"
    assert config_keys[ANALYST] == ANALYST


def test_only_the_nologin_roles_that_hold_for_their_members_are_groups() -> None:
    """Verification skips a connection limit on exactly these: NOLOGIN, a limit would mean nothing."""
    groups = {grantee.name for grantee in grantees(NAMES, READERS) if grantee.group}
    assert groups == {
        "headhunter_main_owner",
        "headhunter_logs_owner",
        "headhunter_app",
        "headhunter_logs_writer",
        "headhunter_logs_reader",
        ANALYST,
        "headhunter_logs_readers",
    }


def test_the_per_role_maps_name_the_owners_migrators_and_runtime_roles() -> None:
    """Pulumi.yaml: connectionLimits is `a map from role key (app, logs_writer, main_migrator, ...)`."""
    assert set(role_keys()) == {
        "main_owner",
        "logs_owner",
        "main_migrator",
        "logs_migrator",
        "app",
        "logs_writer",
        "logs_reader",
    }


def test_verification_expects_each_membership_of_the_stack() -> None:
    assert expected_memberships(NAMES, READERS) == {
        "headhunter_main_migrator": {"headhunter_main_owner"},
        "headhunter_logs_migrator": {"headhunter_logs_owner"},
        ANALYST: {"headhunter_logs_readers"},
        "headhunter_app_a": {"headhunter_app"},
        "headhunter_app_b": {"headhunter_app"},
        "headhunter_logs_writer_a": {"headhunter_logs_writer"},
        "headhunter_logs_writer_b": {"headhunter_logs_writer"},
        "headhunter_logs_reader_a": {"headhunter_logs_reader"},
        "headhunter_logs_reader_b": {"headhunter_logs_reader"},
        f"{ANALYST}_a": {ANALYST},
        f"{ANALYST}_b": {ANALYST},
    }


def test_every_new_table_gets_the_new_tables_column_of_the_matrix_and_nothing_else() -> None:
    """Only the roles with a `new tables` cell, never the owner, a login or PUBLIC: a log partition holds these."""
    assert new_table_grants(NAMES, DatabaseKey.LOGS, READERS) == {
        "headhunter_logs_writer": ["INSERT"],
        "headhunter_logs_reader": ["SELECT"],
        "headhunter_logs_readers": ["SELECT"],
    }
    assert new_table_grants(NAMES, DatabaseKey.MAIN, READERS) == {
        "headhunter_app": ["DELETE", "INSERT", "SELECT", "UPDATE"],
    }


def test_the_lifecycle_output_is_plain_json_with_the_stacks_values() -> None:
    """scripts/verify reads this output back from the stack to check the partitions."""
    lifecycle = LogLifecycle({"system_logs": 30, "llm_logs": 365}, premake_days=14)
    output = json.loads(json.dumps(lifecycle.as_output()))
    assert output == {"retention_days": {"system_logs": 30, "llm_logs": 365}, "premake_days": 14}


def test_days_are_written_as_the_stack_config_writes_them() -> None:
    assert days_text(30) == "30d"
