"""The pinned Pulumi toolchain: `scripts/bootstrap` builds or finds it, `scripts/pulumi` runs it.

One Pulumi version runs through all of it: the CLI, the Python language host, its shims and the
`pulumi` Python package (requirements.txt). What the deploy needs besides the Python packages:
- the Pulumi CLI (the engine). A `pulumi` on PATH at the pinned version is used as it is; otherwise
  it is built from the Go module proxy (tools/pulumi/go.mod) into `.tools/bin/`.
- the Python language host `pulumi-language-python`, which runs infra/ for `pulumi up`. It ships
  beside an official CLI; otherwise it is built from the offline source mirror (ops/toolchain/plugin_sources.py).
- two plain-file shims of the github.com/pulumi/pulumi/sdk/v3 module, copied next to the CLI:
  `pulumi-language-python-exec` (starts the program) and `pulumi-resource-pulumi-python` (starts
  the program's dynamic providers).
- the postgresql resource plugin at exactly the version the pinned pulumi-postgresql package names:
  already installed in PULUMI_HOME, else built from the offline source mirror, else installed from
  a binary named by PULUMI_POSTGRESQL_PLUGIN_BINARY. Every candidate must report that version itself.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

from ops import paths
from ops.errors import ExitCode, UserError
from ops.toolchain import plugin_info, plugin_sources
from ops.toolchain.go_build import run_go

CLI_TOOL_MODULE = paths.REPO_ROOT / "tools" / "pulumi"
LANGUAGE_HOST = "pulumi-language-python"
# Plain files of the sdk/v3 module: (path inside the module, name beside the CLI).
SDK_SHIMS = (
    ("python/cmd/pulumi-language-python-exec", "pulumi-language-python-exec"),
    ("python/dist/pulumi-resource-pulumi-python", "pulumi-resource-pulumi-python"),
)
PLUGIN_BINARY_ENV = "PULUMI_POSTGRESQL_PLUGIN_BINARY"


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
    if on_path and reported_version([on_path, "version"]) == pinned_cli_version():
        return Path(on_path)
    return built


def reported_version(command: list[str]) -> str | None:
    """What `CLI version` or `language-host -version` prints, without the leading v; None if it cannot run."""
    if not Path(command[0]).exists():
        return None
    result = subprocess.run(command, capture_output=True, text=True, env=pulumi_env())
    return result.stdout.strip().lstrip("v") if result.returncode == 0 else None


def pulumi_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every Pulumi command runs in: the project's toolchain, local state, no downloads."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join([str(paths.TOOLS_BIN), str(paths.REPO_ROOT / ".venv" / "bin"), env.get("PATH", "")])
    env.update(toolchain_variables())
    for key, value in state_variables().items():
        env.setdefault(key, value)
    return env


def toolchain_variables() -> dict[str, str]:
    """Set for every Pulumi command: no update checks and no plugin downloads."""
    return {
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
        # Dynamic providers start this virtualenv's python, which has our packages, whatever the
        # project file of the running program says (the engine tests run programs of their own).
        "PULUMI_RUNTIME_VIRTUALENV": str(paths.REPO_ROOT / ".venv"),
    }


def state_variables() -> dict[str, str]:
    """Defaults a user's own setting wins over: the project's plugin folder and file backend."""
    return {"PULUMI_HOME": str(paths.PULUMI_HOME), "PULUMI_BACKEND_URL": f"file://{paths.PULUMI_BACKEND_DIR}"}


def shell_exports() -> str:
    """`export` lines for a user's shell; the state defaults do not override the user's own settings."""
    folders = dict.fromkeys([str(cli_path().parent), str(paths.TOOLS_BIN), str(paths.REPO_ROOT / ".venv" / "bin")])
    path = os.pathsep.join(folders)
    lines = [f'export PATH={shlex.quote(path)}:"$PATH"']
    lines += [f"export {key}={shlex.quote(value)}" for key, value in toolchain_variables().items()]
    lines += [f'export {key}="${{{key}:-{value}}}"' for key, value in state_variables().items()]
    return "\n".join(lines)


def ensure_cli() -> Path:
    version = pinned_cli_version()
    cli = cli_path()
    if reported_version([str(cli), "version"]) == version:
        return cli
    built = paths.TOOLS_BIN / "pulumi"
    ldflags = f"-s -w -X {plugin_sources.CLI_VERSION_VARIABLE}=v{version}"
    args = ["build", "-trimpath", "-ldflags", ldflags, "-o", str(built), "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"]
    run_go(args, f"pulumi CLI v{version}", CLI_TOOL_MODULE)
    if reported_version([str(built), "version"]) != version:
        raise UserError(
            f"the built {built} does not report v{version}: remove .tools/ and bootstrap again.", ExitCode.TOOLCHAIN
        )
    return built


def ensure_sdk_shims(cli: Path) -> None:
    """Copy the shims next to the CLI, unless they are there (an official CLI ships them)."""
    missing = [(source, name) for source, name in SDK_SHIMS if not (cli.parent / name).exists()]
    if not missing:
        return
    sdk = f"github.com/pulumi/pulumi/sdk/v3@v{pinned_cli_version()}"
    module_dir = Path(
        json.loads(run_go(["mod", "download", "-json", sdk], "sdk shims", CLI_TOOL_MODULE, announce=False))["Dir"]
    )
    for source, name in missing:
        target = paths.TOOLS_BIN / name
        shutil.copyfile(module_dir / source, target)
        target.chmod(0o755)


def language_host_path(cli: Path) -> Path:
    beside_cli = cli.parent / LANGUAGE_HOST
    return beside_cli if beside_cli.exists() else paths.TOOLS_BIN / LANGUAGE_HOST


def ensure_language_host(cli: Path) -> Path:
    version = pinned_cli_version()
    host = language_host_path(cli)
    if reported_version([str(host), "-version"]) == version:
        return host
    mirror = plugin_sources.find_mirror()
    if mirror is None:
        raise UserError(missing_plugin_message(f"the Python language host {LANGUAGE_HOST} v{version}"))
    target = paths.TOOLS_BIN / LANGUAGE_HOST
    plugin_sources.build_language_host(mirror, version, target)
    if reported_version([str(target), "-version"]) != version:
        raise UserError(f"the built {target} does not report v{version}: remove .tools/ and bootstrap again.")
    return target


def installed_postgresql_plugin() -> Path:
    """Where `pulumi plugin install` puts the pinned plugin's binary."""
    home = Path(pulumi_env()["PULUMI_HOME"])
    version = pinned_postgresql_plugin_version()
    return home / "plugins" / f"resource-postgresql-v{version}" / "pulumi-resource-postgresql"


