"""A team's shared state: stacks kept in Pulumi's postgres:// backend, made by `scripts/state-backend init`.

The backend's database and role live on the tests' server (fixtures/shared_backend.py). Every
script and plain `pulumi` run the real engine and provider against it; two clones deploy one
stack at once; a bad backend URL stops a deploy before anything changes. The killed deploys on
this backend are in tests/faults/test_killed_provisioning.py.
"""

from __future__ import annotations

import dataclasses
import getpass
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from fixtures.cluster import Server
from fixtures.fault_log import SeenFunction
from fixtures.project_stack import ProjectStack, cleanup, leftover_objects, on_backend, project_stack
from fixtures.shared_backend import STATE_DATABASE, STATE_ROLE, SharedBackend, init_command
from ops.errors import ExitCode

pytestmark = [pytest.mark.engine, pytest.mark.provider, pytest.mark.shared_backend]


@pytest.fixture
def shared(tmp_path: Path, server: Server, shared_backend: SharedBackend) -> Iterator[ProjectStack]:
    project = on_backend(project_stack(tmp_path, "shared", "shared"), shared_backend)
    cleanup(project, server)
    yield project
    cleanup(project, server)


def state_keys(server: Server, stack: str) -> list[str]:
    """The backend table's row of the stack's checkpoint (`<database>/.pulumi/stacks/<project>/<stack>.json`)."""
    table = sql.Identifier(STATE_ROLE, "pulumi_state")
    with server.connect(STATE_DATABASE) as connection:
        if connection.execute("SELECT to_regclass(%s)", (f"{STATE_ROLE}.pulumi_state",)).fetchone() == (None,):
            return []  # the engine makes the table the first time it opens the backend
        query = sql.SQL("SELECT key FROM {} WHERE key = %s").format(table)
        rows = connection.execute(query, (checkpoint_key(stack),)).fetchall()
    return [key for (key,) in rows]


def checkpoint_key(stack: str) -> str:
    return f"{STATE_DATABASE}/.pulumi/stacks/headhunter-db/{stack}.json"


def test_the_state_role_has_only_what_the_backend_needs(server: Server, shared_backend: SharedBackend) -> None:
    with server.connect() as admin:
        attributes = admin.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit"
            " FROM pg_roles WHERE rolname = %s",
            (STATE_ROLE,),
        ).fetchone()
        connect_grantees = admin.execute(
            "SELECT coalesce(pg_get_userbyid(NULLIF(a.grantee, 0)), 'PUBLIC') FROM pg_database d,"
            " aclexplode(d.datacl) a WHERE d.datname = %s AND a.privilege_type = 'CONNECT' ORDER BY 1",
            (STATE_DATABASE,),
        ).fetchall()
        databases_owned = admin.execute(
            "SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = %s", (STATE_ROLE,)
        ).fetchall()
    assert attributes == (True, False, False, False, False, False, False)
    assert (STATE_ROLE,) in connect_grantees and ("PUBLIC",) not in connect_grantees
    assert databases_owned == []
    with server.connect(STATE_DATABASE) as connection:
        schemas = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE pg_get_userbyid(nspowner) = %s", (STATE_ROLE,)
        ).fetchall()
        public_create = connection.execute("SELECT has_schema_privilege('public', 'public', 'CREATE')").fetchone()
    assert schemas == [(STATE_ROLE,)] and public_create == (False,)

    again = init_command(shared_backend, server.connection.password)
    assert again.returncode == ExitCode.OK and f"updated the role {STATE_ROLE}" in again.stderr, again.stderr
    checked = init_command(shared_backend, "", "check")
    assert checked.returncode == ExitCode.OK and "can hold state" in checked.stdout, checked.stdout + checked.stderr
    assert shared_backend.password not in again.stdout + again.stderr + checked.stdout + checked.stderr


def test_every_script_and_plain_pulumi_work_on_the_shared_backend(
    server: Server, shared: ProjectStack, shared_backend: SharedBackend
) -> None:
    outputs = []

    def ran(result: object) -> None:
        outputs.append(str(getattr(result, "stdout", "")) + str(getattr(result, "stderr", "")))

    up = shared.script("ops.commands.up", shared.stack)
    ran(up)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    assert state_keys(server, shared.stack) == [checkpoint_key(shared.stack)]
    assert list((shared.folder / "state").iterdir()) == [], "nothing in the file backend"

    for module, args, expected in (
        ("ops.commands.verify", (), "0 differ"),
        ("ops.commands.deploy", (), "deploy: no changes"),
        ("ops.commands.migrate", ("all", "current"), "(head "),
    ):
        result = shared.script(module, shared.stack, *args)
        ran(result)
        assert result.returncode == ExitCode.OK and expected in result.stdout, result.stdout[-3000:] + result.stderr
    at_heads = [line.split(": ", 1)[1].split(" (head ") for line in result.stdout.splitlines() if "(head " in line]
    assert len(at_heads) == 2 and all(current == head.rstrip(")") for current, head in at_heads), result.stdout
    for plain in (("preview", "--expect-no-changes"), ("refresh", "--yes", "--expect-no-changes")):
        result = shared.pulumi(*plain)
        ran(result)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr

    destroyed = shared.script("ops.commands.destroy", shared.stack, "--yes")
    ran(destroyed)
    assert destroyed.returncode == ExitCode.OK, destroyed.stdout[-3000:] + destroyed.stderr
    assert leftover_objects(shared, server) == []
    assert [output for output in outputs if shared_backend.password in output] == []


