"""`scripts/docs`: render the generated parts of the docs.

- The privilege matrix in docs/architecture.md, from model/privileges.py;
- the exit codes in README.md and docs/pipelines.md, from ops/errors.py.
tests/unit/test_docs.py fails when either is stale.

The fault table in docs/faults.md is rendered by the suite itself (fixtures/fault_log.py),
from what each fault test saw.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from model.names import DatabaseKey, RoleNames
from model.privileges import ObjectKind, Rule, expected, grantees, rules
from ops import paths
from ops.commands import cli
from ops.errors import ExitCode, UserError, exit_codes_text, run_main

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
        "A read-only role (`readOnlyRoles`) holds nothing itself: it is a member of its database's "
        "NOLOGIN readers group `<prefix>_<database>_readers`, which holds a reader's grants, as `logs_reader` above."
    )
    return "\n\n".join([*sections, note])


def render_exit_codes() -> str:
    return textwrap.fill(f"Exit codes, the same for every script (`ops/errors.py`): {exit_codes_text()}.", width=100)


@dataclass(frozen=True)
class Generated:
    """A part of a document written by this command, between two markers."""

    path: Path
    begin: str
    end: str
    render: Callable[[], str]


EXIT_BEGIN, EXIT_END = "<!-- exit-codes:begin (scripts/docs) -->", "<!-- exit-codes:end -->"
GENERATED = (
    Generated(ARCHITECTURE, BEGIN, END, render_matrix),
    Generated(paths.REPO_ROOT / "README.md", EXIT_BEGIN, EXIT_END, render_exit_codes),
    Generated(paths.REPO_ROOT / "docs" / "pipelines.md", EXIT_BEGIN, EXIT_END, render_exit_codes),
)


DOCUMENTS = tuple(dict.fromkeys(part.path for part in GENERATED))


def between_markers(text: str, begin: str, end: str, body: str) -> str:
    """`text` with what stands between its two markers replaced by `body` (every generated part of a
    document is written this way: here, by the suite's fault table and by the benchmarks)."""
    start, stop = text.index(begin) + len(begin), text.index(end)
    return f"{text[:start]}\n{body}\n{text[stop:]}"


def rendered(path: Path) -> str:
    """The document with each of its generated parts rendered anew."""
    text = path.read_text()
    for part in GENERATED:
        if part.path == path:
            text = between_markers(text, part.begin, part.end, part.render())
    return text


def stale() -> list[Path]:
    return [path for path in DOCUMENTS if path.read_text() != rendered(path)]


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("docs", sys.argv[1:] if argv is None else argv)
    out_of_date = [str(path.relative_to(paths.REPO_ROOT)) for path in stale()]
    if args.check:
        if out_of_date:
            raise UserError(f"{', '.join(out_of_date)} stale: run scripts/docs.", ExitCode.VERIFY_FAILED)
        print("the generated parts of the docs are up to date", file=sys.stderr)
        return ExitCode.OK
    for path in DOCUMENTS:
        path.write_text(rendered(path))
    print(
        f"rendered the privilege matrix and the exit codes ({', '.join(out_of_date) or 'no change'})", file=sys.stderr
    )
    return ExitCode.OK


if __name__ == "__main__":
    run_main(main)
