"""The pinned toolchain, as `scripts/pulumi` runs it."""

from __future__ import annotations

import json
import subprocess

from ops import toolchain
from ops.paths import REPO_ROOT


def scripts_pulumi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO_ROOT / "scripts" / "pulumi"), *args], capture_output=True, text=True, timeout=300)


def test_pulumi_version_is_the_pinned_one() -> None:
    result = scripts_pulumi("version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"v{toolchain.pinned_cli_version()}"


def test_plugin_list_shows_the_pinned_postgresql_plugin_or_bootstrap_says_why_not() -> None:
    listed = scripts_pulumi("plugin", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    plugins = {(p["name"], p["version"]) for p in json.loads(listed.stdout or "[]")}
    wanted = ("postgresql", toolchain.pinned_postgresql_plugin_version())
    if wanted not in plugins:
        assert "github.com/pulumi/pulumi-postgresql/provider/v3" in listed.stderr
        assert "PULUMI_POSTGRESQL_PLUGIN_BINARY" in listed.stderr


def test_the_plugin_version_is_the_one_the_python_sdk_names() -> None:
    assert toolchain.pinned_postgresql_plugin_version() == "3.18.2"


def test_no_pulumi_command_reaches_for_the_internet() -> None:
    env = toolchain.pulumi_env({"PATH": "/usr/bin"})
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["PULUMI_BACKEND_URL"].startswith("file://")
