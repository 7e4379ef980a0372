"""The pinned toolchain, as `scripts/pulumi` runs it and `scripts/bootstrap` builds it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ops.errors import ExitCode, UserError
from ops.paths import REPO_ROOT
from ops.toolchain import pinned, plugin_info, plugin_sources

PINNED_PULUMI = "3.259.0"
PINNED_PROVIDER = "3.18.0"


def scripts_pulumi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO_ROOT / "scripts" / "pulumi"), *args], capture_output=True, text=True, timeout=300)


def test_cli_language_host_and_python_sdk_are_one_pulumi_version() -> None:
    from importlib.metadata import version

    assert pinned.pinned_cli_version() == PINNED_PULUMI
    assert scripts_pulumi("version").stdout.strip() == f"v{PINNED_PULUMI}"
    host = pinned.language_host_path(pinned.cli_path())
    assert subprocess.run([str(host), "-version"], capture_output=True, text=True).stdout.strip() == f"v{PINNED_PULUMI}"
    assert version("pulumi") == PINNED_PULUMI


def test_plugin_list_shows_the_pinned_postgresql_plugin() -> None:
    listed = scripts_pulumi("plugin", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    plugins = {(p["name"], p["kind"], p["version"]) for p in json.loads(listed.stdout)}
    assert ("postgresql", "resource", PINNED_PROVIDER) in plugins


def test_the_plugin_version_is_the_one_the_python_sdk_names() -> None:
    assert pinned.pinned_postgresql_plugin_version() == PINNED_PROVIDER


def test_the_installed_plugin_binary_itself_reports_the_pinned_version() -> None:
    assert plugin_info.reported_version(pinned.installed_postgresql_plugin()) == PINNED_PROVIDER


def test_a_mislabelled_plugin_binary_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real 3.18.0 binary, offered where another version is pinned, is not installed."""
    real_binary = pinned.installed_postgresql_plugin()
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    monkeypatch.setenv(pinned.PLUGIN_BINARY_ENV, str(real_binary))
    monkeypatch.setattr(pinned, "installed_postgresql_plugin", lambda: tmp_path / "none")
    monkeypatch.setattr(pinned, "pinned_postgresql_plugin_version", lambda: "3.18.1")
    monkeypatch.setattr(plugin_sources, "find_mirror", lambda: None)
    with pytest.raises(UserError, match=r"reports version 3\.18\.0, not 3\.18\.1") as raised:
        pinned.ensure_postgresql_plugin(pinned.cli_path())
    assert raised.value.exit_code == ExitCode.TOOLCHAIN
    assert not (tmp_path / "pulumi-home" / "plugins").exists()


def test_a_file_that_is_no_plugin_is_refused_with_its_name(tmp_path: Path) -> None:
    not_a_plugin = tmp_path / "pulumi-resource-postgresql"
    not_a_plugin.write_text("#!/bin/sh\necho hello\n")
    not_a_plugin.chmod(0o755)
    with pytest.raises(UserError, match=f"{not_a_plugin} did not start as a Pulumi plugin"):
        plugin_info.reported_version(not_a_plugin)


def test_a_mirror_archive_with_a_wrong_sum_stops_bootstrap_before_any_build(tmp_path: Path) -> None:
    mirror = plugin_sources.find_mirror()
    assert mirror is not None, "no plugin source mirror: set HEADHUNTER_PLUGIN_SOURCES"
    for archive in plugin_sources.committed_sums():
        shutil.copyfile(mirror.folder / archive, tmp_path / archive)
    tampered = plugin_sources.PROVIDER_UPSTREAM_ARCHIVE
    with open(tmp_path / tampered, "ab") as file:
        file.write(b"\0")
    build_dir = plugin_sources.BUILD_DIR / f"pulumi-resource-postgresql-{PINNED_PROVIDER}"
    before = build_dir.stat().st_mtime_ns if build_dir.exists() else None
    env = dict(os.environ, HEADHUNTER_PLUGIN_SOURCES=str(tmp_path), PULUMI_HOME=str(tmp_path / "pulumi-home"))
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "bootstrap")], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == ExitCode.TOOLCHAIN, result.stderr
    assert f"{tmp_path / tampered} does not match its committed sha256 sum" in result.stderr
    assert "building postgresql provider" not in result.stderr
    assert (build_dir.stat().st_mtime_ns if build_dir.exists() else None) == before


def test_the_committed_sums_cover_every_archive_the_builds_use() -> None:
    sums = plugin_sources.committed_sums()
    assert set(sums) == {
        plugin_sources.PROVIDER_ARCHIVE.format(version=PINNED_PROVIDER),
        plugin_sources.PROVIDER_UPSTREAM_ARCHIVE,
        plugin_sources.LANGUAGE_HOST_ARCHIVE.format(version=PINNED_PULUMI),
    }
    assert all(len(digest) == 64 for digest in sums.values())


def test_the_readme_environment_gives_plain_pulumi_the_pinned_toolchain(tmp_path: Path) -> None:
    script = 'eval "$(scripts/env)" && pulumi version && pulumi-language-python -version && pulumi about --json'
    env = {key: value for key, value in os.environ.items() if not key.startswith("PULUMI_")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    result = subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    cli, host, about = result.stdout.split("\n", 2)
    assert (cli, host) == (f"v{PINNED_PULUMI}", f"v{PINNED_PULUMI}")
    plugins = {(p["kind"], p["name"], p["version"]) for p in json.loads(about)["plugins"]}
    assert {("language", "python", PINNED_PULUMI), ("resource", "postgresql", PINNED_PROVIDER)} <= plugins


def test_no_pulumi_command_reaches_for_the_internet() -> None:
    env = pinned.pulumi_env({"PATH": "/usr/bin"})
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["PULUMI_BACKEND_URL"].startswith("file://")
