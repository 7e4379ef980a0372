"""Each rule of the gate broken by a fixture revision, which the gate refuses naming that rule, and its safe
rewrite, which passes. The gate reads the offline SQL: no server runs, so nothing can change on one."""

from __future__ import annotations

import pytest

from tests.gate.conftest import REVISION, Judge, rules_of

CONTRACT = 'phase = "contract"\n'
GUARDED_FK = """op.execute(
    "DO $add$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'fk_invited_by') THEN "
    "ALTER TABLE user_invitations ADD CONSTRAINT fk_invited_by FOREIGN KEY (invited_by) "
    "REFERENCES user_invitations (id) NOT VALID; END IF; END $add$"
)
op.execute("ALTER TABLE user_invitations VALIDATE CONSTRAINT fk_invited_by")
"""
GUARDED_CHECK = GUARDED_FK.replace("fk_invited_by", "ck_email_length").replace(
    'FOREIGN KEY (invited_by) "\n    "REFERENCES user_invitations (id)', "CHECK (length(email) < 320)"
)
CONCURRENT_UNIQUE = """with op.get_context().autocommit_block():
    op.execute("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_token ON user_invitations (token_hash, id)")
op.execute(
    "DO $add$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'uq_token') THEN "
    "ALTER TABLE user_invitations ADD CONSTRAINT uq_token UNIQUE USING INDEX uq_token; END IF; END $add$"
)
"""
NOT_NULL_THROUGH_CHECK = """op.execute(
    "DO $add$ BEGIN IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'ck_invited_by_set') THEN "
    "ALTER TABLE user_invitations ADD CONSTRAINT ck_invited_by_set CHECK (invited_by IS NOT NULL) NOT VALID; "
    "END IF; END $add$"
)
op.execute("ALTER TABLE user_invitations VALIDATE CONSTRAINT ck_invited_by_set")
op.execute("ALTER TABLE user_invitations ALTER COLUMN invited_by SET NOT NULL")
"""
GUARDED_RENAME = """op.execute(
    "DO $rename$ BEGIN IF EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'user_invitations' "
    "AND column_name = 'revoked_at') THEN ALTER TABLE user_invitations RENAME COLUMN revoked_at TO withdrawn_at; "
    "END IF; END $rename$"
)
"""

# rule id, the breaking upgrade(), the safe rewrite's upgrade(), the safe rewrite's module-level lines
CASES = [
    (
        "index-not-concurrent",
        'op.create_index("ix_email", "user_invitations", ["email"], if_not_exists=True)',
        'with op.get_context().autocommit_block():\n    op.create_index("ix_email", "user_invitations", ["email"], '
        "postgresql_concurrently=True, if_not_exists=True)",
        "",
    ),
    (
        "index-not-concurrent",
        'op.create_index("ix_email", "user_invitations", ["email"], if_not_exists=True)',
        # a table the revision creates holds no rows: a plain index on it blocks no one
        'op.create_table("invitation_notes", sa.Column("id", sa.BigInteger, sa.Identity(always=True), '
        'primary_key=True), sa.Column("note", sa.Text), if_not_exists=True)\n'
        'op.create_index("ix_note", "invitation_notes", ["note"], if_not_exists=True)',
        "",
    ),
    (
        "volatile-default",
        'op.execute("ALTER TABLE user_invitations ADD COLUMN IF NOT EXISTS nonce uuid DEFAULT gen_random_uuid()")',
        'op.execute("ALTER TABLE user_invitations ADD COLUMN IF NOT EXISTS nonce uuid")\n'
        'op.execute("ALTER TABLE user_invitations ALTER COLUMN nonce SET DEFAULT gen_random_uuid()")',
        "",
    ),
    (
        "volatile-default",
        'op.execute("ALTER TABLE user_invitations ADD COLUMN IF NOT EXISTS seq bigserial")',
        'op.execute("ALTER TABLE user_invitations ADD COLUMN IF NOT EXISTS seen_at timestamptz DEFAULT now()")',
        "",
    ),
    (
        "type-rewrite",
        'op.execute("ALTER TABLE user_invitations ALTER COLUMN invited_by TYPE numeric")',
        'op.execute("ALTER TABLE user_invitations ADD COLUMN IF NOT EXISTS invited_by_v2 numeric")',
        "",
    ),
    (
        "not-null-without-check",
        'op.execute("ALTER TABLE user_invitations ALTER COLUMN invited_by SET NOT NULL")',
        NOT_NULL_THROUGH_CHECK,
        "",
    ),
    (
        "constraint-not-valid",
        GUARDED_FK.replace(" NOT VALID", ""),
        GUARDED_FK,
        "",
    ),
    (
        "constraint-not-valid",
        GUARDED_CHECK.replace(" NOT VALID", ""),
        GUARDED_CHECK,
        "",
    ),
    (
        "constraint-not-valid",
        CONCURRENT_UNIQUE.replace("UNIQUE USING INDEX uq_token", "UNIQUE (token_hash, id)"),
        CONCURRENT_UNIQUE,
        "",
    ),
    (
        "drop-or-rename-outside-contract",
        'op.execute("ALTER TABLE user_invitations DROP COLUMN IF EXISTS revoked_at")',
        'op.execute("ALTER TABLE user_invitations DROP COLUMN IF EXISTS revoked_at")',
        CONTRACT,
    ),
    ("drop-or-rename-outside-contract", GUARDED_RENAME, GUARDED_RENAME, CONTRACT),
    (
        "drop-or-rename-outside-contract",
        'op.execute("DROP TABLE IF EXISTS user_invitations")',
        'op.execute("DROP TABLE IF EXISTS user_invitations")',
        CONTRACT,
    ),
    (
        "not-rerunnable",
        'op.execute("CREATE SEQUENCE invitation_numbers AS bigint")',
        'op.execute("CREATE SEQUENCE IF NOT EXISTS invitation_numbers AS bigint")',
        "",
    ),
    (
        "not-rerunnable",
        'op.execute("ALTER TABLE user_invitations RENAME COLUMN revoked_at TO withdrawn_at")',
        GUARDED_RENAME,
        CONTRACT,
    ),
]


