"""The fault suite's results, written where `scripts/docs` renders docs/faults.md from them.

A test that injects a fault carries `@pytest.mark.fault(what=..., recovery=...)` and calls the
`fault_seen` fixture with what a command printed and its exit code, at the moment it asserts them.
At the end of the session, reports/faults.json holds every such test with its outcome and those
observations, so the table in the docs shows what the suite saw, not what someone typed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

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

    def whole_suite_selected(self) -> bool:
        """True when no -k, -m or path narrowed the run: only then may the table be rendered from it."""
        narrowed = self.config.option.keyword or self.config.option.markexpr
        paths = {Path(arg).resolve() for arg in self.config.args}
        return not narrowed and paths <= {REPO_ROOT / "tests"}
