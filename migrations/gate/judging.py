"""judge(): every pending revision of a tree, from the SQL it will execute, before anything runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from migrations.gate import rules, squawk
from migrations.gate.rendering import RevisionSQL, render
from migrations.gate.verdict import Finding, HonouredWaiver, Verdict
from migrations.gate.waivers import Waiver, read

if TYPE_CHECKING:
    from migrations.shared.tree import Tree

SHORT = 160
"""A statement is shown on one line of at most this many characters."""


@dataclass(frozen=True)
class _Problem:
    statement: int
    text: str
    rule: str
    rewrite: str
    detail: str = ""


def judge(tree: Tree, revisions: Sequence[str], script_location: Path | None = None) -> Verdict:
    """The verdict on `revisions` (the pending ones, oldest first) of `tree`, or of its copy at `script_location`."""
    findings: list[Finding] = []
    honoured: list[HonouredWaiver] = []
    for revision in render(tree, revisions, script_location):
        revision_findings, revision_waivers = _judge_revision(revision)
        findings += revision_findings
        honoured += revision_waivers
    return Verdict(tree.key, tuple(revisions), tuple(findings), tuple(honoured))


def _judge_revision(revision: RevisionSQL) -> tuple[list[Finding], list[HonouredWaiver]]:
    problems = _problems(revision)
    waivers, malformed = read(revision.path)
    findings = [_invalid_waiver(revision.revision, problem) for problem in malformed]
    honoured = []
    for waiver in waivers:
        waived = [problem for problem in problems if problem.rule == waiver.rule and waiver.matches(problem.text)]
        statements = {problem.statement for problem in waived}
        if len(statements) != 1:
            findings.append(_invalid_waiver(revision.revision, _unmatched(waiver, len(statements))))
            continue
        problems = [problem for problem in problems if problem not in waived]
        honoured.append(HonouredWaiver(revision.revision, waiver.rule, shortened(waived[0].text), waiver.reason))
    findings += [
        Finding(revision.revision, shortened(problem.text), problem.rule, problem.rewrite, problem.detail)
        for problem in problems
    ]
    return findings, honoured


def _problems(revision: RevisionSQL) -> list[_Problem]:
    """Every rule each of the revision's statements breaks, ours and squawk's, in statement order."""
    own = revision.statements
    found = [
        _Problem(index, own[index].text, rule, rules.RULES[rule].rewrite)
        for index, rule in rules.breaches(own, contract=_is_contract(revision.path))
    ]
    found += [
        _Problem(item.statement, own[item.statement].text, item.rule, item.help or item.message, item.message)
        for item in squawk.findings(revision.script, own)
    ]
    # squawk reports a rule once per offending column: one finding per statement and rule is what a waiver waives.
    unique = {(problem.statement, problem.rule): problem for problem in reversed(found)}
    return sorted(unique.values(), key=lambda problem: problem.statement)


def _is_contract(path: Path) -> bool:
    from migrations.shared.phases import Phase, phase_of

    return phase_of(path) is Phase.CONTRACT


def _unmatched(waiver: Waiver, statements: int) -> str:
    if statements == 0:
        return (
            f"the waiver of {waiver.rule} for {waiver.statement!r} matches no statement breaking that rule: "
            "remove it, or correct its rule or its statement fragment"
        )
    return (
        f"the waiver of {waiver.rule} for {waiver.statement!r} matches {statements} statements: a waiver is for "
        "one statement, so give a longer fragment"
    )


def _invalid_waiver(revision: str, problem: str) -> Finding:
    return Finding(revision, "gate_waivers", "waiver-invalid", rules.RULES["waiver-invalid"].rewrite, problem)


def shortened(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= SHORT else one_line[: SHORT - 1] + "…"
