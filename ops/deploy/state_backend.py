"""Where a stack's state lives: the checkout's file backend (the default) or Pulumi's postgres:// backend.

The postgres:// backend (pkg/backend/diy/postgres in the pulumi repository) keeps every stack's
checkpoint, history and lock as rows of one table, so a team's CD runners and laptops share it.
Two things it does not do, which this module adds before the engine opens it:

- Pulumi prints the backend URL, password included, when it cannot open it ("unable to open state
  database ..."): the backend is checked here first (reachable, the login accepted, its table
  writable), and every message names the URL with its password hidden.
- Its stack lock is written and then read back, so two deploys that lock at the same instant can
  both fail. A deploy first takes the stack's turn: a session advisory lock in the backend's
  database, which the server releases by itself when the deploy's process dies.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import zlib
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ops.errors import ExitCode, UserError

DEFAULT_TABLE = "pulumi_state"  # the backend's own default (its `table` URL parameter)
TURN_NAMESPACE = 0x6868  # first key of the turns' advisory locks ("hh"); the second is the stack's
CONNECT_TIMEOUT_S = 10
# The sessions that hold turns name their deploy in pg_stat_activity (63 characters at most).
TURN_APPLICATION = "headhunter {command} {stack} pid {pid} by {user}@{host}"


@dataclass(frozen=True)
class StateBackend:
    url: str

    @property
    def is_postgres(self) -> bool:
        return urlsplit(self.url).scheme in ("postgres", "postgresql")

    @property
    def is_file(self) -> bool:
        return self.url.startswith("file://")

    @property
    def shown(self) -> str:
        """The URL as messages print it: the password replaced by ****."""
        if "://" in self.url:
            return hide_passwords(self.url)
        # Not a URL (a mistyped `postgres//...`): anything between a `:` and the last `@` may be a password.
        return hide_passwords(re.sub(r":\S*@", ":****@", self.url))

    @property
    def table(self) -> str:
        return dict(parse_qsl(urlsplit(self.url).query)).get("table") or DEFAULT_TABLE

    def conninfo(self) -> str:
        """The URL as libpq reads it: without the backend's own `table` parameter."""
        parts = urlsplit(self.url)
        query = [(key, value) for key, value in parse_qsl(parts.query) if key != "table"]
        return urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query)))


# A URL's user information, `//ROLE:PASSWORD@`, with or without its scheme (a mistyped `postgres//` too).
# The password runs to the last @ before the host, as libpq and Go read a password holding a raw @.
URL_PASSWORD = re.compile(r"(//[^:/?#@\s\"']*:)[^/?#\s\"']*@")
# A password given as a parameter: the URL's `?password=` (libpq and lib/pq read it), `sslpassword=` too. It
# ends at the next parameter or the URL's end, where the engine may go on with `: created by ...`.
PASSWORD_PARAMETER = re.compile(r"(password=)[^&\s\"']*?(?=[&\s\"']|:\s|:?$)", re.IGNORECASE)
URL_FORMS = (
    "file://FOLDER, postgres://ROLE@HOST:PORT/DATABASE?sslmode=... (README: Shared state), or unset for the "
    "checkout's own file backend"
)


def hide_passwords(text: str) -> str:
    """Every URL password in `text` replaced by ****: in its user information and as a `password=` parameter."""
    return PASSWORD_PARAMETER.sub(r"\1****", URL_PASSWORD.sub(r"\1****@", text))


def check_url(backend: StateBackend) -> None:
    """A backend URL the engine can read, or exit 2 naming the variable and the forms it takes.

    Pulumi reads a value without `://` (a mistyped `postgres//...`), an empty one, or one of a scheme
    it has no backend for (`postgresql://`, which libpq takes) as Pulumi Cloud's address, and then
    fails with "PULUMI_ACCESS_TOKEN must be set".
    """
    if "://" not in backend.url:
        raise UserError(
            f"PULUMI_BACKEND_URL is {backend.shown!r}, which is not a backend URL (no `://`): set it to "
            f"{URL_FORMS}; nothing was changed.",
            ExitCode.BAD_INPUT,
        )
    if urlsplit(backend.url).scheme == "postgresql":
        raise UserError(
            f"PULUMI_BACKEND_URL is {backend.shown}: Pulumi's PostgreSQL backend is named postgres://, not "
            "postgresql:// (the engine takes any other scheme for Pulumi Cloud): write postgres://ROLE@HOST:PORT/"
            "DATABASE?sslmode=...; nothing was changed.",
            ExitCode.BAD_INPUT,
        )


def error_reason(error: Exception) -> str:
    """libpq's message on one line (it spreads one over several), with any URL password hidden."""
    return hide_passwords(" ".join(line.strip() for line in str(error).strip().splitlines()))


