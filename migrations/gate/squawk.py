"""squawk (PyPI `squawk-cli`, pinned in requirements.txt) over one revision's offline SQL.

The binary the wheel installs beside this virtualenv's Python is run on the whole script (env.py's
opening statements included, so it sees the lock_timeout they set); each finding is mapped by its line
to the revision's own statement that holds it, and findings on env.py's statements are left to env.py's
own tests. squawk's rules that the project's own rules replace are turned off: ours also know the
tables the revision created, its phase, and every timeout set (RULES_REPLACED says which is which).
"""

from __future__ import annotations

import json
import subprocess
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from migrations.gate.statements import Statement

SQUAWK = Path(sysconfig.get_path("scripts")) / "squawk"
"""Where pip put the squawk-cli wheel's binary: this environment's scripts folder (.venv/bin)."""
PG_VERSION = "16"
"""The oldest PostgreSQL major the project supports (model.server_versions): a rule that depends on the
server's version judges for the oldest one a stack may run."""
TIMEOUT_S = 120.0

RULES_REPLACED = {
    "require-concurrent-index-creation": "index-not-concurrent",
    "adding-field-with-default": "volatile-default",
    "changing-column-type": "type-rewrite",
    "adding-not-nullable-field": "not-null-without-check",
    "adding-foreign-key-constraint": "constraint-not-valid",
    "constraint-missing-not-valid": "constraint-not-valid",
    "disallowed-unique-constraint": "constraint-not-valid",
    "adding-serial-primary-key-field": "constraint-not-valid",
    "ban-drop-column": "drop-or-rename-outside-contract",
    "ban-drop-table": "drop-or-rename-outside-contract",
    "renaming-column": "drop-or-rename-outside-contract",
    "renaming-table": "drop-or-rename-outside-contract",
    "require-timeout-settings": "timeout-missing",
    "require-lock-timeout": "timeout-missing",
    "require-statement-timeout": "timeout-missing",
    "prefer-robust-stmts": "not-rerunnable",
}
"""squawk's rule: the project's rule that judges the same thing, knowing more."""


class SquawkError(RuntimeError):
    """squawk is missing or failed: the gate cannot judge, so it never passes."""


@dataclass(frozen=True)
class SquawkFinding:
    statement: int
    """The index of the revision's own statement the finding is in."""
    rule: str
    message: str
    help: str


def findings(script: str, own: Sequence[Statement]) -> list[SquawkFinding]:
    """squawk's findings on the revision's own statements (those outside them are env.py's)."""
    reported = _run(script)
    found = []
    for item in reported:
        line = int(str(item["line"])) + 1  # squawk counts lines from 0
        index = _statement_at(line, own)
        if index is None:
            continue
        found.append(SquawkFinding(index, str(item["rule_name"]), str(item["message"]), str(item.get("help") or "")))
    return found


def _run(script: str) -> list[dict[str, object]]:
    if not SQUAWK.exists():
        raise SquawkError(
            f"squawk is not installed ({SQUAWK} is missing): run scripts/bootstrap --python-only, which installs "
            "squawk-cli from requirements.txt; the gate refuses to judge without it"
        )
    command = [str(SQUAWK), "--reporter", "json", f"--pg-version={PG_VERSION}", f"--exclude={','.join(RULES_REPLACED)}"]
    # stdin, and no configuration file: a .squawk.toml in the working folder must not change the rules.
    result = subprocess.run(
        [*command, "--stdin-filepath", "revision.sql"],
        input=script,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
        cwd="/",
    )
    # 0: no finding; 1: findings; anything else is squawk failing.
    if result.returncode not in (0, 1):
        raise SquawkError(f"squawk failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    try:
        parsed = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        raise SquawkError(f"squawk printed no JSON report: {result.stdout.strip()[:200]}") from None
    if not isinstance(parsed, list) or (result.returncode == 1 and not parsed):
        raise SquawkError(f"squawk exited {result.returncode} with no finding: {result.stderr.strip()}")
    return parsed


def _statement_at(line: int, own: Sequence[Statement]) -> int | None:
    for index, statement in enumerate(own):
        if statement.line <= line <= statement.last_line and not statement.in_do_block:
            return index
    return None
