"""Every script as its user meets it: `--help` and bad arguments answer before anything changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ops.errors import ExitCode
from ops.paths import REPO_ROOT
from ops.toolchain import pinned

SCRIPTS = sorted(path.name for path in (REPO_ROOT / "scripts").iterdir())


@pytest.fixture(scope="module")
def bare_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tracked files only, as a fresh clone has them: no .venv, no .tools, no server."""
    folder = tmp_path_factory.mktemp("checkout")
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    for name in listed.stdout.splitlines():
        if (REPO_ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, folder / name)
    return folder


def every_file(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def run(folder: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PULUMI_", "HEADHUNTER_"))}
    command = [str(folder / "scripts" / script), *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_says_what_the_script_does_and_changes_nothing(bare_checkout: Path, script: str) -> None:
    before = every_file(bare_checkout)
    result = run(bare_checkout, script, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: scripts/{script}" in result.stdout
    assert "exit codes" in result.stdout
    assert every_file(bare_checkout) == before


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("deploy", [], "the following arguments are required: STACK"),
        ("up", ["dev", "staging"], "unrecognized arguments: staging"),
        ("migrate", ["dev", "both"], "invalid choice: 'both'"),
        ("localpg", ["restart"], "invalid choice: 'restart'"),
        ("verify", ["--host", "x"], "unrecognized arguments"),
        ("bench", ["--slow"], "unrecognized arguments: --slow"),
        ("adopt", [], "the following arguments are required: STACK"),
        ("adopt", ["dev", "--plan", "--apply"], "give one of --plan or --apply, not both"),
        ("test", ["--versions", "14,16"], "PostgreSQL 14 is not supported (15, 16, 17, 18)"),
        ("test", ["--versions", "sixteen"], "'sixteen' is not a list of PostgreSQL majors"),
        ("localpg", ["start", "--major", "19"], "invalid choice: 19"),
    ],
)
def test_bad_arguments_exit_2_before_anything_changes(
    bare_checkout: Path, script: str, args: list[str], message: str
) -> None:
    before = every_file(bare_checkout)
    result = run(bare_checkout, script, *args)
    assert result.returncode == ExitCode.BAD_INPUT
    assert message in result.stderr
    assert every_file(bare_checkout) == before


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("pulumi", ["-C", ".", "version"]),
        ("pulumi", ["--cwd", ".", "version"]),
        ("pulumi", ["--color", "never", "version"]),
        ("test", ["--fast", "-x", "-q"]),
        ("test", ["-x", "-q", "tests/unit"]),
        ("test", ["--fast", "--versions", "16,18", "-x"]),
        ("test", ["--versions=others", "-q"]),
    ],
)
def test_a_wrapped_tools_own_options_are_passed_on(script: str, args: list[str]) -> None:
    """What the script's argument check lets through (it runs before bootstrap in every script)."""
    checked = subprocess.run(
        [sys.executable, "-B", "-m", "ops.commands.cli", script, *args], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert checked.returncode == ExitCode.OK, checked.stderr


def test_scripts_pulumi_runs_the_cli_with_its_leading_flags() -> None:
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "pulumi"), "-C", ".", "--color", "never", "version"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == ExitCode.OK, result.stderr
    assert result.stdout.strip() == f"v{pinned.pinned_cli_version()}"


def command_on_an_empty_backend(backend: Path, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One of the project's commands, with a state backend of the test's own that holds nothing."""
    env = dict(os.environ, PULUMI_BACKEND_URL=f"file://{backend}", PULUMI_CONFIG_PASSPHRASE="unused")
    return subprocess.run(
        [sys.executable, "-m", f"ops.commands.{command}", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )


def test_a_mistyped_stack_is_named_and_creates_nothing(tmp_path: Path) -> None:
    """`scripts/deploy stagng` must neither create the stack nor write its stack file."""
    result = command_on_an_empty_backend(tmp_path, "deploy", "stagng")
    assert result.returncode == ExitCode.BAD_INPUT
    assert "there is no stack file Pulumi.stagng.yaml" in result.stderr
    assert "this project's stacks: dev, prod, staging" in result.stderr
    assert not (REPO_ROOT / "Pulumi.stagng.yaml").exists()
    assert list(tmp_path.iterdir()) == []


def test_deploy_selects_a_stack_and_never_creates_one(tmp_path: Path) -> None:
    result = command_on_an_empty_backend(tmp_path, "deploy", "staging")
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr
    assert "stack 'staging' does not exist in the state backend" in result.stderr
    assert "scripts/pulumi stack init staging" in result.stderr
    assert not any(tmp_path.rglob("*.json"))


def test_destroy_without_yes_changes_nothing(tmp_path: Path) -> None:
    result = command_on_an_empty_backend(tmp_path, "destroy", "dev")
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr
    assert "with every row in them: run it again with --yes" in result.stderr
    assert list(tmp_path.iterdir()) == []
