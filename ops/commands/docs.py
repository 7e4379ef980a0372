"""`scripts/docs`: render the generated parts of the docs.

- The privilege matrix in docs/architecture.md, from model/privileges.py: tests/unit/test_docs.py
  fails when it is stale.
- The fault table in docs/faults.md, from reports/faults.json, which a whole run of the suite
  writes (tests/support/fault_log.py): what each fault test saw, so the table says what the code
  does. `scripts/test` renders it after a whole, passing run; a partial or failing run leaves it.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import yaml

from model.names import DatabaseKey, RoleNames
from model.privileges import ObjectKind, Rule, expected, grantees, rules
from ops import cli, paths
from ops.errors import ExitCode, UserError, run_main

ARCHITECTURE = paths.REPO_ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- privilege-matrix:begin (scripts/docs) -->", "<!-- privilege-matrix:end -->"
# Every kind of object the verification suite checks, as the matrix's columns.
COLUMNS = (
    ObjectKind.DATABASE,
    ObjectKind.SCHEMA,
    ObjectKind.TABLES,
    ObjectKind.VERSION_TABLE,
    ObjectKind.SEQUENCES,
    ObjectKind.NEW_TABLES,
)


def dev_stack_names() -> tuple[RoleNames, dict[DatabaseKey, str]]:
    """The names the docs show: the dev stack's, read from its stack file."""
    config = yaml.safe_load((paths.REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    databases = {key: config[f"headhunter-db:{key}Database"] for key in DatabaseKey}
    return RoleNames(config["headhunter-db:rolePrefix"]), databases


def cell(privileges: frozenset[str], kind: ObjectKind) -> str:
    if not privileges:
        return "-"
    if privileges == frozenset(kind.possible_privileges):
        return "all"
    return ", ".join(p for p in kind.possible_privileges if p in privileges)


def via(table: tuple[Rule, ...], key: str, database: DatabaseKey) -> str:
    found = sorted({rule.via.value for rule in table if rule.grantee == key and rule.database == database})
    return ", ".join(found) or "-"


def render_matrix() -> str:
    names, databases = dev_stack_names()
    table = rules()
    sections = []
    for database in DatabaseKey:
        header = " | ".join(kind.value for kind in COLUMNS)
        lines = [
            f"**{database} database `{databases[database]}`**",
            "",
            f"| role | kind | login | {header} | through |",
            "| --- | --- | --- |" + " --- |" * (len(COLUMNS) + 1),
        ]
        for grantee in grantees(names):
            if grantee.database not in (database, None):
                continue
            kind = grantee.kind.value if grantee.kind else "everyone"
            cells = [cell(expected(table, grantee.key, database, column), column) for column in COLUMNS]
            login = "yes" if grantee.login else "no"
            lines.append(
                f"| `{grantee.name}` | {kind} | {login} | "
                + " | ".join(cells)
                + f" | {via(table, grantee.key, database)} |"
            )
        sections.append("\n".join(lines))
    note = (
        "A role not listed under a database holds nothing there: no CONNECT, nothing on its schema or objects. "
        "`new tables` are the owner's default privileges, which every table a later migration creates receives. "
        "An extra read-only login (`readOnlyRoles`) holds nothing itself: it is a member of its database's "
        "NOLOGIN readers group `<prefix>_<database>_readers`, which holds a reader's grants, as `logs_reader` above."
    )
    return "\n\n".join([*sections, note])


def rendered_document() -> str:
    text = ARCHITECTURE.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{render_matrix()}\n{text[end:]}"


FAULTS = paths.REPO_ROOT / "docs" / "faults.md"
FAULT_REPORT = paths.REPO_ROOT / "reports" / "faults.json"
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
        return f"{FAULT_REPORT.relative_to(paths.REPO_ROOT)} does not exist (run scripts/test)"
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
    where = FAULTS.relative_to(paths.REPO_ROOT)
    report = read_fault_report()
    problem = fault_report_problem(report)
    if problem is not None or report is None:
        print(f"{where} left as it was: {problem}", file=sys.stderr)
        return
    text = FAULTS.read_text()
    start, end = text.index(FAULTS_BEGIN) + len(FAULTS_BEGIN), text.index(FAULTS_END)
    FAULTS.write_text(f"{text[:start]}\n{render_fault_table(report)}\n{text[end:]}")
    print(f"rendered the fault table into {where} from the last run of the suite", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("docs", sys.argv[1:] if argv is None else argv)
    where = ARCHITECTURE.relative_to(paths.REPO_ROOT)
    if args.check:
        if ARCHITECTURE.read_text() != rendered_document():
            raise UserError(f"{where} is stale: run scripts/docs.", ExitCode.VERIFY_FAILED)
        print(f"{where} is up to date", file=sys.stderr)
        return ExitCode.OK
    ARCHITECTURE.write_text(rendered_document())
    print(f"rendered the privilege matrix into {where}", file=sys.stderr)
    render_faults()
    return ExitCode.OK


if __name__ == "__main__":
    run_main(main)
