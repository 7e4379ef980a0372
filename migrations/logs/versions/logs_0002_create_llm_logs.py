"""Create llm_logs.

Revision ID: logs_0002
Revises: logs_0001
Create Date: 2026-11-29

One row per call to a language model. What the admin pages ask of it: cost and tokens per model
per day, latency per model, recent failures, and every call of one request (joined with
system_logs on request_id). Hence provider and model, token counts (total is computed, so it can
never disagree), latency, cost as an exact numeric (money never goes through float), and a status.
Prompts and completions are not stored: they may hold personal data; metadata may carry a hash.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "logs_0002"
down_revision: str | None = "logs_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("success", "error", "timeout", "rate_limited")

# Read by the migration gate (docs/migration-gate.md); they change nothing this revision does.
gate_waivers = [
    {
        "rule": "prefer-bigint-over-int",
        "statement": "prompt_tokens INTEGER",
        "reason": "each integer column holds one model call's own figure (its tokens, its latency in ms), never a "
        "running count: 2^31 tokens or 24 days of latency is out of reach of one call. The revision is applied: "
        "BIGINT now would differ from every deployed llm_logs, and changing it there rewrites the table.",
    },
]


def upgrade() -> None:
    op.create_table(
        "llm_logs",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("request_id", sa.Text, nullable=True),
        sa.Column("trace_id", sa.Text, nullable=True),
        sa.Column("component", sa.Text, nullable=False, comment="the feature that called the model"),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("operation", sa.Text, nullable=False, server_default="chat", comment="chat, completion, embedding"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_tokens", sa.Integer, sa.Computed("prompt_tokens + completion_tokens", persisted=True)),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Numeric(14, 6), nullable=False, server_default="0"),
        sa.Column("error_type", sa.Text, nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("user_id", sa.BigInteger, nullable=True),
        sa.Column("metadata", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.CheckConstraint(f"status IN {STATUSES!r}", name="ck_llm_logs_status"),
        sa.CheckConstraint("prompt_tokens >= 0 AND completion_tokens >= 0", name="ck_llm_logs_tokens"),
        sa.CheckConstraint("latency_ms >= 0", name="ck_llm_logs_latency"),
        sa.CheckConstraint("cost_usd >= 0", name="ck_llm_logs_cost"),
        sa.CheckConstraint("status = 'success' OR error_type IS NOT NULL", name="ck_llm_logs_failure_has_type"),
    )


def downgrade() -> None:
    op.drop_table("llm_logs")