def connect(backend: StateBackend) -> psycopg.Connection:
    """A session of the backend's role, or the reason it cannot be had, named with the fix."""
    try:
        return psycopg.connect(backend.conninfo(), connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    except psycopg.OperationalError as error:
        reason = error_reason(error)
        raise UserError(
            f"cannot open the state backend {backend.shown} ({reason}): check the host, port, role and password "
            "of PULUMI_BACKEND_URL (the password in the URL or in PGPASSWORD), and that the server runs; "
            "nothing was changed.",
            ExitCode.SERVER_UNREACHABLE,
        ) from None


def check(backend: StateBackend) -> None:
    """Before the engine opens the backend: a URL it reads; a postgres:// one reachable, its table writable."""
    check_url(backend)
    if not backend.is_postgres:
        return
    with connect(backend) as session:
        if problem := write_problem(session, backend.table):
            raise UserError(
                f"the state backend {backend.shown} cannot hold state: {problem}. Set it up with "
                "`scripts/state-backend init` (README: Shared state); nothing was changed.",
                ExitCode.BAD_INPUT,
            )


# What the engine does with its table's rows: reads a checkpoint, writes a new one, rewrites it after each
# step, and deletes its lock at the end (without DELETE every lock stays behind, for `pulumi cancel`).
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


def write_problem(session: psycopg.Connection, table: str) -> str | None:
    """Why the backend's role cannot keep its table (the engine creates it, then reads and writes rows)."""
    row = session.execute(
        "SELECT current_user, current_setting('transaction_read_only') = 'on', current_schema()"
    ).fetchone()
    assert row is not None
    role, read_only, schema = row
    if read_only:
        return "the server accepts only reads (a standby?): point the URL at the primary"
    if schema is None:
        return f"{role} has no schema to create the table {table} in (its search_path names none where it holds USAGE)"
    # The engine runs CREATE TABLE IF NOT EXISTS at every start, which needs CREATE even when the table exists.
    if session.execute("SELECT has_schema_privilege(%s, 'CREATE')", (schema,)).fetchone() != (True,):
        return f"{role} may not create tables in the schema {schema} (it lacks CREATE there)"
    return table_problem(session, role, schema, table)


def table_problem(session: psycopg.Connection, role: str, schema: str, table: str) -> str | None:
    """What the role lacks on a table the engine (or someone) has made: ownership and the row privileges."""
    qualified = sql.Identifier(schema, table).as_string(session)
    found = session.execute(
        "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(%s)", (qualified,)
    ).fetchone()
    if found is None:
        return None  # the engine makes it, owned by the role
    if found != (True,):
        # The engine also runs CREATE INDEX IF NOT EXISTS on the table at every start: only its owner may.
        return f"{role} does not own the table {qualified}, which the engine alters at every start"
    # has_table_privilege with a list is true when any one is held: each is asked on its own.
    missing = [
        right
        for right in TABLE_PRIVILEGES
        if session.execute("SELECT has_table_privilege(%s, %s)", (qualified, right)).fetchone() != (True,)
    ]
    if missing:
        return f"{role} lacks {', '.join(missing)} on the table {schema}.{table}"
    return None


# The turn of the deploy running in this process, held until the process exits (the server then ends it).
_turns: dict[str, psycopg.Connection] = {}


def turn_key(stack: str) -> int:
    """The second key of a stack's turn: a CRC of its name, as a signed 32-bit integer.

    Stacks of one name in two projects of one backend share a turn: they take turns, no harm done.
    """
    value = zlib.crc32(stack.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def take_turn(backend: StateBackend, stack: str, command: str) -> None:
    """Hold the stack's turn for the rest of this process, or stop with exit 6 naming the deploy that has it."""
    if not backend.is_postgres or stack in _turns:
        return
    name = TURN_APPLICATION.format(
        command=command, stack=stack, user=getpass.getuser(), host=socket.gethostname(), pid=os.getpid()
    )
    session = connect(backend)
    session.execute("SELECT set_config('application_name', %s, false)", (name[:63],))
    key = (TURN_NAMESPACE, turn_key(stack))
    if session.execute("SELECT pg_try_advisory_lock(%s::int, %s::int)", key).fetchone() != (True,):
        holder = turn_holder(session, key)
        session.close()
        raise UserError(
            f"stack {stack!r} is locked by another deploy ({holder}, on the state backend {backend.shown}): wait "
            "for it to finish and deploy again.",
            ExitCode.STACK_LOCKED,
        )
    _turns[stack] = session


def turn_holder(session: psycopg.Connection, key: tuple[int, int]) -> str:
    row = session.execute(
        "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database"
        " WHERE datname = current_database()) AND l.classid::int = %s AND l.objid::int = %s",
        key,
    ).fetchone()
    if row is None:
        return "a deploy that has just finished"
    application, started = row
    if started is None:  # pg_stat_activity shows a session of another role to its members and superusers only
        return "a session of another role"
    return f"{application or 'a session of the backend role'}, since {started:%Y-%m-%d %H:%M:%S %Z}"
