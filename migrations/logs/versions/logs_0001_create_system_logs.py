"""Create system_logs.

Revision ID: logs_0001
Revises:
Create Date: 2026-11-29

One row per application log event. The columns a log pipeline needs to answer "what failed, where,
for which request": level and component for filtering, error_type and stack_trace for errors,
request_id and trace_id to join with traces and with llm_logs, and metadata (JSONB) for the rest of
a structured log record, so a new field needs no migration. Rows are only ever appended: the writer
role has INSERT and nothing else. The composite indexes come in logs_0003, built concurrently.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "logs_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def upgrade() -> None:
    op.create_table(
        "system_logs",
        # An identity column: inserting its default needs no privilege on the sequence.
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("component", sa.Text, nullable=False, comment="service or module that logged the event"),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("error_type", sa.Text, nullable=True, comment="exception class; NULL for non-errors"),
        sa.Column("stack_trace", sa.Text, nullable=True),
        sa.Column("request_id", sa.Text, nullable=True),
        sa.Column("trace_id", sa.Text, nullable=True, comment="W3C trace id, 32 hex digits"),
        sa.Column("user_id", sa.BigInteger, nullable=True, comment="the acting user's id in the application"),
        sa.Column("metadata", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.CheckConstraint(f"level IN {LEVELS!r}", name="ck_system_logs_level"),
        sa.CheckConstraint("trace_id IS NULL OR trace_id ~ '^[0-9a-f]{32}$'", name="ck_system_logs_trace_id"),
    )


def downgrade() -> None:
    op.drop_table("system_logs")
