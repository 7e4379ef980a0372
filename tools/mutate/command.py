"""`scripts/mutate [MODULE...]`: mutation testing of infra/ and migrations/shared/ with cosmic-ray.

cosmic-ray rewrites one module at a time, one small change (an operator, a constant, a condition)
per run, and runs the module's test stages (tools/mutate/stages.py) against it; a change that every stage
lets pass survives. It rewrites the files in place, so it runs only on a working tree whose
targets are committed, and `git checkout` puts each module back afterwards even when a run is
interrupted. Each module's report (every surviving mutant with its diff) is written to
reports/mutation/, and the scores to reports/mutation.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ops import paths
from ops.commands import cli
from ops.errors import ExitCode, UserError, run_main
from tools.mutate import stages

VENV = paths.TOOLS_DIR / "mutate-venv"
REQUIREMENTS = paths.REPO_ROOT / "tools" / "mutate" / "requirements.txt"
WORK_DIR = paths.REPO_ROOT / ".mutate"
REPORTS = paths.REPO_ROOT / "reports" / "mutation"
SUMMARY = paths.REPO_ROOT / "reports" / "stages.md"
TIMEOUT_S = 900  # per mutant: the longest stage deploys a few stacks through the real engine


def mutation_venv() -> Path:
    """cosmic-ray's own virtualenv, installed from the hash-pinned requirements when missing."""
    marker = VENV / ".installed-from"
    wanted = REQUIREMENTS.read_text()
    if not marker.exists() or marker.read_text() != wanted:
        print("mutate: installing cosmic-ray into .tools/mutate-venv", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "--require-hashes"]
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
        marker.write_text(wanted)
    return VENV / "bin"


def check_committed(modules: list[str]) -> None:
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", *modules], cwd=paths.REPO_ROOT, capture_output=True, text=True
    ).stdout.strip()
    if changed:
        raise UserError(
            f"scripts/mutate rewrites these files in place, and they have changes that are not committed:\n{changed}\n"
            "commit or stash them first. Nothing was changed.",
            ExitCode.BAD_INPUT,
        )


def config_for(module: str) -> str:
    excluded = ", ".join(f'"{pattern}"' for pattern in stages.EXCLUDED_OPERATORS)
    return (
        "[cosmic-ray]\n"
        f'module-path = "{module}"\n'
        f"timeout = {TIMEOUT_S}.0\n"
        "excluded-modules = []\n"
        f'test-command = "{sys.executable} -m tools.mutate.stages {module}"\n'
        '[cosmic-ray.distributor]\nname = "local"\n'
        f"[cosmic-ray.filters.operators-filter]\nexclude-operators = [{excluded}]\n"
    )


def mutate(module: str, tools: Path) -> None:
    """Run every mutant of one module; its report and its counts go to reports/mutation/."""
    name = module.replace("/", "_").removesuffix(".py")
    config, session = WORK_DIR / f"{name}.toml", WORK_DIR / f"{name}.sqlite"
    config.write_text(config_for(module))
    session.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        run = [str(tools / "cosmic-ray"), "init", str(config), str(session)]
        subprocess.run(run, cwd=paths.REPO_ROOT, check=True, capture_output=True)
        filtered = [str(tools / "cr-filter-operators"), str(session), str(config)]
        subprocess.run(filtered, cwd=paths.REPO_ROOT, check=True, capture_output=True)
        print(f"mutate: {module}", file=sys.stderr, flush=True)
        subprocess.run([str(tools / "cosmic-ray"), "exec", str(config), str(session)], cwd=paths.REPO_ROOT, check=True)
    finally:
        subprocess.run(["git", "checkout", "--", module], cwd=paths.REPO_ROOT, check=True)
    report = subprocess.run(
        [str(tools / "cr-report"), "--surviving-only", "--show-diff", str(session)],
        cwd=paths.REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report_file(module).write_text(report)
    total, survived = counts(report)
    minutes = (time.monotonic() - started) / 60
    report_file(module).with_suffix(".json").write_text(
        json.dumps({"mutants": total, "survived": survived, "minutes": minutes})
    )


@dataclass(frozen=True)
class Survivor:
    module: str
    operator: str
    mutated_line: str
    """The line as the mutant has it (the `+` line of cosmic-ray's diff)."""

    @property
    def equivalent_because(self) -> str | None:
        return stages.EQUIVALENT.get((self.module, self.mutated_line))


def survivors(report: str) -> list[Survivor]:
    """The surviving mutants of a `cr-report --surviving-only --show-diff` report."""
    found = []
    for block in report.split("[job-id]")[1:]:
        lines = block.splitlines()
        module, operator = lines[1].split()[:2]
        added = [line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")]
        found.append(Survivor(module, operator, added[0] if added else ""))
    return found


def counts(report: str) -> tuple[int, int]:
    """(completed mutants, surviving mutants) from cr-report's closing lines."""
    complete = re.search(r"complete: (\d+)", report)
    surviving = re.search(r"surviving mutants: (\d+)", report)
    return (int(complete[1]) if complete else 0, int(surviving[1]) if surviving else 0)


def write_summary() -> None:
    """reports/mutation.md from every module's latest report, whichever run wrote it."""
    lines = [
        "# Mutation testing (scripts/mutate)",
        "",
        "| module | mutants | killed | survived | of which equivalent | score | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    alive: list[Survivor] = []
    equivalent: list[Survivor] = []
    for module in [module for module in stages.STAGES if report_file(module).exists()]:
        report = report_file(module).read_text()
        total, survived = counts(report)
        timing = report_file(module).with_suffix(".json")
        minutes = f"{json.loads(timing.read_text())['minutes']:.1f}" if timing.exists() else "-"
        found = survivors(report)
        equivalent += [s for s in found if s.equivalent_because]
        alive += [s for s in found if not s.equivalent_because]
        same = sum(1 for s in found if s.equivalent_because)
        score = f"{100 * (total - survived) / total:.1f}%" if total else "-"
        lines.append(f"| `{module}` | {total} | {total - survived} | {survived} | {same} | {score} | {minutes} |")
    lines += ["", "## Survivors no test notices (each needs a test, or a reason in tools/mutate/stages.py)", ""]
    lines += [f"- `{s.module}` {s.operator}: `{s.mutated_line}`" for s in alive] or ["None."]
    lines += ["", "## Equivalent survivors", ""]
    lines += [f"- `{s.module}` `{s.mutated_line}`: {s.equivalent_because}" for s in equivalent] or ["None."]
    lines += ["", "Each module's survivors, with their diffs: `reports/mutation/<module>.txt`."]
    SUMMARY.write_text("\n".join(lines) + "\n")


def report_file(module: str) -> Path:
    return REPORTS / f"{module.replace('/', '_').removesuffix('.py')}.txt"


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("mutate", sys.argv[1:] if argv is None else argv)
    unknown = [module for module in args.modules if module not in stages.STAGES]
    if unknown:
        raise UserError(f"not a module scripts/mutate knows: {', '.join(unknown)} (see scripts/mutate --list)")
    modules = args.modules or list(stages.STAGES)
    if args.list:
        for module in modules:
            print(f"{module}: " + " then ".join(" ".join(stage) for stage in stages.STAGES[module]))
        return ExitCode.OK
    check_committed(modules)
    tools = mutation_venv()
    WORK_DIR.mkdir(exist_ok=True)
    REPORTS.mkdir(parents=True, exist_ok=True)
    for module in modules:
        mutate(module, tools)
    write_summary()
    print(SUMMARY.read_text())
    return ExitCode.OK


if __name__ == "__main__":
    run_main(main)
