"""What the server itself shows of a deployed stack, read without the model or the program's values.

These are the independent expectations: the verification suite and the provisioning both read
model/privileges.py, so a wrong model would pass both; the matrix here is written out by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from fixtures.cluster import Server
from fixtures.project_stack import ProjectStack
from ops.localpg import embedded

TABLE_VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE")
DATABASE_VERBS = ("CONNECT", "TEMPORARY", "CREATE")
# Per role (by its key; `public` is PUBLIC): the verbs it holds on each database and table of a dev-like
# stack, as the README and docs/architecture.md promise them. Written by hand, on purpose.
PROMISED_MATRIX: dict[str, dict[str, tuple[str, ...]]] = {
    "app": {
        "main": ("CONNECT",),
        "main.user_invitations": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "logs": (),
        "logs.system_logs": (),
        "logs.llm_logs": (),
    },
    "logs_writer": {
        "main": (),
        "main.user_invitations": (),
        "logs": ("CONNECT",),
        "logs.system_logs": ("INSERT",),
        "logs.llm_logs": ("INSERT",),
    },
    "logs_reader": {
        "main": (),
        "main.user_invitations": (),
        "logs": ("CONNECT",),
        "logs.system_logs": ("SELECT",),
        "logs.llm_logs": ("SELECT",),
    },
    "public": {
        "main": (),
        "main.user_invitations": (),
        "logs": (),
        "logs.system_logs": (),
        "logs.llm_logs": (),
    },
}


def privilege_matrix(server: Server, project: ProjectStack) -> dict[str, dict[str, tuple[str, ...]]]:
    """What PostgreSQL answers to has_*_privilege for the runtime roles and PUBLIC, on the stack's objects."""
    main_db, logs_db = project.databases
    found: dict[str, dict[str, tuple[str, ...]]] = {}
    for key in PROMISED_MATRIX:
        role = "public" if key == "public" else f"{project.prefix}_{key}"
        found[key] = {}
        for database_key, database, tables in (
            ("main", main_db, ("user_invitations",)),
            ("logs", logs_db, ("system_logs", "llm_logs")),
        ):
            with server.connect(database) as connection:
                found[key][database_key] = held(connection, "has_database_privilege", role, database, DATABASE_VERBS)
                for table in tables:
                    found[key][f"{database_key}.{table}"] = held(
                        connection, "has_table_privilege", role, f"public.{table}", TABLE_VERBS
                    )
    return found


def held(connection: object, function: str, role: str, target: str, verbs: tuple[str, ...]) -> tuple[str, ...]:
    query = f"SELECT {function}(%s, %s, %s)"
    return tuple(verb for verb in verbs if connection.execute(query, (role, target, verb)).fetchone()[0])  # type: ignore[attr-defined]


@contextmanager
def statements_logged(server: Server) -> Iterator[list[str]]:
    """Every statement the server runs meanwhile (log_statement = 'all'), as the server logged it."""
    log = embedded.log_file()
    start = log.stat().st_size
    with server.connect() as admin:
        admin.execute("ALTER SYSTEM SET log_statement = 'all'")
        admin.execute("SELECT pg_reload_conf()")
    logged: list[str] = []
    try:
        yield logged
    finally:
        with server.connect() as admin:
            admin.execute("ALTER SYSTEM RESET log_statement")
            admin.execute("SELECT pg_reload_conf()")
        logged.append(log.read_bytes()[start:].decode(errors="replace"))


def login_passwords(project: ProjectStack) -> dict[str, str]:
    """Each login role's password, from the stack's secret outputs (the URLs the roles connect with)."""
    outputs = project.pulumi("stack", "output", "--json", "--show-secrets")
    assert outputs.returncode == 0, outputs.stderr
    urls = json.loads(outputs.stdout)["connection_urls"]
    return {key: str(urlparse(url).password) for key, url in urls.items()}
