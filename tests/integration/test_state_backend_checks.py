"""What the scripts check and print about the state backend, on the real server and the real engine.

- The backend check (state_backend.check) demands every privilege the engine uses on its schema and table.
- No message that names the backend shows a password that its URL carries.
- A lock that another machine's deploy holds is left where it is, on the file and the postgres:// backend.
Each is called directly (the check, the turn, the recovery), at the cheapest level that reaches the server
or the engine; the full scripts on the shared backend are in test_shared_backend.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from psycopg import sql
from pulumi import automation as auto

from fixtures.cluster import Server
from fixtures.programs import ENGINE_PROJECT, open_engine_stack
from fixtures.shared_backend import STATE_DATABASE, STATE_ROLE, SharedBackend
from ops.deploy import driver, recovery, state_backend
from ops.deploy.state_backend import TURN_NAMESPACE, StateBackend, turn_key
from ops.errors import ExitCode, UserError
from ops.toolchain import pinned

TABLE = sql.Identifier(STATE_ROLE, "pulumi_state")
ROLE = sql.Identifier(STATE_ROLE)


@pytest.fixture
def engine_table(server: Server, shared_backend: SharedBackend, tmp_path: Path) -> SharedBackend:
    """The backend with its table, made by the engine as it opens the backend (`pulumi whoami`, which reads
    no stack: `stack ls --all` reads every stack's checkpoint, minutes on a backend a whole run has filled)."""
    listed = subprocess.run(
        [str(pinned.cli_path()), "whoami", "--non-interactive"],
        cwd=tmp_path,
        env=pinned.pulumi_env() | shared_backend.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    return shared_backend


def as_admin(server: Server, statement: str) -> None:
    with server.connect(STATE_DATABASE) as admin:
        admin.execute(sql.SQL(statement).format(table=TABLE, role=ROLE))


# Each privilege the engine uses, taken away and given back by the server's admin, and how the check names it.
MISSING_PRIVILEGES = {
    "SELECT on the table": ("REVOKE SELECT ON {table} FROM {role}", "GRANT SELECT ON {table} TO {role}", "SELECT"),
    "INSERT on the table": ("REVOKE INSERT ON {table} FROM {role}", "GRANT INSERT ON {table} TO {role}", "INSERT"),
    "UPDATE on the table": ("REVOKE UPDATE ON {table} FROM {role}", "GRANT UPDATE ON {table} TO {role}", "UPDATE"),
    "DELETE on the table": ("REVOKE DELETE ON {table} FROM {role}", "GRANT DELETE ON {table} TO {role}", "DELETE"),
    "CREATE on the schema": (
        "REVOKE CREATE ON SCHEMA {role} FROM {role}",
        "GRANT CREATE ON SCHEMA {role} TO {role}",
        "CREATE",
    ),
    "USAGE on the schema": (
        "REVOKE USAGE ON SCHEMA {role} FROM {role}",
        "GRANT USAGE ON SCHEMA {role} TO {role}",
        "USAGE",
    ),
    # Its CREATE INDEX IF NOT EXISTS at every start needs the table's owner, whatever else is granted.
    "ownership of the table": (
        "ALTER TABLE {table} OWNER TO CURRENT_USER; GRANT ALL ON {table} TO {role}",
        "ALTER TABLE {table} OWNER TO {role}",
        "does not own",
    ),
}


@pytest.mark.shared_backend
@pytest.mark.parametrize("missing", MISSING_PRIVILEGES)
def test_the_backend_check_refuses_a_role_missing_a_privilege_the_engine_uses(
    server: Server, engine_table: SharedBackend, missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    take, give_back, named = MISSING_PRIVILEGES[missing]
    monkeypatch.setenv("PGPASSWORD", engine_table.password)
    backend = StateBackend(engine_table.url)
    state_backend.check(backend)  # the backend as init made it, and the engine its table: it can hold state
    as_admin(server, take)
    try:
        with pytest.raises(UserError) as refused:
            state_backend.check(backend)
    finally:
        as_admin(server, give_back)
    assert refused.value.exit_code == ExitCode.BAD_INPUT, refused.value
    assert named in str(refused.value) and "cannot hold state" in str(refused.value), refused.value
    state_backend.check(backend)  # given back, it passes again


def with_password(backend: SharedBackend, password: str | None = None) -> StateBackend:
    """The backend's URL carrying the role's password, as Pulumi's own docs write it."""
    return StateBackend(backend.url.replace(f"{STATE_ROLE}@", f"{STATE_ROLE}:{password or backend.password}@", 1))


def turn_held_elsewhere(server: Server, backend: StateBackend, password: str) -> Callable[[], None]:
    """take_turn while another deploy's session (of the state role, as every deploy's) holds the stack's turn."""

    def attempt() -> None:
        with server.connect(STATE_DATABASE, user=STATE_ROLE, password=password) as holder:
            holder.execute(
                "SELECT set_config('application_name', 'headhunter deploy held pid 4242 by ci@runner-7', false)"
            )
            holder.execute("SELECT pg_advisory_lock(%s::int, %s::int)", (TURN_NAMESPACE, turn_key("held")))
            state_backend.take_turn(backend, "held", "deploy")

    return attempt


def stack_not_found(tmp_path: Path, backend: StateBackend, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Opening a stack the backend does not hold (the engine is asked, through the Automation API)."""

    def attempt() -> None:
        monkeypatch.setenv("PULUMI_BACKEND_URL", backend.url)
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-only")
        (tmp_path / "Pulumi.yaml").write_text(f"name: {ENGINE_PROJECT}\nruntime: python\n")
        driver.open_stack(driver.StackTarget("never-made", lambda: None, tmp_path, ENGINE_PROJECT))

    return attempt


@pytest.mark.shared_backend
@pytest.mark.parametrize(
    "path", ["login refused", "table not writable", "turn held by another deploy", "no such stack"]
)
def test_no_message_about_the_backend_shows_the_password_its_url_carries(
    server: Server, engine_table: SharedBackend, path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    backend = with_password(engine_table)
    attempts: dict[str, Callable[[], None]] = {
        "login refused": lambda: state_backend.check(with_password(engine_table, "x" + engine_table.password)),
        "table not writable": lambda: state_backend.check(backend),
        "turn held by another deploy": turn_held_elsewhere(server, backend, engine_table.password),
        "no such stack": stack_not_found(tmp_path, backend, monkeypatch),
    }
    if path == "table not writable":
        as_admin(server, MISSING_PRIVILEGES["DELETE on the table"][0])
    try:
        with pytest.raises(UserError) as refused:
            attempts[path]()
    finally:
        if path == "table not writable":
            as_admin(server, MISSING_PRIVILEGES["DELETE on the table"][1])
    message = str(refused.value)
    assert engine_table.password not in message, message
    assert f"postgres://{STATE_ROLE}:****@" in message, f"the message names the backend: {message}"


# A lock as Pulumi writes one (backend/diy/lock.go), by a deploy on another machine.
OTHER_MACHINE = "ci-runner-7"


def lock_content(pid: int) -> bytes:
    content = {"pid": pid, "username": "ci", "hostname": OTHER_MACHINE, "timestamp": "2026-12-07T20:00:00Z"}
    return json.dumps(content).encode()


def finished_pid() -> int:
    """The pid of a process that has exited here: a deploy that removed locks by pid alone would take it for dead."""
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


@pytest.fixture
def engine_stack_on(
    tmp_path: Path, state_backend: SharedBackend | None, monkeypatch: pytest.MonkeyPatch, engine_workspace: Path
) -> Iterator[tuple[auto.Stack, SharedBackend | None]]:
    if state_backend is not None:
        for key, value in state_backend.env().items():
            monkeypatch.setenv(key, value)
    name = f"foreign-lock-{uuid.uuid4().hex[:8]}"
    stack = open_engine_stack(engine_workspace, lambda: None, name)
    yield stack, state_backend
    stack.workspace.remove_stack(name, force=True)


class ForeignLock:
    """The lock file or row of another machine's deploy on the stack, beside its checkpoint."""

    def __init__(self, server: Server, workspace: Path, stack: str, backend: SharedBackend | None) -> None:
        self.server, self.backend = server, backend
        relative = f".pulumi/locks/organization/{ENGINE_PROJECT}/{stack}/{uuid.uuid4()}.json"
        self.path = workspace / "state" / relative
        self.key = f"{STATE_DATABASE}/{relative}"

    def write(self, content: bytes) -> None:
        if self.backend is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(content)
            return
        data = json.dumps({"data": base64.b64encode(content).decode()})
        with self.server.connect(STATE_DATABASE) as admin:
            admin.execute(sql.SQL("INSERT INTO {} (key, data) VALUES (%s, %s)").format(TABLE), (self.key, data))

    def exists(self) -> bool:
        if self.backend is None:
            return self.path.exists()
        with self.server.connect(STATE_DATABASE) as admin:
            found = admin.execute(sql.SQL("SELECT 1 FROM {} WHERE key = %s").format(TABLE), (self.key,)).fetchone()
        return found is not None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        if self.backend is not None:
            with self.server.connect(STATE_DATABASE) as admin:
                admin.execute(sql.SQL("DELETE FROM {} WHERE key = %s").format(TABLE), (self.key,))


@pytest.mark.engine
def test_a_lock_of_another_machines_deploy_is_named_and_left_alone(
    server: Server, engine_workspace: Path, engine_stack_on: tuple[auto.Stack, SharedBackend | None]
) -> None:
    stack, backend = engine_stack_on
    lock = ForeignLock(server, engine_workspace, stack.name, backend)
    lock.write(lock_content(finished_pid()))
    try:
        with pytest.raises(UserError) as refused:
            recovery.recovering(stack, lambda: stack.up(color="never"))
        assert lock.exists(), "the other machine's lock was removed"
    finally:
        lock.remove()
    assert refused.value.exit_code == ExitCode.STACK_LOCKED, refused.value
    assert f"ci@{OTHER_MACHINE}" in str(refused.value), refused.value


@pytest.mark.shared_backend
def test_a_turn_held_by_a_session_of_another_role_is_named_as_such(
    server: Server, shared_backend: SharedBackend
) -> None:
    """pg_stat_activity hides the details of another role's session from the state role: no crash, exit 6."""
    backend = with_password(shared_backend)
    with server.connect(STATE_DATABASE) as admin:
        admin.execute("SELECT pg_advisory_lock(%s::int, %s::int)", (TURN_NAMESPACE, turn_key("held-by-admin")))
        with pytest.raises(UserError) as refused:
            state_backend.take_turn(backend, "held-by-admin", "deploy")
    assert refused.value.exit_code == ExitCode.STACK_LOCKED, refused.value
    assert "locked by another deploy (a session of another role" in str(refused.value), refused.value