@pytest.mark.parametrize(
    ("rule", "broken", "safe", "safe_module_lines"), CASES, ids=[f"{case[0]}-{n}" for n, case in enumerate(CASES)]
)
def test_a_broken_rule_is_refused_and_its_safe_rewrite_passes(
    judge: Judge, rule: str, broken: str, safe: str, safe_module_lines: str
) -> None:
    refused = judge(broken)
    assert refused.refused
    assert rule in rules_of(refused), refused.report()
    finding = next(finding for finding in refused.findings if finding.rule == rule)
    assert finding.revision == REVISION
    assert rule in refused.report()
    assert finding.rewrite in refused.report()
    passed = judge(safe, safe_module_lines)
    assert not passed.refused, passed.report()


def test_a_statement_with_no_statement_timeout_is_refused_and_one_with_both_passes(judge: Judge) -> None:
    statement = 'op.execute("ALTER TABLE user_invitations ADD COLUMN IF NOT EXISTS note text")'
    refused = judge('op.execute("RESET statement_timeout")\n' + statement, timeouts=False)
    assert rules_of(refused) == {"timeout-missing"}, refused.report()
    assert not judge(statement).refused


def test_a_statement_with_no_lock_timeout_is_refused(judge: Judge) -> None:
    statement = 'op.execute("ALTER TABLE user_invitations ADD COLUMN IF NOT EXISTS note text")'
    refused = judge('op.execute("SET lock_timeout = 0")\n' + statement)
    assert rules_of(refused) == {"timeout-missing"}, refused.report()


def test_a_concurrent_build_needs_its_statement_timeout_only(judge: Judge) -> None:
    """Its wait for older transactions blocks no writer, so lock_timeout 0 is its own budget, not a risk."""
    build = (
        'with op.get_context().autocommit_block():\n    op.execute("SET lock_timeout = 0")\n'
        '    op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_email ON user_invitations (email)")'
    )
    assert not judge(build).refused
    refused = judge('op.execute("RESET statement_timeout")\n' + build)
    assert rules_of(refused) == {"timeout-missing"}, refused.report()


def test_a_set_local_ends_with_its_transaction(judge: Judge) -> None:
    """SET LOCAL in the revision's transaction no longer holds after COMMIT: what runs outside it is judged bare."""
    upgrade = (
        'op.execute("RESET statement_timeout")\nop.execute("SET LOCAL statement_timeout = \'1min\'")\n'
        "with op.get_context().autocommit_block():\n"
        '    op.execute("ALTER TABLE user_invitations ADD COLUMN IF NOT EXISTS note text")'
    )
    assert rules_of(judge(upgrade)) == {"timeout-missing"}
