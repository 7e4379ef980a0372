"""The fault suite's results: reports/faults.json, and docs/faults.md's table rendered from it.

A test that injects a fault carries `@pytest.mark.fault(what=..., recovery=...)` and calls the
`fault_seen` fixture with what a command printed and its exit code, at the moment it asserts them.
At the end of the session, reports/faults.json holds every such test with its outcome and those
observations, so the table in the docs shows what the suite saw, not what someone typed.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ops.commands.docs import between_markers
from ops.paths import REPO_ROOT

FAULT_REPORT = REPO_ROOT / "reports" / "faults.json"
SeenFunction = Callable[..., str]


@dataclass
class FaultResult:
    nodeid: str
    what: str
    recovery: str
    outcome: str = "not run"
    seen: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def fault_seen(request: pytest.FixtureRequest) -> SeenFunction:
    """Record what `command` showed the user: its exit code and the first line containing `fragment`.

    Returns that line; a missing line fails the test, so the recorded message is one the test checked.
    """

    def seen(command: str, exit_code: object = None, output: str = "", fragment: str | None = None) -> str:
        line = ""
        if fragment is not None:
            found = [text.strip() for text in output.splitlines() if fragment in text]
            assert found, f"{command} printed no line with {fragment!r}: {output[-3000:]}"
            line = found[0]
        shown = "" if exit_code is None else str(int(exit_code)) if isinstance(exit_code, int) else str(exit_code)
        request.node.user_properties.append(("fault_seen", {"command": command, "exit": shown, "says": line}))
        return line

    return seen


class FaultLog:
    """The plugin that follows the fault tests through one session (registered by tests/conftest.py)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, FaultResult] = {}

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            marker = item.get_closest_marker("fault")
            if marker is not None:
                self.results[item.nodeid] = FaultResult(item.nodeid, marker.kwargs["what"], marker.kwargs["recovery"])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.results.get(report.nodeid)
        if result is None:
            return
        if report.failed or report.skipped:
            result.outcome = report.outcome
        elif report.when == "call" and result.outcome == "not run":
            result.outcome = "passed"
        observed: list[dict[str, str]] = [v for k, v in report.user_properties if k == "fault_seen"]  # type: ignore[misc]
        result.seen += [value for value in observed if value not in result.seen]

    def pytest_sessionfinish(self) -> None:
        if not self.results or self.config.option.collectonly:
            return
        FAULT_REPORT.parent.mkdir(exist_ok=True)
        rows = [asdict(result) for result in self.results.values()]
        report = {"complete": self.whole_suite_selected(), "faults": rows}
        FAULT_REPORT.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        render_faults()

    def whole_suite_selected(self) -> bool:
        """True when no -k, -m or path narrowed the run: only then may the table be rendered from it."""
        narrowed = self.config.option.keyword or self.config.option.markexpr
        paths = {Path(arg).resolve() for arg in self.config.args}
        return not narrowed and paths <= {REPO_ROOT / "tests"}


# docs/faults.md's table, rendered from the report when the whole suite ran and every fault test passed.

FAULTS = REPO_ROOT / "docs" / "faults.md"
FAULTS_BEGIN = "<!-- fault-table:begin (scripts/test renders it from reports/faults.json) -->"
FAULTS_END = "<!-- fault-table:end -->"


LONGEST_LINE = 240
# What changes from run to run (temporary paths, pids, ports, clocks, random name prefixes) is shown
# as a placeholder, so that the table changes only when what the user sees changes.
VOLATILE = (
    (re.compile(r"(file://)?/tmp/pytest-of-[^\s'\")]*"), "<tmp>"),
    (re.compile(r"\(pid \d+\)"), "(pid N)"),
    (re.compile(r"\b(localhost|\d{1,3}(\.\d{1,3}){3}):\d{2,5}\b"), r"\1:PORT"),
    (re.compile(r"\bport \d{4,5}\b"), "port PORT"),
    (re.compile(r"\bt[0-9a-f]{6}(?=_)"), "tNNNNNN"),
    (re.compile(r"\.damaged-\d+"), ".damaged-N"),
    (re.compile(r"\b\d{4}-\d\d-\d\dT[\d:.]+Z"), "<time>"),
    (re.compile(r"\(\d+(\.\d+)?s\)"), "(N s)"),
    (re.compile(r"\s+"), " "),
)


def stable(line: str) -> str:
    for pattern, placeholder in VOLATILE:
        line = pattern.sub(placeholder, line)
    return line if len(line) <= LONGEST_LINE else line[: LONGEST_LINE - 1] + "…"


def fault_report_problem(report: dict[str, Any] | None) -> str | None:
    """Why the table cannot be rendered from this report, or None when it can."""
    if report is None:
        return f"{FAULT_REPORT.relative_to(REPO_ROOT)} does not exist (run scripts/test)"
    if not report["complete"]:
        return "the last run was narrowed by -k, -m, --fast or a path (run scripts/test with no arguments)"
    failed = [row["nodeid"] for row in report["faults"] if row["outcome"] != "passed"]
    if failed:
        return "these fault tests did not pass in the last run: " + ", ".join(failed)
    return None


def render_fault_table(report: dict[str, Any]) -> str:
    """One row per test function (its parametrized cases together), with what the suite saw."""
    by_function: dict[str, list[dict[str, Any]]] = {}
    for row in report["faults"]:
        by_function.setdefault(row["nodeid"].split("[")[0], []).append(row)
    lines = [
        "| fault | what the suite saw: the command, its exit code, the line it printed | how it is recovered | test |",
        "| --- | --- | --- | --- |",
    ]
    for function, rows in by_function.items():
        seen = list(dict.fromkeys(observation_text(obs) for row in rows for obs in row["seen"]))
        cases = f" ({len(rows)} cases)" if len(rows) > 1 else ""
        cells = [rows[0]["what"], "<br>".join(seen) or "-", rows[0]["recovery"], f"`{function}`{cases}"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def observation_text(observation: dict[str, str]) -> str:
    parts = [observation["command"]]
    if observation["exit"]:
        parts.append(f"exit {observation['exit']}")
    if observation["says"]:
        parts.append(f"“{stable(observation['says'])}”")
    return ", ".join(parts)


def read_fault_report() -> dict[str, Any] | None:
    return json.loads(FAULT_REPORT.read_text()) if FAULT_REPORT.exists() else None


def render_faults() -> None:
    where = FAULTS.relative_to(REPO_ROOT)
    report = read_fault_report()
    problem = fault_report_problem(report)
    if problem is not None or report is None:
        print(f"{where} left as it was: {problem}", file=sys.stderr)
        return
    FAULTS.write_text(between_markers(FAULTS.read_text(), FAULTS_BEGIN, FAULTS_END, render_fault_table(report)))
    print(f"rendered the fault table into {where} from the last run of the suite", file=sys.stderr)
