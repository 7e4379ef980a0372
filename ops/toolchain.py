"""The pinned Pulumi toolchain: `scripts/bootstrap` builds or finds it, `scripts/pulumi` runs it.

What the deploy needs besides the Python packages:
- the Pulumi CLI (the engine). A `pulumi` on PATH at the pinned version is used as it is; otherwise
  it is built from the Go module proxy (tools/pulumi/go.mod) into `.tools/bin/`.
- the shim that starts Python dynamic providers (`pulumi-resource-pulumi-python`), a plain file of
  the github.com/pulumi/pulumi/sdk/v3 module, copied next to the CLI.
- the postgresql resource plugin at exactly the version the pinned pulumi-postgresql package names.
  It is found in PULUMI_HOME, or installed from a binary named by PULUMI_POSTGRESQL_PLUGIN_BINARY.

The Python language host is not needed: the scripts run the program as an Automation API inline
program, whose language runtime is served by the pulumi package itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from ops import paths
from ops.errors import ExitCode, UserError, run_main

CLI_TOOL_MODULE = paths.REPO_ROOT / "tools" / "pulumi"
VERSION_PACKAGE = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"
DYNAMIC_PROVIDER_SHIM = "pulumi-resource-pulumi-python"
PROGRESS_EVERY_S = 20.0


def pinned_cli_version() -> str:
    """The CLI version is the pkg/v3 module version that tools/pulumi/go.mod requires."""
    go_mod = (CLI_TOOL_MODULE / "go.mod").read_text()
    match = re.search(r"github\.com/pulumi/pulumi/pkg/v3 v(\S+)", go_mod)
    if match is None:
        raise UserError(f"{CLI_TOOL_MODULE / 'go.mod'} does not require github.com/pulumi/pulumi/pkg/v3.")
    return match.group(1)


def pinned_postgresql_plugin_version() -> str:
    """The provider plugin must be the one the Python SDK was generated for."""
    manifest = resources.files("pulumi_postgresql").joinpath("pulumi-plugin.json").read_text()
    return str(json.loads(manifest)["version"])


def cli_path() -> Path:
    """The CLI the scripts run: a fitting one on PATH, else the one built into .tools/bin."""
    built = paths.TOOLS_BIN / "pulumi"
    on_path = shutil.which("pulumi", path=os.environ.get("PATH", "").replace(str(paths.TOOLS_BIN), ""))
    if on_path and cli_version(Path(on_path)) == pinned_cli_version():
        return Path(on_path)
    return built


def cli_version(cli: Path) -> str | None:
    if not cli.exists():
        return None
    result = subprocess.run([str(cli), "version"], capture_output=True, text=True, env=pulumi_env())
    return result.stdout.strip().lstrip("v") if result.returncode == 0 else None


def pulumi_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every Pulumi command runs in: local state and no reaching for the internet."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join([str(paths.TOOLS_BIN), str(paths.REPO_ROOT / ".venv" / "bin"), env.get("PATH", "")])
    env.setdefault("PULUMI_HOME", str(paths.PULUMI_HOME))
    env.setdefault("PULUMI_BACKEND_URL", f"file://{paths.PULUMI_BACKEND_DIR}")
    env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
    env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
    env.setdefault("PULUMI_DIY_BACKEND_NO_LEGACY_WARNING", "true")
    # The dynamic-provider shim starts this virtualenv's python, which has our packages.
    env["PULUMI_RUNTIME_VIRTUALENV"] = str(paths.REPO_ROOT / ".venv")
    return env


@contextmanager
def progress(component: str) -> Iterator[None]:
    """Print the elapsed time while a long step runs, instead of minutes of silence."""
    started = time.monotonic()
    done = threading.Event()

    def report() -> None:
        while not done.wait(PROGRESS_EVERY_S):
            print(f"bootstrap: still building {component} ({time.monotonic() - started:.0f}s)", file=sys.stderr)

    print(f"bootstrap: building {component}", file=sys.stderr)
    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        yield
    finally:
        done.set()
        reporter.join()
    print(f"bootstrap: built {component} in {time.monotonic() - started:.0f}s", file=sys.stderr)


def go_binary() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise UserError(
            "Go is not installed, and no Pulumi CLI v"
            f"{pinned_cli_version()} is on PATH: install Go 1.26 or later (https://go.dev/doc/install) "
            "so bootstrap can build the CLI, or install that Pulumi CLI version.",
            ExitCode.TOOLCHAIN,
        )
    return go


def run_go(args: list[str], component: str) -> str:
    log = paths.TOOLS_DIR / f"build-{component.replace(' ', '-')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local")
    with progress(component), open(log, "w") as out:
        result = subprocess.run(
            [go_binary(), *args], cwd=CLI_TOOL_MODULE, stdout=subprocess.PIPE, stderr=out, text=True, env=env
        )
    if result.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise UserError(
            f"building {component} failed (full log: {log}):\n{tail}\n"
            "Fix: check that the Go module proxy is reachable (GOPROXY) and that `go version` is 1.26 or "
            "later, then run scripts/bootstrap again; it resumes from Go's caches.",
            ExitCode.TOOLCHAIN,
        )
    return result.stdout


def ensure_cli() -> Path:
    version = pinned_cli_version()
    cli = cli_path()
    if cli_version(cli) == version:
        return cli
    built = paths.TOOLS_BIN / "pulumi"
    ldflags = f"-s -w -X {VERSION_PACKAGE}=v{version}"
    run_go(
        ["build", "-trimpath", "-ldflags", ldflags, "-o", str(built), "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"],
        f"pulumi CLI v{version}",
    )
    if cli_version(built) != version:
        raise UserError(
            f"the built {built} does not report v{version}: remove .tools/ and bootstrap again.", ExitCode.TOOLCHAIN
        )
    return built


def ensure_dynamic_provider_shim() -> None:
    target = paths.TOOLS_BIN / DYNAMIC_PROVIDER_SHIM
    if target.exists():
        return
    sdk = f"github.com/pulumi/pulumi/sdk/v3@v{pinned_cli_version()}"
    module_dir = json.loads(run_go(["mod", "download", "-json", sdk], "dynamic provider shim"))["Dir"]
    shutil.copyfile(Path(module_dir) / "python" / "dist" / DYNAMIC_PROVIDER_SHIM, target)
    target.chmod(0o755)


def installed_plugins(cli: Path) -> list[dict[str, object]]:
    result = subprocess.run([str(cli), "plugin", "ls", "--json"], capture_output=True, text=True, env=pulumi_env())
    if result.returncode != 0:
        raise UserError(f"`pulumi plugin ls` failed: {result.stderr.strip()}", ExitCode.TOOLCHAIN)
    return list(json.loads(result.stdout or "[]"))


def has_postgresql_plugin(cli: Path) -> bool:
    wanted = pinned_postgresql_plugin_version()
    return any(
        p.get("name") == "postgresql" and str(p.get("version", "")).lstrip("v") == wanted
        for p in installed_plugins(cli)
    )


def ensure_postgresql_plugin(cli: Path) -> bool:
    """True when the plugin is installed. Its source is not on this machine's Go module proxy."""
    if has_postgresql_plugin(cli):
        return True
    binary = os.environ.get("PULUMI_POSTGRESQL_PLUGIN_BINARY")
    if binary:
        version = pinned_postgresql_plugin_version()
        subprocess.run(
            [str(cli), "plugin", "install", "resource", "postgresql", version, "--file", binary],
            check=True,
            env=pulumi_env(),
        )
        return has_postgresql_plugin(cli)
    return False


def missing_postgresql_plugin_message() -> str:
    version = pinned_postgresql_plugin_version()
    return (
        f"the postgresql resource plugin v{version} is not installed. The Go module proxy reachable here does "
        "not serve github.com/pulumi/pulumi-postgresql/provider/v3, so bootstrap cannot build it. Fix: on a "
        f"machine with internet access run `pulumi plugin install resource postgresql {version}`, or set "
        "PULUMI_POSTGRESQL_PLUGIN_BINARY to a pulumi-resource-postgresql binary of that version and run "
        "scripts/bootstrap again."
    )


def ensure() -> int:
    paths.TOOLS_BIN.mkdir(parents=True, exist_ok=True)
    cli = ensure_cli()
    ensure_dynamic_provider_shim()
    if not ensure_postgresql_plugin(cli):
        print(f"bootstrap: warning: {missing_postgresql_plugin_message()}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["ensure"]:
        return ensure()
    if args == ["cli-path"]:
        print(cli_path())
        return 0
    print("usage: python -m ops.toolchain ensure|cli-path", file=sys.stderr)
    return ExitCode.BAD_INPUT


if __name__ == "__main__":
    run_main(main)
