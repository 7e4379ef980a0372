"""The generated docs: the privilege matrix (the model's) and the fault table (the suite's results)."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

from fixtures import fault_log
from ops.commands import docs
from ops.errors import MEANINGS
from ops.paths import REPO_ROOT


def test_the_generated_parts_of_the_docs_are_up_to_date() -> None:
    """The privilege matrix is the model's; the exit codes in README and docs/pipelines.md are ops/errors.py's."""
    assert docs.stale() == [], "run scripts/docs and commit the result"


def test_the_exit_codes_are_rendered_from_their_one_definition() -> None:
    for code, meaning in MEANINGS.items():
        assert f"{int(code)} {meaning}" in " ".join(docs.render_exit_codes().split())


def test_the_matrix_says_the_writer_only_inserts() -> None:
    row = next(line for line in docs.render_matrix().splitlines() if line.startswith("| `headhunter_logs_writer`"))
    # database, schema, tables, version table, sequences, new tables, through
    assert row.endswith("| CONNECT | USAGE | INSERT | - | - | INSERT | default privileges, grant |")


def test_the_matrix_shows_every_kind_of_object_that_verification_checks() -> None:
    header = next(line for line in docs.render_matrix().splitlines() if line.startswith("| role |"))
    for column in ("database", "schema", "tables", "version table", "sequences", "new tables"):
        assert f"| {column} |" in header


def fault_tests_of_the_suite() -> list[str]:
    """The test functions marked `fault`, as pytest collects them (parametrized cases folded)."""
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "fault", "-p", "no:cacheprovider", "tests"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    nodeids = [line.split("[")[0] for line in collected.splitlines() if "::" in line]
    return list(dict.fromkeys(nodeids))


def test_the_fault_table_has_a_row_for_every_fault_test_and_no_other() -> None:
    table = fault_log.FAULTS.read_text().split(fault_log.FAULTS_BEGIN)[1].split(fault_log.FAULTS_END)[0]
    rows = re.findall(r"\| `(tests/[^`]+)`(?: \(\d+ cases\))? \|$", table, flags=re.MULTILINE)
    stale = "stale: a whole run of scripts/test renders it; commit docs/faults.md"
    assert sorted(rows) == sorted(fault_tests_of_the_suite()), stale


def report(*rows: dict[str, object], complete: bool = True) -> dict[str, Any]:
    return {"complete": complete, "faults": list(rows)}


def row(nodeid: str, outcome: str = "passed", *seen: dict[str, str]) -> dict[str, object]:
    return {"nodeid": nodeid, "what": "a fault | with a bar", "recovery": "run again", "outcome": outcome, "seen": seen}


def test_the_fault_table_folds_cases_and_shows_what_each_command_printed() -> None:
    up = {"command": "scripts/up", "exit": "5", "says": "error: gone"}
    on_shared = {**row("tests/a.py::test_x[2]", "passed", up), "shared_backend": True}
    table = fault_log.render_fault_table(report(row("tests/a.py::test_x[1]", "passed", up), on_shared))
    assert table.splitlines()[2] == (
        "| a fault \\| with a bar | scripts/up, exit 5, “error: gone” | run again | tested (1 of 2 cases) "
        "| `tests/a.py::test_x` (2 cases) |"
    )
    assert "| - | `tests/b.py::test_y` |" in fault_log.render_fault_table(report(row("tests/b.py::test_y")))


def test_the_fault_table_is_rendered_only_from_a_whole_passing_run() -> None:
    assert fault_log.fault_report_problem(None) is not None
    assert "narrowed" in str(fault_log.fault_report_problem(report(row("tests/a.py::t"), complete=False)))
    assert "tests/a.py::t" in str(fault_log.fault_report_problem(report(row("tests/a.py::t", "failed"))))
    assert fault_log.fault_report_problem(report(row("tests/a.py::t"))) is None


def test_what_changes_from_run_to_run_is_a_placeholder_in_the_fault_table() -> None:
    seen = "created system_logs_p20261220 on 127.0.0.1:28600 (pid 4242) for t1a2b3c_logs in (0.4s)"
    assert fault_log.stable(seen) == "created system_logs_pYYYYMMDD on 127.0.0.1:PORT (pid N) for tNNNNNN_logs in (N s)"
    holder = (
        "locked by another deploy (headhunter deploy together pid 1121 by ci@runner-7, since 2026-12-05 08:08:30 UTC"
    )
    assert (
        fault_log.stable(holder)
        == "locked by another deploy (headhunter deploy together pid N by USER@HOST, since <time>"
    )
