"""Password rotation while clients log in every 20 ms and re-read the stack's outputs every second.

Measured: the failed logins across rotations of every runtime login in a row, with two logins per
role, against the baseline measured in the same run under the same clients: the program as it was
before (one login per role, its password replaced in place by the same raise of passwordRotations
and `pulumi up`). Also each scheme's seconds per rotation. Both rotate through plain Pulumi
(`pulumi config set --path`, `pulumi up --yes --skip-preview`), so the times compare the programs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fixtures.clients import ReconnectingClients
from fixtures.cluster import Server
from fixtures.one_login import one_login_stack
from fixtures.project_stack import ProjectStack, cleanup, project_stack
from infra.settings import NAMESPACE
from ops.localpg import embedded

RUNTIME_LOGINS = ("app", "logs_writer", "logs_reader")


@dataclass(frozen=True)
class RotationRun:
    scheme: str
    rotations: int
    logins: int
    failed_logins: int
    seconds_per_rotation: float
    first_failure: str


def rotate_with_pulumi(project: ProjectStack, rotation: int) -> None:
    for key in RUNTIME_LOGINS:
        raised = project.pulumi("config", "set", "--path", f"{NAMESPACE}:passwordRotations.{key}", str(rotation))
        assert raised.returncode == 0, raised.stderr
    deployed = project.pulumi("up", "--yes", "--skip-preview")
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]


def under_clients(scheme: str, project: ProjectStack, rotations: int) -> RotationRun:
    started = time.monotonic()
    with ReconnectingClients(project, RUNTIME_LOGINS) as clients:
        for rotation in range(2, rotations + 2):
            rotate_with_pulumi(project, rotation)
        clients.wait_for_reread()
    elapsed = time.monotonic() - started
    failures = [failure for tally in clients.tallies.values() for failure in tally.failures]
    logins = sum(tally.logins for tally in clients.tallies.values())
    return RotationRun(scheme, rotations, logins, len(failures), elapsed / rotations, failures[0] if failures else "")


def measure(server: Server, rotations: int) -> list[RotationRun]:
    with tempfile.TemporaryDirectory() as folder:
        for scheme in ("baseline", "pairs"):
            (Path(folder) / scheme).mkdir()
        baseline = project_stack(Path(folder) / "baseline", "benchrot", "benchrot")
        cleanup(baseline, server)
        try:
            in_place = under_clients(
                "one login per role (in place)", one_login_stack(baseline, Path(folder)), rotations
            )
        finally:
            cleanup(baseline, server)
        pairs = project_stack(Path(folder) / "pairs", "benchrot", "benchrot")
        cleanup(pairs, server)
        try:
            up = pairs.script("ops.commands.up", pairs.stack)
            assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
            two = under_clients("two logins per role", pairs, rotations)
        finally:
            cleanup(pairs, server)
    return [in_place, two]


def markdown(runs: list[RotationRun], date: str) -> str:
    baseline = runs[0]
    lines = [
        f"Password rotation ({date}, this machine, `python -m bench.rotation`): {baseline.rotations} rotations of "
        "every runtime login in a row, while a client per login logs in every 20 ms and re-reads the stack's "
        "outputs every second; the baseline is the program before two logins per role, rotated the same way.",
        "",
        "| scheme | logins tried | failed logins | seconds per rotation | vs baseline |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        ratio = run.seconds_per_rotation / baseline.seconds_per_rotation
        lines.append(
            f"| {run.scheme} | {run.logins:,} | {run.failed_logins:,} | {run.seconds_per_rotation:.1f} | {ratio:.2f}x |"
        )
    if baseline.first_failure:
        lines += ["", f"The baseline's first failed login: `{baseline.first_failure}`"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.rotation [--quick]`: 10 rotations (1 with --quick); a full run renders README's table."""
    from bench import fixture, run

    quick = fixture.quick_asked(argv)
    runs = measure(Server(embedded.start()), 1 if quick else 10)
    text = markdown(runs, time.strftime("%Y-%m-%d"))
    print(text)
    print([asdict(r) for r in runs], file=sys.stderr)
    if not quick:
        run.update_readme(text, run.ROTATION_BEGIN, run.ROTATION_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
