"""Wrong or missing input stops `scripts/up` before any change, with the problem, the fix and an exit code.

Each case runs the deploy (`python -m ops.commands.up STACK`) in a project folder and a state backend of its
own, against the embedded server, then checks that nothing was created on the server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fixtures.cluster import Server, scalar
from fixtures.fault_log import SeenFunction
from ops.errors import ExitCode
from ops.paths import REPO_ROOT

STACK = "faults"
PASSPHRASE = "faults-passphrase"


@dataclass(frozen=True)
class Project:
    folder: Path
    server: Server

    def env(self, passphrase: str | None = PASSPHRASE) -> dict[str, str]:
        env = dict(
            os.environ, HEADHUNTER_PROJECT_DIR=str(self.folder), PULUMI_BACKEND_URL=f"file://{self.folder / 'state'}"
        )
        env.pop("PULUMI_CONFIG_PASSPHRASE", None)
        if passphrase is not None:
            env["PULUMI_CONFIG_PASSPHRASE"] = passphrase
        return env

    def write_stack(self, config: dict[str, object], admin_password: str | None) -> None:
        text = yaml.safe_dump({"config": {f"headhunter-db:{k}": v for k, v in config.items()}})
        (self.folder / f"Pulumi.{STACK}.yaml").write_text(text)
        if admin_password is not None:
            self.set_secret("adminPassword", admin_password)

    def set_secret(self, key: str, value: str) -> None:
        self.pulumi("config", "set", "--secret", f"headhunter-db:{key}", "--stack", STACK, stdin=value)

    def pulumi(self, *args: str, stdin: str | None = None) -> None:
        command = [sys.executable, "-m", "ops.commands.pulumi", *args, "--cwd", str(self.folder)]
        subprocess.run(command, cwd=REPO_ROOT, input=stdin, text=True, env=self.env(), check=True, capture_output=True)

    def up(self, passphrase: str | None = PASSPHRASE) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ops.commands.up", STACK],
            cwd=REPO_ROOT,
            env=self.env(passphrase),
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.fixture
def project(tmp_path: Path, server: Server) -> Project:
    (tmp_path / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "state").mkdir()
    project = Project(tmp_path, server)
    project.pulumi("stack", "init", STACK)
    return project


def good_config(server: Server, **changes: object) -> dict[str, object]:
    config: dict[str, object] = {
        "host": server.connection.host,
        "port": server.connection.port,
        "sslmode": "disable",
        "adminUser": server.connection.user,
        "mainDatabase": "faults_main",
        "logsDatabase": "faults_logs",
        "rolePrefix": "faults",
    }
    config.update(changes)
    return config


def assert_nothing_created(server: Server) -> None:
    with server.connect() as admin:
        assert scalar(admin, "SELECT count(*) FROM pg_database WHERE datname LIKE 'faults%%'") == 0
        assert scalar(admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'faults%%'") == 0


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        ({"mainDatabase": "m" * 64}, ExitCode.BAD_INPUT, "is 64 bytes long and PostgreSQL would truncate it"),
        ({"logsDatabase": "faults logs"}, ExitCode.BAD_INPUT, "it would need quoting"),
        ({"rolePrefix": "fault's"}, ExitCode.BAD_INPUT, 'headhunter-db:rolePrefix is "fault\'s"'),
        ({"minServerVersion": "99"}, ExitCode.BAD_INPUT, "older than headhunter-db:minServerVersion 99"),
        ({"port": 1}, ExitCode.SERVER_UNREACHABLE, "cannot reach PostgreSQL at 127.0.0.1:1"),
        ({"port": "five"}, ExitCode.BAD_INPUT, "headhunter-db:port is 'five', not a whole number"),
        ({"hostname": "db.internal"}, ExitCode.BAD_INPUT, "headhunter-db:hostname is not a key this program reads"),
    ],
)
@pytest.mark.fault(
    what="bad stack config: a name over 63 bytes, with a space or a quote; a server older than "
    "`minServerVersion`; nothing listening; a port that is not a number; a key the program does not read",
    recovery="fix the key the message names; nothing was created",
)
def test_bad_config_stops_before_any_change(
    project: Project, changes: dict[str, object], code: ExitCode, message: str, fault_seen: SeenFunction
) -> None:
    project.write_stack(good_config(project.server, **changes), project.server.connection.password)
    result = project.up()
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert_nothing_created(project.server)
    fault_seen("scripts/up", result.returncode, result.stderr, message)


@pytest.mark.fault(what="a wrong admin password", recovery="`pulumi config set --secret headhunter-db:adminPassword`")
def test_a_wrong_admin_password(project: Project, fault_seen: SeenFunction) -> None:
    project.write_stack(good_config(project.server), "not-the-admin-password")
    result = project.up()
    assert result.returncode == ExitCode.SERVER_UNREACHABLE
    assert "password authentication failed" in result.stderr and "adminPassword" in result.stderr
    assert "not-the-admin-password" not in result.stdout + result.stderr
    assert_nothing_created(project.server)
    fault_seen("scripts/up", result.returncode, result.stderr, "password authentication failed")


@pytest.mark.fault(what="a missing admin password", recovery="set it as a secret")
def test_a_missing_secret(project: Project, fault_seen: SeenFunction) -> None:
    project.write_stack(good_config(project.server), admin_password=None)
    result = project.up()
    assert result.returncode == ExitCode.BAD_INPUT
    assert "headhunter-db:adminPassword is missing: set it with `pulumi config set --secret" in result.stderr
    assert_nothing_created(project.server)
    fault_seen("scripts/up", result.returncode, result.stderr, "adminPassword is missing")


@pytest.mark.fault(what="an admin password stored in plain text", recovery="store it with `--secret`")
def test_an_admin_password_in_plain_text(project: Project, fault_seen: SeenFunction) -> None:
    project.write_stack(good_config(project.server, adminPassword="plain-text-password"), admin_password=None)
    result = project.up()
    assert result.returncode == ExitCode.BAD_INPUT
    assert "headhunter-db:adminPassword is stored in plain text" in result.stderr
    assert "plain-text-password" not in result.stdout + result.stderr
    assert_nothing_created(project.server)
    fault_seen("scripts/up", result.returncode, result.stderr, "stored in plain text")


@pytest.mark.fault(what="a wrong secrets passphrase", recovery="give the right one")
def test_a_wrong_passphrase(project: Project, fault_seen: SeenFunction) -> None:
    project.write_stack(good_config(project.server), project.server.connection.password)
    result = project.up(passphrase="not-the-passphrase")
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr
    assert "passphrase" in result.stderr and "PULUMI_CONFIG_PASSPHRASE" in result.stderr
    assert_nothing_created(project.server)
    fault_seen("scripts/up", result.returncode, result.stderr, "PULUMI_CONFIG_PASSPHRASE")


@pytest.mark.fault(what="no passphrase for a stack other than dev", recovery="set PULUMI_CONFIG_PASSPHRASE(_FILE)")
def test_no_passphrase_for_a_stack_other_than_dev(project: Project, fault_seen: SeenFunction) -> None:
    project.write_stack(good_config(project.server), project.server.connection.password)
    result = project.up(passphrase=None)
    assert result.returncode == ExitCode.BAD_INPUT
    assert "stack 'faults' needs its secrets passphrase: set PULUMI_CONFIG_PASSPHRASE" in result.stderr
    fault_seen("scripts/up", result.returncode, result.stderr, "needs its secrets passphrase")


@pytest.mark.fault(what="a stack file that is not YAML", recovery="fix the file")
def test_a_stack_file_that_is_not_yaml(project: Project, fault_seen: SeenFunction) -> None:
    (project.folder / f"Pulumi.{STACK}.yaml").write_text("config:\n  headhunter-db:host: [unclosed\n")
    result = project.up()
    assert result.returncode == ExitCode.BAD_INPUT
    assert f"Pulumi.{STACK}.yaml is not valid YAML at line" in result.stderr
    assert_nothing_created(project.server)
    fault_seen("scripts/up", result.returncode, result.stderr, "is not valid YAML")
