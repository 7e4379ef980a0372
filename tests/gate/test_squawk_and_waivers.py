"""squawk really runs (and its absence stops the gate), waivers are honoured and printed, bad ones refused,
and what the gate judges is the SQL the revision executes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from migrations import gate, runner
from migrations.gate import squawk
from migrations.gate.rendering import render
from migrations.shared.tree import MAIN
from ops.errors import ExitCode
from ops.paths import REPO_ROOT
from tests.gate.conftest import REVISION, TIMEOUTS, Judge, rules_of, tree_with

INTEGER_COLUMN = 'op.execute("ALTER TABLE user_invitations ADD COLUMN IF NOT EXISTS attempts integer")'
PLAIN_INDEX = 'op.create_index("ix_email", "user_invitations", ["email"], if_not_exists=True)'
TWO_PLAIN_INDEXES = PLAIN_INDEX + '\nop.create_index("ix_role", "user_invitations", ["role"], if_not_exists=True)'


def waivers(*entries: dict[str, str]) -> str:
    return f"gate_waivers = {list(entries)!r}\n"


def test_a_squawk_finding_is_reported_with_its_revision_and_statement(judge: Judge) -> None:
    verdict = judge(INTEGER_COLUMN)
    assert [(finding.revision, finding.rule) for finding in verdict.findings] == [(REVISION, "prefer-bigint-over-int")]
    assert "ADD COLUMN IF NOT EXISTS attempts integer" in verdict.findings[0].statement
    assert verdict.refused


def test_a_missing_squawk_stops_the_gate(judge: Judge, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(squawk, "SQUAWK", tmp_path / "squawk")
    with pytest.raises(gate.SquawkError, match="squawk is not installed"):
        judge('op.execute("ALTER TABLE user_invitations ADD COLUMN IF NOT EXISTS note text")')


def test_a_reasoned_waiver_is_honoured_and_printed(judge: Judge) -> None:
    reason = "user_invitations holds a few hundred rows: the build takes milliseconds"
    waiver = {"rule": "index-not-concurrent", "statement": "IX_EMAIL  on user_invitations", "reason": reason}
    verdict = judge(PLAIN_INDEX, waivers(waiver))
    assert not verdict.refused, verdict.report()
    assert [(honoured.revision, honoured.rule, honoured.reason) for honoured in verdict.waivers] == [
        (REVISION, "index-not-concurrent", reason)
    ]
    assert reason in verdict.report()
    assert "CREATE INDEX IF NOT EXISTS ix_email ON user_invitations (email)" in verdict.report()


def test_a_waiver_waives_one_statement_only(judge: Judge) -> None:
    waiver = {"rule": "index-not-concurrent", "statement": "ix_email", "reason": "a small table"}
    verdict = judge(TWO_PLAIN_INDEXES, waivers(waiver))
    assert [(finding.rule, "ix_role" in finding.statement) for finding in verdict.findings] == [
        ("index-not-concurrent", True)
    ]


@pytest.mark.parametrize(
    ("waiver", "problem"),
    [
        ({"rule": "index-not-concurrent", "statement": "ix_email", "reason": " "}, "no reason"),
        ({"rule": "index-not-concurrent", "statement": "ix_email"}, "no reason"),
        ({"rule": "index-not-concurrent", "statement": "ix_nothing", "reason": "small"}, "matches no statement"),
        ({"rule": "type-rewrite", "statement": "ix_email", "reason": "small"}, "matches no statement"),
        ({"rule": "index-not-concurrent", "statement": "user_invitations", "reason": "small"}, "matches 2 statements"),
        ({"rule": "index-not-concurrent", "statement": "ix_email", "reason": "small", "until": "x"}, "unknown key"),
    ],
)
def test_an_unreasoned_or_unmatched_waiver_is_refused(judge: Judge, waiver: dict[str, str], problem: str) -> None:
    verdict = judge(TWO_PLAIN_INDEXES, waivers(waiver))
    invalid = [finding for finding in verdict.findings if finding.rule == "waiver-invalid"]
    assert len(invalid) == 1, verdict.report()
    assert problem in invalid[0].detail
    assert verdict.refused


def test_the_statements_judged_are_those_the_upgrade_executes(tmp_path: Path) -> None:
    """Each statement the rules read appears, as written, in the SQL `scripts/migrate STACK main --sql` prints."""
    tree = tree_with(tmp_path, TIMEOUTS + PLAIN_INDEX + "\n" + INTEGER_COLUMN)
    judged = [statement.text for statement in render(MAIN, [REVISION], tree)[0].statements]
    target = runner.Target(MAIN, URL.create("postgresql+psycopg"), None, tree)
    printed = runner.upgrade_sql(target)
    assert "CREATE INDEX IF NOT EXISTS ix_email ON user_invitations (email)" in judged
    assert all(text in printed for text in judged)
    assert rules_of(gate.judge(MAIN, [REVISION], tree)) == {"index-not-concurrent", "prefer-bigint-over-int"}


def test_importing_the_gate_loads_no_model_or_infra_module() -> None:
    probe = "import sys, migrations.gate; print(' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert {"model", "infra"} & set(loaded.stdout.split()) == set()


def test_require_pass_raises_with_the_verdict(judge: Judge) -> None:
    refused = judge(PLAIN_INDEX)
    with pytest.raises(gate.GateRefusedError) as raised:
        gate.require_pass(refused)
    assert raised.value.verdict is refused
    assert "index-not-concurrent" in str(raised.value)
    passed = judge('op.execute("ALTER TABLE user_invitations ADD COLUMN IF NOT EXISTS note text")')
    assert gate.require_pass(passed) is passed


def test_the_documentation_lists_every_rule_and_the_exit_code() -> None:
    text = (REPO_ROOT / "docs" / "migration-gate.md").read_text()
    assert [rule for rule in gate.RULES if f"| `{rule}` |" not in text] == []
    assert f"exit code {int(ExitCode.MIGRATION_REFUSED)}" in text.replace("**", "")
