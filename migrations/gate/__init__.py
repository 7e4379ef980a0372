"""The migration safety gate: each pending revision judged from the SQL it will execute, before it runs.

    verdict = migrations.gate.judge(tree, pending_revisions, script_location)
    print(verdict.report())
    migrations.gate.require_pass(verdict)  # GateRefusedError (exit 9 in the scripts) when refused

squawk and the project's own rules (migrations.gate.rules) judge each revision's offline SQL on its
own; a revision may waive one rule for one statement with a reason (migrations.gate.waivers).
docs/migration-gate.md has the rules, the waiver form and the exit code. Importing this package reads no
model/ or infra/ module: the tree and its env.py are loaded only when a tree is judged.
"""

from __future__ import annotations

from migrations.gate.judging import judge
from migrations.gate.rules import RULES
from migrations.gate.squawk import SquawkError
from migrations.gate.verdict import Finding, GateRefusedError, HonouredWaiver, Verdict, require_pass

__all__ = [
    "RULES",
    "Finding",
    "GateRefusedError",
    "HonouredWaiver",
    "SquawkError",
    "Verdict",
    "judge",
    "require_pass",
]
