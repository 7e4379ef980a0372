"""A revision's waivers: one rule for one statement, with a reason, written in the revision file.

    gate_waivers = [
        {
            "rule": "index-not-concurrent",
            "statement": "CREATE INDEX idx_countries_code",
            "reason": "countries holds 250 rows and no writer: the build takes milliseconds",
        },
    ]

A module-level literal, read with `ast` like `revision` (migrations.shared.heads), so it is reviewed
with the revision and the gate never imports the revision to read it. `statement` is a fragment of the
statement's text (case and runs of spaces do not matter) that must pick out exactly one statement
breaking that rule; a waiver without a reason, or one that matches nothing, is refused like a finding:
a waiver that outlived the statement it was written for must not quietly waive the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from migrations.shared.heads import module_literals

WAIVERS = "gate_waivers"
FIELDS = ("rule", "statement", "reason")


@dataclass(frozen=True)
class Waiver:
    rule: str
    statement: str
    """A fragment of the waived statement's text."""
    reason: str

    def matches(self, text: str) -> bool:
        return normalised(self.statement) in normalised(text)


def normalised(text: str) -> str:
    return " ".join(text.split()).casefold()


def read(path: Path) -> tuple[list[Waiver], list[str]]:
    """The revision's waivers, and a sentence for each entry that is not a well-formed waiver."""
    try:
        declared = module_literals(path, (WAIVERS,)).get(WAIVERS, [])
    except (ValueError, SyntaxError):
        return [], [f"{WAIVERS} must be a literal list of dicts (read without running the revision)"]
    if not isinstance(declared, (list, tuple)):
        return [], [f"{WAIVERS} must be a list of dicts with {', '.join(FIELDS)}, not {type(declared).__name__}"]
    waivers, problems = [], []
    for number, entry in enumerate(declared, start=1):
        problem = _problem(entry)
        if problem:
            problems.append(f"{WAIVERS} entry {number}: {problem}")
        else:
            assert isinstance(entry, dict)
            waivers.append(Waiver(entry["rule"].strip(), entry["statement"], entry["reason"].strip()))
    return waivers, problems


def _problem(entry: object) -> str:
    if not isinstance(entry, dict):
        return f"a dict with {', '.join(FIELDS)} is expected, not {entry!r}"
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        return f"unknown key(s) {', '.join(map(repr, unknown))}: a waiver has exactly {', '.join(FIELDS)}"
    missing = [name for name in FIELDS if not isinstance(entry.get(name), str) or not entry[name].strip()]
    if missing:
        return f"no {' and no '.join(missing)} given: every waiver names its rule, its statement and its reason"
    return ""
