"""The project's program, deployed by the real engine, language host and postgresql provider.

A dev-like stack (the dev stack's settings under names of its own) on the embedded server: the
scripts' deploy, PostgreSQL's catalogs, the verification suite, then plain `pulumi preview`,
`refresh` and `stack output` in the project folder as a user runs them, and destroy. Every test
removes what it deployed, so the suite passes twice in a row.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from sqlalchemy.engine import make_url

from fixtures import observed
from fixtures.acl_order import unordered_acl_changes
from fixtures.cluster import Server
from fixtures.fault_log import SeenFunction
from fixtures.project_stack import ProjectStack, cleanup, leftover_objects, project_stack
from fixtures.revisions import NEW_TABLE_REVISION
from migrations.shared.heads import declared_head, default_location
from ops.errors import ExitCode

pytestmark = [pytest.mark.engine, pytest.mark.provider]


@pytest.fixture
def devlike(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    project = project_stack(tmp_path, "devlike", "devlike")
    cleanup(project, server)  # a run that was killed before its own cleanup
    yield project
    cleanup(project, server)


@pytest.fixture
def protected(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    project = project_stack(tmp_path, "kept", "kept", allowDatabaseDeletion=False)
    cleanup(project, server)
    yield project
    cleanup(project, server)


@pytest.mark.matrix
def test_up_verify_preview_refresh_outputs_and_destroy(server: Server, devlike: ProjectStack) -> None:
    with observed.statements_logged(server) as logged:
        up = devlike.script("ops.commands.up", devlike.stack)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    assert "warning" not in (up.stdout + up.stderr).lower(), up.stdout + up.stderr
    # What the server received: every login role's password as a SCRAM verifier, never in plain text.
    passwords = observed.login_passwords(devlike)
    assert set(passwords) == observed.PROMISED_LOGINS and all(passwords.values())
    assert logged[0].count("PASSWORD 'SCRAM-SHA-256$") >= len(passwords), logged[0][-3000:]
    assert [key for key, password in passwords.items() if password in logged[0]] == []
    # The privileges the server reports, against the matrix the docs promise, written out by hand.
    assert observed.privilege_matrix(server, devlike) == observed.PROMISED_MATRIX
    with server.connect() as admin:
        owners: dict[str, str] = dict(
            admin.execute(
                "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname LIKE 'devlike%%'"
            ).fetchall()
        )
    assert owners == {"devlike_db": "devlike_main_owner", "devlike_logs": "devlike_logs_owner"}

    verified = devlike.script("ops.commands.verify", devlike.stack)
    assert verified.returncode == ExitCode.OK, verified.stdout[-3000:]
    # The same suite as a testinfra user runs it.
    pytest_run = devlike.script("pytest", "tests/infra", "--stack", devlike.stack, "-p", "no:cacheprovider", "-q")
    assert pytest_run.returncode == 0, pytest_run.stdout[-3000:]
    assert " as expected, 0 differ" in pytest_run.stdout, pytest_run.stdout[-3000:]

    # Plain pulumi in the project folder: no perpetual diff, nothing drifted, the outputs readable.
    preview = devlike.pulumi("preview", "--expect-no-changes")
    assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr
    refresh = devlike.pulumi("refresh", "--expect-no-changes", "--yes")
    assert refresh.returncode == 0, refresh.stdout[-3000:] + refresh.stderr
    outputs = devlike.pulumi("stack", "output", "--json")
    assert outputs.returncode == 0, outputs.stderr
    assert json.loads(outputs.stdout)["databases"] == {"main": "devlike_db", "logs": "devlike_logs"}
    exported = devlike.pulumi("stack", "export")
    assert exported.returncode == 0, exported.stderr
    assert unordered_acl_changes(json.loads(exported.stdout)["deployment"]["resources"]) == []
    assert generated_passwords_in_plain_text(devlike, exported.stdout) == []

    again = devlike.script("ops.commands.up", devlike.stack)
    assert again.returncode == ExitCode.OK, again.stdout[-3000:] + again.stderr[-3000:]
    assert "stack devlike: no changes" in again.stdout

    destroyed = devlike.pulumi("destroy", "--yes", "--skip-preview")
    assert destroyed.returncode == 0, destroyed.stdout[-3000:] + destroyed.stderr
    assert leftover_objects(devlike, server) == []


def generated_passwords_in_plain_text(project: ProjectStack, exported_state: str) -> list[str]:
    """Which logins' generated passwords appear unencrypted in the stack's state (export and backend files)."""
    shown = project.pulumi("stack", "output", "connection_urls", "--json", "--show-secrets")
    assert shown.returncode == 0, shown.stderr
    passwords = {login: make_url(url).password for login, url in json.loads(shown.stdout).items()}
    assert set(passwords) >= observed.PROMISED_LOGINS and all(passwords.values()), sorted(passwords)
    backend = Path(project.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    stored = exported_state + "".join(path.read_text(errors="replace") for path in backend.rglob("*") if path.is_file())
    return sorted(login for login, password in passwords.items() if str(password) in stored)


READERS = [{"name": "readers_analyst", "database": "logs"}, {"name": "readers_auditor", "database": "main"}]


@pytest.fixture
def with_readers(tmp_path: Path, server: Server) -> Iterator[ProjectStack]:
    project = project_stack(tmp_path, "readers", "readers", readOnlyRoles=READERS)
    cleanup(project, server)
    yield project
    cleanup(project, server)


def connection_urls(project: ProjectStack) -> dict[str, str]:
    outputs = project.pulumi("stack", "output", "--json", "--show-secrets")
    assert outputs.returncode == 0, outputs.stderr
    urls: dict[str, str] = json.loads(outputs.stdout)["connection_urls"]
    return urls


def test_read_only_logins_read_through_their_group_and_a_later_one_reads_todays_tables(
    server: Server, with_readers: ProjectStack
) -> None:
    up = with_readers.script("ops.commands.up", with_readers.stack)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    verified = with_readers.script("ops.commands.verify", with_readers.stack)
    assert verified.returncode == ExitCode.OK, verified.stdout[-3000:]

    urls = connection_urls(with_readers)
    with psycopg.connect(urls["readers_analyst"], autocommit=True) as analyst:
        assert analyst.execute("SELECT count(*) FROM system_logs").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute("INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'x', 'y')")
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(urls["readers_analyst"].replace("/readers_logs?", "/readers_db?"))

    # A reader added to the running stack reads the tables that exist, and no table's ACL grows.
    stack_file = with_readers.folder / f"Pulumi.{with_readers.stack}.yaml"
    settings = yaml.safe_load(stack_file.read_text())
    settings["config"]["headhunter-db:readOnlyRoles"].append({"name": "readers_late", "database": "logs"})
    stack_file.write_text(yaml.safe_dump(settings))
    again = with_readers.script("ops.commands.up", with_readers.stack)
    assert again.returncode == ExitCode.OK, again.stdout[-3000:] + again.stderr[-3000:]
    with psycopg.connect(connection_urls(with_readers)["readers_late"], autocommit=True) as late_reader:
        assert late_reader.execute("SELECT count(*) FROM llm_logs").fetchone() == (0,)
    with server.connect("readers_logs") as logs:
        grantees = logs.execute(
            "SELECT DISTINCT pg_get_userbyid(acl.grantee) FROM pg_class c, aclexplode(c.relacl) acl "
            "WHERE c.relname = 'system_logs' ORDER BY 1"
        ).fetchall()
    assert [name for (name,) in grantees] == [
        "readers_logs_owner",
        "readers_logs_reader",
        "readers_logs_readers",
        "readers_logs_writer",
    ]
    assert with_readers.script("ops.commands.verify", with_readers.stack).returncode == ExitCode.OK


def test_a_table_a_new_revision_adds_reaches_each_role_with_its_verbs_and_no_others(
    server: Server, devlike: ProjectStack, tmp_path: Path
) -> None:
    """The revision is the only edit: no table list, no grant, nothing outside the tree."""
    trees = tmp_path / "trees"
    for key in ("main", "logs"):
        shutil.copytree(default_location(key), trees / key, ignore=shutil.ignore_patterns("__pycache__"))
    revision = NEW_TABLE_REVISION.replace("{down}", declared_head(trees / "logs"))
    (trees / "logs" / "versions" / "logs_9998_audit_events.py").write_text(revision)
    devlike.env["HEADHUNTER_MIGRATIONS_DIR"] = str(trees)

    up = devlike.script("ops.commands.up", devlike.stack)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    with server.connect("devlike_logs") as logs:
        held: dict[str, list[str]] = dict(
            logs.execute(
                "SELECT r, ARRAY(SELECT p FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE']) AS p "
                "WHERE has_table_privilege(r, 'audit_events', p)) "
                "FROM unnest(ARRAY['devlike_logs_writer', 'devlike_logs_reader', 'devlike_app']) AS r"
            ).fetchall()
        )
    assert held == {"devlike_logs_writer": ["INSERT"], "devlike_logs_reader": ["SELECT"], "devlike_app": []}
    verified = devlike.script("ops.commands.verify", devlike.stack)
    assert verified.returncode == ExitCode.OK, verified.stdout[-3000:]


def test_a_protected_stack_refuses_destroy_and_keeps_its_databases(server: Server, protected: ProjectStack) -> None:
    up = protected.script("ops.commands.up", protected.stack)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    refused = protected.script("ops.commands.destroy", protected.stack, "--yes")
    assert refused.returncode == ExitCode.BAD_INPUT, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert "allowDatabaseDeletion is false" in refused.stderr and "nothing was changed" in refused.stderr
    destroyed = protected.pulumi("destroy", "--yes", "--skip-preview")
    assert destroyed.returncode != 0
    assert "protected" in destroyed.stdout + destroyed.stderr
    left = leftover_objects(protected, server)
    assert {"kept_db", "kept_logs", "kept_main_owner", "kept_logs_owner"} <= set(left), left
    # Even with protection lifted by hand, destroy forgets the databases and owner roles but keeps
    # them on the server (retainOnDelete), rows and all.
    with server.connect("kept_logs") as logs:
        logs.execute("INSERT INTO system_logs (level, component, message) VALUES ('INFO', 'kept', 'a row')")
    assert protected.pulumi("state", "unprotect", "--all", "--yes").returncode == 0
    forced = protected.pulumi("destroy", "--yes", "--skip-preview")
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr
    assert {"kept_db", "kept_logs", "kept_main_owner", "kept_logs_owner"} <= set(leftover_objects(protected, server))
    with server.connect("kept_logs") as logs:
        assert logs.execute("SELECT message FROM system_logs").fetchall() == [("a row",)]


def test_without_the_plugin_the_deploy_stops_before_any_change(
    server: Server, devlike: ProjectStack, tmp_path: Path
) -> None:
    devlike.env["PULUMI_HOME"] = str(tmp_path / "empty-pulumi-home")
    result = devlike.script("ops.commands.up", devlike.stack)
    assert result.returncode == ExitCode.TOOLCHAIN, result.stderr
    assert "the postgresql resource plugin v3.18.0 is not installed" in result.stderr
    assert "HEADHUNTER_PLUGIN_SOURCES" in result.stderr
    assert leftover_objects(devlike, server) == []


def drift_by_hand(server: Server, project: ProjectStack) -> None:
    """Three changes a person makes by hand: an extra table privilege, a foreign CONNECT, a role attribute."""
    logs_db = project.databases[1]
    writer, app = sql.Identifier(f"{project.prefix}_logs_writer"), sql.Identifier(f"{project.prefix}_app")
    with server.connect(logs_db) as logs:
        logs.execute(sql.SQL("GRANT SELECT ON system_logs TO {}").format(writer))
        logs.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(logs_db), app))
    with server.connect() as admin:
        admin.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(writer))


@pytest.mark.fault(
    what="drift by hand: SELECT granted to the writer, CONNECT on the other database granted to the app, a role "
    "attribute changed; then a role of the stack's prefix added",
    recovery="one `scripts/deploy` (or `scripts/up`) refreshes first and puts back every grant and role attribute "
    "of the stack; a table or role it did not create is named with the SQL that removes it, never dropped",
)
def test_one_deploy_repairs_drift_and_names_what_it_does_not_manage(
    server: Server, devlike: ProjectStack, fault_seen: SeenFunction
) -> None:
    up = devlike.script("ops.commands.up", devlike.stack)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    drift_by_hand(server, devlike)
    drifted = devlike.script("ops.commands.verify", devlike.stack)
    assert drifted.returncode == ExitCode.VERIFY_FAILED
    fault_seen("scripts/verify", drifted.returncode)

    repaired = devlike.script("ops.commands.deploy", devlike.stack)
    assert repaired.returncode == ExitCode.OK, repaired.stdout[-4000:] + repaired.stderr[-2000:]
    fault_seen("the next scripts/deploy", repaired.returncode)

    with server.connect() as admin:
        admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(f"{devlike.prefix}_intruder")))
    named = devlike.script("ops.commands.deploy", devlike.stack)
    assert named.returncode == ExitCode.VERIFY_FAILED
    assert f"DROP ROLE {devlike.prefix}_intruder;" in named.stdout
    assert "never drops a table or a role it did not create" in named.stderr
    fault_seen("scripts/deploy with a role added by hand", named.returncode, named.stdout, "DROP ROLE")
