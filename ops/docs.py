"""`scripts/docs`: render the privilege matrix from infra/privileges.py into docs/architecture.md.

The matrix in the docs is generated, never typed: tests/unit/test_docs.py fails when it is stale.
"""

from __future__ import annotations

import sys

from infra import placement
from infra.privileges import (
    TABLE_PRIVILEGES,
    DatabaseKey,
    Grantee,
    RoleNames,
    expected_database_privileges,
    expected_table_privileges,
    grantees,
)
from ops import cli, paths
from ops.errors import ExitCode, UserError, run_main

ARCHITECTURE = paths.REPO_ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- privilege-matrix:begin (scripts/docs) -->", "<!-- privilege-matrix:end -->"
DEV_NAMES = RoleNames("headhunter")
DEV_DATABASES = {DatabaseKey.MAIN: "headhunter_db", DatabaseKey.LOGS: "headhunter_logs"}


def cell(privileges: frozenset[str], everything: tuple[str, ...]) -> str:
    if not privileges:
        return "-"
    if privileges == frozenset(everything):
        return "all"
    return ", ".join(p for p in everything if p in privileges)


def database_cell(grantee: Grantee, key: DatabaseKey) -> str:
    return cell(expected_database_privileges(grantee, key), ("CONNECT", "CREATE", "TEMPORARY"))


def tables_cell(grantee: Grantee, key: DatabaseKey) -> str:
    data = {expected_table_privileges(grantee, key, t, False) for t in placement.DATA_TABLES[key]}
    (privileges,) = data  # the model grants the same on every data table of a database
    return cell(privileges, TABLE_PRIVILEGES)


def render_matrix() -> str:
    main, logs = DEV_DATABASES[DatabaseKey.MAIN], DEV_DATABASES[DatabaseKey.LOGS]
    lines = [
        f"| role | kind | login | database `{main}` | database `{logs}` | tables of `{main}` | tables of `{logs}` |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for grantee in grantees(DEV_NAMES):
        kind = grantee.kind.value if grantee.kind else "everyone"
        login = "yes" if grantee.login else "no"
        cells = [
            database_cell(grantee, DatabaseKey.MAIN),
            database_cell(grantee, DatabaseKey.LOGS),
            tables_cell(grantee, DatabaseKey.MAIN),
            tables_cell(grantee, DatabaseKey.LOGS),
        ]
        lines.append(f"| `{grantee.name}` | {kind} | {login} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rendered_document() -> str:
    text = ARCHITECTURE.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{render_matrix()}\n{text[end:]}"


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
    return ExitCode.OK


if __name__ == "__main__":
    run_main(main)
