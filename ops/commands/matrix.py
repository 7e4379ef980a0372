"""`scripts/test --versions MAJORS`: the version-matrix stage, the tests marked `matrix` on each major.

Each major gets an embedded server of its own (a state folder `.state/matrix-<major>`, so the
checkout's own cluster is left alone), made from Debian's packages or the pinned npm build
(ops/localpg/server_builds.py); the tests run against it with the real engine and provider, as
the whole suite does on the default major. Writes reports/junit-pg<major>.xml and
reports/matrix.json (each major's outcome and time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from infra.embedded_server import STATE_DIR_ENV_VAR
from ops import paths
from ops.commands import cli
from ops.errors import run_main
from ops.localpg import embedded

MATRIX_MARK = "matrix"
# The shared state backend is the same on every major (the engine's own table): its cases run once, in the whole suite.
MATRIX_SELECTION = f"{MATRIX_MARK} and not shared_backend"


def run_major(major: int, pytest_args: list[str]) -> tuple[int, float]:
    env = dict(os.environ)
    env[STATE_DIR_ENV_VAR] = str(paths.REPO_ROOT / ".state" / f"matrix-{major}")
    env[embedded.MAJOR_ENV_VAR] = str(major)
    python = [sys.executable, "-m"]
    started = time.monotonic()
    print(f"test: the version-matrix stage on PostgreSQL {major}", file=sys.stderr, flush=True)
    subprocess.run([*python, "ops.commands.localpg", "start", "--major", str(major)], env=env, check=True)
    try:
        junit = f"--junit-xml={paths.REPO_ROOT / 'reports' / f'junit-pg{major}.xml'}"
        tests = subprocess.run([*python, "pytest", "-m", MATRIX_SELECTION, junit, *pytest_args], env=env)
    finally:
        subprocess.run([*python, "ops.commands.localpg", "stop"], env=env)
    return tests.returncode, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("test", sys.argv[1:] if argv is None else argv)
    assert args.versions, "scripts/test runs the whole suite itself; this is its --versions stage"
    pytest_args = (["-m", "not slow"] if args.fast else []) + list(args.pytest_args)
    (paths.REPO_ROOT / "reports").mkdir(exist_ok=True)
    outcome = {}
    for major in args.versions:
        code, seconds = run_major(major, pytest_args)
        outcome[str(major)] = {"exit_code": code, "seconds": round(seconds)}
    (paths.REPO_ROOT / "reports" / "matrix.json").write_text(json.dumps(outcome, indent=2) + "\n")
    for major, result in outcome.items():
        verdict = "passed" if result["exit_code"] == 0 else f"failed (pytest exit {result['exit_code']})"
        minutes, seconds = divmod(result["seconds"], 60)
        print(f"test: PostgreSQL {major}: the matrix stage {verdict} in {minutes}m{seconds:02d}s")
    # pytest's own exit code (1: tests failed), as scripts/test's whole run ends with.
    return next((result["exit_code"] for result in outcome.values() if result["exit_code"]), 0)


if __name__ == "__main__":
    run_main(main)
