"""What the gate says about the pending revisions of a tree: its findings, the waivers it honoured, and the
refusal that carries them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One statement of one revision that breaks one rule, and how to write it safely."""

    revision: str
    statement: str
    """The statement, shortened to one line."""
    rule: str
    """A rule id of docs/migration-gate.md, or squawk's own rule name."""
    rewrite: str
    """The safe rewrite, in one sentence."""
    detail: str = ""
    """What was seen, when the rule id alone does not say it (squawk's message, a waiver's problem)."""

    def lines(self) -> list[str]:
        seen = f" ({self.detail})" if self.detail else ""
        return [
            f"{self.revision}: {self.rule}{seen}",
            f"    statement: {self.statement}",
            f"    safe rewrite: {self.rewrite}",
        ]


@dataclass(frozen=True)
class HonouredWaiver:
    """A finding the revision waived, with the reason its author gave."""

    revision: str
    rule: str
    statement: str
    reason: str

    def lines(self) -> list[str]:
        return [
            f"{self.revision}: {self.rule} waived",
            f"    statement: {self.statement}",
            f"    reason: {self.reason}",
        ]


@dataclass(frozen=True)
class Verdict:
    tree: str
    revisions: tuple[str, ...]
    """The revisions judged, oldest first."""
    findings: tuple[Finding, ...]
    waivers: tuple[HonouredWaiver, ...]

    @property
    def refused(self) -> bool:
        return bool(self.findings)

    def report(self) -> str:
        """For the operator: the outcome, then each finding and each honoured waiver."""
        judged = ", ".join(self.revisions) or "none pending"
        if self.refused:
            heading = f"migration gate, {self.tree} tree: REFUSED, {len(self.findings)} finding(s) (judged: {judged})"
        else:
            heading = f"migration gate, {self.tree} tree: passed ({judged})"
        lines = [heading]
        lines += [f"  {line}" for finding in self.findings for line in finding.lines()]
        if self.waivers:
            lines.append(f"  waivers honoured ({len(self.waivers)}):")
            lines += [f"    {line}" for waiver in self.waivers for line in waiver.lines()]
        return "\n".join(lines)


class GateRefusedError(Exception):
    """A pending revision broke a rule: nothing ran. `verdict.report()` names each statement and its fix."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.report())
        self.verdict = verdict


def require_pass(verdict: Verdict) -> Verdict:
    """The verdict when it passed; GateRefusedError carrying it otherwise."""
    if verdict.refused:
        raise GateRefusedError(verdict)
    return verdict
