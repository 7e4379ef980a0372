"""scripts/adopt on the review's deployment, through the real engine and provider: plan, apply, verify.

The legacy fixture (fixtures/legacy.py) is built under a stack's names; the adoption must leave
catalogs and privileges that the verification suite and the promised privilege matrix accept as a
fresh deploy's, with every legacy row in the logs database once, and nothing left to do afterwards.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from psycopg import sql

from fixtures import observed
from fixtures.cluster import Server
from fixtures.fault_log import SeenFunction
from fixtures.legacy import LegacyDatabases, build_legacy, run_as_broad_role
from fixtures.project_stack import ProjectStack, cleanup, on_backend, project_stack
from fixtures.shared_backend import SharedBackend
from model.names import DatabaseKey
from ops.adoption.move import RETIRED_SCHEMA
from ops.errors import ExitCode
from ops.paths import REPO_ROOT

pytestmark = [pytest.mark.engine, pytest.mark.provider]
CONTENT = "ROW(created_at, level, component, message, error_type, stack_trace, request_id, trace_id, user_id, metadata)"


@contextmanager
def legacy_under_a_stack(
    tmp_path: Path, server: Server, legacy_role: str | None, backend: SharedBackend | None = None
) -> Iterator[tuple[ProjectStack, LegacyDatabases]]:
    """The review's deployment under a stack's names; the stack's legacyRoles gives its broad role `legacy_role`
    (None: legacyRoles does not name it, so it is kept, as by default)."""
    prefix = f"t{secrets.token_hex(3)}"
    legacy_roles = {prefix: legacy_role} if legacy_role else {}
    project = on_backend(project_stack(tmp_path, "adopt", prefix, legacyRoles=legacy_roles), backend)
    legacy = build_legacy(server, prefix)
    try:
        yield project, legacy
    finally:
        cleanup(project, server)
        legacy.drop()


@pytest.fixture
def adopted(
    tmp_path: Path, server: Server, state_backend: SharedBackend | None
) -> Iterator[tuple[ProjectStack, LegacyDatabases]]:
    with legacy_under_a_stack(tmp_path, server, "drop", state_backend) as stack_and_legacy:
        yield stack_and_legacy


def system_logs(server: Server, database: str, schema: str = "public") -> Counter[str]:
    query = sql.SQL("SELECT {}::text FROM {}").format(sql.SQL(CONTENT), sql.Identifier(schema, "system_logs"))
    with server.connect(database) as connection:
        return Counter(row[0] for row in connection.execute(query).fetchall())


@pytest.mark.matrix
def test_the_reviews_deployment_is_adopted_into_what_a_fresh_deploy_makes_and_a_second_apply_changes_nothing(
    server: Server, adopted: tuple[ProjectStack, LegacyDatabases]
) -> None:
    project, legacy = adopted
    main, logs = legacy.databases[DatabaseKey.MAIN], legacy.databases[DatabaseKey.LOGS]
    rows_before = system_logs(server, logs) + system_logs(server, main)

    plan = project.script("ops.commands.adopt", project.stack)
    assert plan.returncode == ExitCode.VERIFY_FAILED, plan.stdout + plan.stderr
    assert "will stamp alembic_version_logs at logs_0002" in plan.stdout
    assert f"will drop {legacy.broad_role} (legacyRoles)" in plan.stdout

    applied = project.script("ops.commands.adopt", project.stack, "--apply")
    assert applied.returncode == ExitCode.OK, applied.stdout[-4000:] + applied.stderr[-3000:]
    assert "4 imported" in applied.stdout and "moved 1,000 rows" in applied.stdout, applied.stdout[-4000:]

    verified = project.script("ops.commands.verify", project.stack)
    assert verified.returncode == ExitCode.OK, differences(verified.stdout)
    assert observed.privilege_matrix(server, project) == observed.PROMISED_MATRIX
    assert system_logs(server, logs) == rows_before, "every legacy row of both databases, each once"
    with server.connect(logs) as connection:
        checks = connection.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'system_logs'::regclass AND contype = 'c' ORDER BY 1"
        ).fetchall()
    assert checks == [("ck_system_logs_level",), ("ck_system_logs_trace_id",)], "the revision's names"
    with server.connect(main) as connection:
        retired_owner = connection.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)",
            (f"{RETIRED_SCHEMA}.system_logs",),
        ).fetchone()
    assert retired_owner == (f"{legacy.prefix}_main_owner",), "kept, and handed over before its role was dropped"
    with server.connect() as connection:
        assert connection.execute("SELECT FROM pg_roles WHERE rolname = %s", (legacy.broad_role,)).fetchone() is None

    again = project.script("ops.commands.adopt", project.stack, "--apply")
    assert again.returncode == ExitCode.OK and "no changes needed" in again.stdout, again.stdout + again.stderr
    up = project.script("ops.commands.up", project.stack)
    assert up.returncode == ExitCode.OK and "no changes" in up.stdout, up.stdout[-3000:] + up.stderr[-2000:]
    preview = project.pulumi("preview", "--expect-no-changes")
    assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr


@pytest.mark.fault(
    what="`scripts/adopt --apply` on a deployment whose table matches no revision of its tree (a column made "
    "nullable by hand)",
    recovery="refused before anything changes, each difference named against the closest revision; fix the table "
    "(or write the revision that makes it so) and plan again",
)
def test_a_table_that_matches_no_revision_is_refused_by_name_and_nothing_is_changed(
    server: Server, adopted: tuple[ProjectStack, LegacyDatabases], fault_seen: SeenFunction
) -> None:
    project, legacy = adopted
    main = legacy.databases[DatabaseKey.MAIN]
    run_as_broad_role(legacy, main, "ALTER TABLE user_invitations ALTER COLUMN role DROP NOT NULL")
    with server.connect() as connection:
        before = connection.execute("SELECT datname, datdba FROM pg_database ORDER BY 1").fetchall()
    applied = project.script("ops.commands.adopt", project.stack, "--apply")
    assert applied.returncode == ExitCode.BAD_INPUT, applied.stdout + applied.stderr
    assert "REFUSED" in applied.stdout and "column role is text NULL, the revision has text NOT NULL" in applied.stdout
    fault_seen("scripts/adopt --apply", applied.returncode, applied.stdout, "REFUSED")
    with server.connect() as connection:
        assert connection.execute("SELECT datname, datdba FROM pg_database ORDER BY 1").fetchall() == before
    assert system_logs(server, main), "the misplaced rows stay where they were"


@pytest.fixture
def adopted_keeping_its_role(tmp_path: Path, server: Server) -> Iterator[tuple[ProjectStack, LegacyDatabases]]:
    with legacy_under_a_stack(tmp_path, server, None) as stack_and_legacy:
        yield stack_and_legacy


@pytest.mark.fault(
    what="`scripts/adopt --apply` is killed (SIGKILL of its process group) as its deploy starts: rows moved, "
    "objects handed over, trees stamped, nothing in the stack yet",
    recovery="the next `--apply` finds those steps done, deploys with the databases imported, and hands the retired "
    "tables to the owner role, so the legacy role it keeps reaches nothing; the stack verifies",
)
def test_an_apply_killed_as_its_deploy_starts_is_finished_by_the_next_apply(
    server: Server, adopted_keeping_its_role: tuple[ProjectStack, LegacyDatabases], fault_seen: SeenFunction
) -> None:
    """The broad role is kept (legacyRoles does not name it), and verify right after must still pass: it owned the
    misplaced table and alembic_version, which the apply retires rather than drops."""
    project, legacy = adopted_keeping_its_role
    main, logs = legacy.databases[DatabaseKey.MAIN], legacy.databases[DatabaseKey.LOGS]
    rows_before = system_logs(server, logs) + system_logs(server, main)
    apply = subprocess.Popen(
        [sys.executable, "-m", "ops.commands.adopt", project.stack, "--apply"],
        cwd=REPO_ROOT,
        env=project.env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert apply.stdout is not None
    for line in apply.stdout:
        if line.startswith("deploying:"):  # rows moved, objects handed over, trees stamped; Pulumi starts
            os.killpg(apply.pid, signal.SIGKILL)
            break
    apply.wait()
    assert apply.returncode == -signal.SIGKILL

    again = project.script("ops.commands.adopt", project.stack, "--apply")
    assert again.returncode == ExitCode.OK, again.stdout[-4000:] + again.stderr[-3000:]
    assert "moved" not in again.stdout, "the rows had been moved: the second run finds none to move"
    fault_seen("the next scripts/adopt --apply", again.returncode, again.stdout, "adopted")
    verified = project.script("ops.commands.verify", project.stack)
    assert verified.returncode == ExitCode.OK, differences(verified.stdout)
    assert system_logs(server, logs) == rows_before
    with server.connect() as connection:
        login = connection.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (legacy.broad_role,))
        assert login.fetchone() == (True,), "kept as it was: legacyRoles does not name it"
    with server.connect(main) as connection:
        retired = connection.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.relkind = 'r' "
            "AND c.relnamespace = to_regnamespace(%s) ORDER BY 1",
            (RETIRED_SCHEMA,),
        ).fetchall()
    owner = f"{legacy.prefix}_main_owner"
    assert retired == [("alembic_version", owner), ("system_logs", owner)], "retired, kept, the owner role's"


def differences(verify_output: str) -> str:
    """The DIFFERS lines of scripts/verify's output, else its tail."""
    return "\n".join(line for line in verify_output.splitlines() if "DIFFERS" in line) or verify_output[-3000:]
