"""Composite indexes for the admin queries on system_logs and llm_logs.

Revision ID: logs_0003
Revises: logs_0002
Create Date: 2026-11-29

These are the indexes the code review (shared/seed) found created in the wrong database. They are
added to tables that already hold rows with writers appending, so they are built CONCURRENTLY:
inserts go on while each index builds. What each one serves:
- level / component, newest first: "recent ERROR logs", "recent logs of the scheduler";
- errors: "recent errors by type", a partial index over the few rows with an error_type;
- request_id: every log line and model call of one request;
- llm_logs by time with model and cost included: cost and tokens per model per day, index-only;
- llm_logs by model, newest first, and recent failures.
"""

from collections.abc import Sequence

from migrations.shared.concurrent_index import ConcurrentIndex, create_concurrently, drop_concurrently

revision: str = "logs_0003"
down_revision: str | None = "logs_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ConcurrentIndex("idx_system_logs_level_created", "system_logs", "(level, created_at DESC)"),
    ConcurrentIndex("idx_system_logs_component_created", "system_logs", "(component, created_at DESC)"),
    ConcurrentIndex("idx_system_logs_errors", "system_logs", "(error_type, created_at) WHERE error_type IS NOT NULL"),
    ConcurrentIndex("idx_system_logs_request_id", "system_logs", "(request_id) WHERE request_id IS NOT NULL"),
    ConcurrentIndex(
        "idx_llm_logs_created_model_cost", "llm_logs", "(created_at) INCLUDE (model, cost_usd, total_tokens)"
    ),
    ConcurrentIndex("idx_llm_logs_model_created", "llm_logs", "(model, created_at DESC)"),
    ConcurrentIndex("idx_llm_logs_failures", "llm_logs", "(created_at DESC) WHERE status <> 'success'"),
    ConcurrentIndex("idx_llm_logs_request_id", "llm_logs", "(request_id) WHERE request_id IS NOT NULL"),
)


def upgrade() -> None:
    create_concurrently(INDEXES)


def downgrade() -> None:
    drop_concurrently(INDEXES)