def has_postgresql_plugin() -> bool:
    """True when the pinned plugin is installed and says itself that it is that version."""
    binary = installed_postgresql_plugin()
    return binary.exists() and plugin_info.reported_version(binary) == pinned_postgresql_plugin_version()


def ensure_postgresql_plugin(cli: Path) -> None:
    """Installed already; else built from the source mirror; else from PULUMI_POSTGRESQL_PLUGIN_BINARY."""
    if has_postgresql_plugin():
        return
    version = pinned_postgresql_plugin_version()
    mirror = plugin_sources.find_mirror()
    named = os.environ.get(PLUGIN_BINARY_ENV)
    if mirror is not None:
        binary = plugin_sources.build_provider(mirror, version)
    elif named:
        binary = Path(named).expanduser()
    else:
        raise UserError(missing_plugin_message(f"the postgresql resource plugin v{version}"))
    found = plugin_info.reported_version(binary)
    if found != version:
        raise UserError(
            f"{binary} reports version {found}, not {version} (the version pulumi-postgresql in requirements.txt "
            "names): give a plugin binary of that version.",
            ExitCode.TOOLCHAIN,
        )
    install = [str(cli), "plugin", "install", "resource", "postgresql", version, "--file", str(binary)]
    result = subprocess.run(install, capture_output=True, text=True, env=pulumi_env())
    if result.returncode != 0 or not has_postgresql_plugin():
        raise UserError(f"`pulumi plugin install` failed: {result.stderr.strip()}", ExitCode.TOOLCHAIN)
    print(f"bootstrap: installed the postgresql resource plugin v{version}", file=sys.stderr)


def missing_plugin_message(what: str) -> str:
    return (
        f"{what} is not installed, and the Go module proxy does not serve its source. Fix: point "
        f"{plugin_sources.MIRROR_ENV} at a folder holding its source archive (the archives and sums are listed in "
        f"{plugin_sources.SUMS_FILE.relative_to(paths.REPO_ROOT)}) and run scripts/bootstrap again; or, with internet "
        f"access, install the official Pulumi CLI v{pinned_cli_version()} (it ships the language host) and run "
        f"`pulumi plugin install resource postgresql {pinned_postgresql_plugin_version()}`; or set "
        f"{PLUGIN_BINARY_ENV} to a pulumi-resource-postgresql binary of that version."
    )


def ensure() -> int:
    paths.TOOLS_BIN.mkdir(parents=True, exist_ok=True)
    cli = ensure_cli()
    ensure_sdk_shims(cli)
    ensure_language_host(cli)
    ensure_postgresql_plugin(cli)
    return 0
