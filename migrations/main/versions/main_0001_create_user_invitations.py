"""Create user_invitations.

Revision ID: main_0001
Revises:
Create Date: 2026-11-29

An invitation stores a hash of its token, never the token: a leaked dump of this table cannot be
used to accept an invitation. `invited_by` names a user of the application without a foreign key,
because the users table is the application's own and not part of this tree's history.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "main_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INVITATION_ROLES = ("admin", "recruiter", "hiring_manager", "viewer")


def upgrade() -> None:
    op.create_table(
        "user_invitations",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("token_hash", postgresql.BYTEA, nullable=False, comment="SHA-256 of the invitation token"),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("invited_by", sa.BigInteger, nullable=True, comment="the inviting user's id in the application"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("octet_length(token_hash) = 32", name="ck_user_invitations_token_hash_sha256"),
        sa.CheckConstraint(f"role IN {INVITATION_ROLES!r}", name="ck_user_invitations_role"),
        sa.CheckConstraint("expires_at > created_at", name="ck_user_invitations_expiry_after_creation"),
        sa.CheckConstraint("accepted_at IS NULL OR revoked_at IS NULL", name="ck_user_invitations_accepted_or_revoked"),
        sa.UniqueConstraint("token_hash", name="uq_user_invitations_token_hash"),
    )
    # One open invitation per address, whatever its case.
    op.create_index(
        "uq_user_invitations_open_email",
        "user_invitations",
        [sa.text("lower(email)")],
        unique=True,
        postgresql_where=sa.text("accepted_at IS NULL AND revoked_at IS NULL"),
    )
    # The expiry sweep reads only open invitations.
    op.create_index(
        "idx_user_invitations_open_expiry",
        "user_invitations",
        ["expires_at"],
        postgresql_where=sa.text("accepted_at IS NULL AND revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("user_invitations")
