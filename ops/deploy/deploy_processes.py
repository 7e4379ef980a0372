"""The processes a deploy's engine starts, told apart from every other process on the machine.

The engine starts its plugins (the language host and the program it runs, the resource providers,
the dynamic providers, the policy pack) in process groups of their own, so a SIGKILL of a deploy's
group leaves them running once the deploy is gone. The next deploy ends them (recovery.py), and
nothing else: a PostgreSQL server, a shell or a job started from a shell of `eval "$(scripts/env)"`
has the same PULUMI_BACKEND_URL in its environment, and must live on. A process counts as a plugin
of a dead deploy only when both hold:

- its environment has DEPLOY_VARIABLE naming the stack and a deploy that no longer runs. Every
  deploy sets it in its engine's environment alone (never in its own, and `scripts/env` never
  prints it), so only what that engine started, and their children, inherit it;
- it runs a program of the toolchain: the CLI's folder, `.tools/bin`, PULUMI_HOME's plugins, or the
  project virtualenv's python (which runs the program, the dynamic providers and the policy pack).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ops import paths

DEPLOY_VARIABLE = "HEADHUNTER_DEPLOY"
# /proc/PID/stat after the command name: the state is field 0, the parent 1, the start time (in clock
# ticks since boot) 19; a pid and its start time name one process, even after the pid is reused.
STATE_FIELD, START_TIME_FIELD = 0, 19


@dataclass(frozen=True)
class DeployProcess:
    """A process of the machine as far as the recovery needs it."""

    pid: int
    environment: dict[str, str]
    command: list[str]
    executable: str


def process_status(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, parent pid, process group, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def deploy_marker(stack: str) -> str:
    """DEPLOY_VARIABLE's value for the engine of this process's deploy of `stack`."""
    pid = os.getpid()
    return f"{stack}:{pid}:{process_status(pid)[START_TIME_FIELD]}"


def deploy_runs(marker: str) -> bool:
    """Whether the deploy a marker names still runs (a zombie has exited; a reused pid is another process)."""
    _, pid, started = ["", "", "", *marker.split(":")][-3:]
    if not pid.isdigit():
        return True  # not a marker a deploy wrote: what carries it is left alone
    try:
        fields = process_status(int(pid))
    except OSError:
        return False
    return fields[STATE_FIELD] not in ("Z", "X") and fields[START_TIME_FIELD] == started


def toolchain_folders(pulumi_home: str, cli: Path) -> tuple[Path, ...]:
    """Where the programs a deploy's engine starts live (PULUMI_HOME's plugins as the engine's env names it)."""
    folders = (cli.parent, paths.TOOLS_BIN, Path(pulumi_home) / "plugins", paths.REPO_ROOT / ".venv" / "bin")
    return tuple(folder.resolve() for folder in folders)


def runs_toolchain_program(process: DeployProcess, folders: tuple[Path, ...]) -> bool:
    """The executable, or the program an interpreter runs (`sh SHIM`, `python -u SCRIPT`), is the toolchain's.

    A folder is resolved, not the file: the virtualenv's python links to the system's interpreter.
    """
    candidates = [process.executable, *process.command[:3]]
    for candidate in (Path(path) for path in candidates if path.startswith("/")):
        parent = candidate.parent.resolve()
        if any(parent == folder or folder in parent.parents for folder in folders):
            return True
    return False


def read_process(pid: int) -> DeployProcess | None:
    """A process's environment, command line and executable; None when it is gone or not ours to read."""
    proc = Path(f"/proc/{pid}")
    try:
        raw = (proc / "environ").read_bytes().split(b"\0")
        command = (proc / "cmdline").read_text().split("\0")
        executable = os.readlink(proc / "exe")
    except OSError:
        return None
    pairs = (entry.decode(errors="replace").partition("=") for entry in raw if b"=" in entry)
    return DeployProcess(pid, {key: value for key, _, value in pairs}, command, executable)


def plugins_of_dead_deploys(stack: str, backend_url: str, folders: tuple[Path, ...]) -> Iterator[DeployProcess]:
    """The processes the engines of this stack's dead deploys on this backend started, still running."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        process = read_process(int(proc.name))
        if process is None or not is_plugin_of_dead_deploy(process, stack, backend_url, folders):
            continue
        yield process


def is_plugin_of_dead_deploy(process: DeployProcess, stack: str, backend_url: str, folders: tuple[Path, ...]) -> bool:
    marker = process.environment.get(DEPLOY_VARIABLE, "")
    if marker.rsplit(":", 2)[0] != stack or process.environment.get("PULUMI_BACKEND_URL") != backend_url:
        return False
    return not deploy_runs(marker) and runs_toolchain_program(process, folders)


def end_process(process: DeployProcess, stack: str, backend_url: str, folders: tuple[Path, ...]) -> bool:
    """SIGKILL the process, checked again through a pidfd, so a pid reused since the scan is never hit."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return False
    try:
        again = read_process(process.pid)  # the pidfd holds this pid: what it reads now is what gets the signal
        if again is None or not is_plugin_of_dead_deploy(again, stack, backend_url, folders):
            return False
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    finally:
        os.close(pidfd)
