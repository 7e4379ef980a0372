"""Run Go builds for the toolchain: the machine's Go, module mode, progress lines, a log per build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path

from ops import paths
from ops.errors import ExitCode, UserError

PROGRESS_EVERY_S = 20.0


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
            "Go is not installed: install Go 1.26 or later (https://go.dev/doc/install) so bootstrap can build the "
            "Pulumi toolchain, or install the pinned Pulumi CLI and plugins yourself (see README, The toolchain).",
            ExitCode.TOOLCHAIN,
        )
    return go


def run_go(
    args: list[str], component: str, cwd: Path, extra_env: Mapping[str, str] | None = None, announce: bool = True
) -> str:
    """`go ARGS` in `cwd`; returns its standard output. A failure names the log and the fix.

    A build is announced with progress lines; a quick step (announce=False) runs silently.
    """
    log = paths.TOOLS_DIR / "logs" / f"{component.replace(' ', '-')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # Module mode resolves what a go.sum lacks from the proxy (checked against the checksum database);
    # GOTOOLCHAIN=local never downloads another Go.
    env = dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local", **(extra_env or {}))
    with progress(component) if announce else nullcontext(), open(log, "w") as out:
        result = subprocess.run([go_binary(), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=out, text=True, env=env)
    if result.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise UserError(
            f"building {component} failed (full log: {log}):\n{tail}\n"
            "Fix: check that the Go module proxy is reachable (GOPROXY) and that `go version` is 1.26 or "
            "later, then run scripts/bootstrap again; it resumes from Go's caches.",
            ExitCode.TOOLCHAIN,
        )
    return result.stdout