@pytest.mark.fault(
    what="two `scripts/deploy` of one stack started together from two clones on the shared backend",
    recovery="nothing to recover: one deploys, the other stops at once naming the deploy that holds the stack's "
    "turn; the next deploy finds nothing to change",
)
def test_two_deploys_from_two_clones_at_once_one_deploys_and_the_other_names_it(
    tmp_path: Path, server: Server, shared_backend: SharedBackend, fault_seen: SeenFunction
) -> None:
    for name in ("clone-a", "clone-b"):
        (tmp_path / name).mkdir()
    clones = [
        on_backend(project_stack(tmp_path / name, "together", "together"), shared_backend)
        for name in ("clone-a", "clone-b")
    ]
    cleanup(clones[0], server)
    try:
        created = clones[0].pulumi("stack", "init")
        assert created.returncode == 0, created.stderr
        started = [clone.start("ops.commands.deploy", clone.stack) for clone in clones]
        outputs = [deploy.communicate(timeout=600) for deploy in started]
        finished = [(deploy.returncode, out, err) for deploy, (out, err) in zip(started, outputs, strict=True)]
        codes = sorted(code for code, _, _ in finished)
        assert codes == [ExitCode.OK, ExitCode.STACK_LOCKED], [out[-2000:] + err[-2000:] for _, out, err in finished]
        refused = next(out + err for code, out, err in finished if code == ExitCode.STACK_LOCKED)
        holder = next(deploy.pid for deploy, (code, _, _) in zip(started, finished, strict=True) if code == 0)
        assert f"headhunter deploy together pid {holder} by {getpass.getuser()}@{socket.gethostname()}" in refused
        fault_seen("the second scripts/deploy", ExitCode.STACK_LOCKED, refused, "is locked by another deploy")

        for clone in clones:  # both clones see one state: each finds nothing to change
            preview = clone.pulumi("preview", "--expect-no-changes")
            assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr
        again = clones[1].script("ops.commands.deploy", clones[1].stack)
        assert again.returncode == ExitCode.OK and "deploy: no changes" in again.stdout, again.stdout[-3000:]
    finally:
        cleanup(clones[0], server)


def unreachable(backend: SharedBackend) -> SharedBackend:
    """The backend's URL with the password in it (as Pulumi's own docs write it) and a port nothing listens on."""
    host = backend.url.split("@", 1)[1].split("/", 1)[0]
    url = backend.url.replace(f"{STATE_ROLE}@{host}", f"{STATE_ROLE}:{backend.password}@127.0.0.1:1")
    return dataclasses.replace(backend, url=url)


def refused(backend: SharedBackend) -> SharedBackend:
    return dataclasses.replace(backend, password="not-the-password")


@pytest.mark.fault(
    what="a bad shared-backend URL: nothing listening there, a wrong password, a role that may not create the "
    "backend's table",
    recovery="correct PULUMI_BACKEND_URL or PGPASSWORD, or set the backend up with `scripts/state-backend init`; "
    "nothing was deployed",
)
@pytest.mark.parametrize("problem", ["unreachable", "refused", "not writable"])
def test_a_bad_state_backend_stops_before_anything_is_deployed(
    tmp_path: Path, server: Server, shared_backend: SharedBackend, problem: str, fault_seen: SeenFunction
) -> None:
    if problem == "not writable":
        with server.connect(STATE_DATABASE) as admin:
            admin.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(*[sql.Identifier(STATE_ROLE)] * 2))
        bad = shared_backend
    else:
        bad = unreachable(shared_backend) if problem == "unreachable" else refused(shared_backend)
    project = on_backend(project_stack(tmp_path, "badstate", "badstate"), bad)
    try:
        up = project.script("ops.commands.up", project.stack)
    finally:
        if problem == "not writable":
            with server.connect(STATE_DATABASE) as admin:
                admin.execute(sql.SQL("GRANT CREATE ON SCHEMA {} TO {}").format(*[sql.Identifier(STATE_ROLE)] * 2))
    expected = {"unreachable": ExitCode.SERVER_UNREACHABLE, "refused": ExitCode.SERVER_UNREACHABLE}
    assert up.returncode == expected.get(problem, ExitCode.BAD_INPUT), up.stdout[-3000:] + up.stderr[-3000:]
    says = {"unreachable": "cannot open the state backend", "refused": "password authentication failed"}
    fault_seen("scripts/up", up.returncode, up.stderr, says.get(problem, "cannot hold state"))
    assert shared_backend.password not in up.stdout + up.stderr, "the password in the URL is never printed"
    assert f"postgres://{STATE_ROLE}" in up.stderr, "the message names the backend"
    assert leftover_objects(project, server) == []
    assert state_keys(server, project.stack) == []
