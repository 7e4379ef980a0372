"""Which table and index lives in which database: the expected placement the verification checks.

The migration trees create these objects; tests/migrations checks that each tree's head creates
exactly what is listed here, so the list and the trees cannot drift apart unnoticed.
"""

from __future__ import annotations

from model.names import DatabaseKey

DATA_TABLES: dict[DatabaseKey, frozenset[str]] = {
    DatabaseKey.MAIN: frozenset({"user_invitations"}),
    DatabaseKey.LOGS: frozenset({"system_logs", "llm_logs"}),
}

VERSION_TABLES: dict[DatabaseKey, str] = {key: f"alembic_version_{key}" for key in DatabaseKey}

INDEXES: dict[DatabaseKey, frozenset[str]] = {
    DatabaseKey.MAIN: frozenset(
        {
            "user_invitations_pkey",
            "uq_user_invitations_token_hash",
            "uq_user_invitations_open_email",
            "idx_user_invitations_open_expiry",
            "alembic_version_main_pkc",
        }
    ),
    DatabaseKey.LOGS: frozenset(
        {
            "system_logs_pkey",
            "llm_logs_pkey",
            "idx_system_logs_level_created",
            "idx_system_logs_component_created",
            "idx_system_logs_errors",
            "idx_system_logs_request_id",
            "idx_llm_logs_created_model_cost",
            "idx_llm_logs_model_created",
            "idx_llm_logs_failures",
            "idx_llm_logs_request_id",
            "alembic_version_logs_pkc",
        }
    ),
}


def all_tables(database: DatabaseKey) -> frozenset[str]:
    return DATA_TABLES[database] | {VERSION_TABLES[database]}
