"""`scripts/mutate [TARGET...]`: mutation testing of the product code, a module or a folder at a time.

Each mutant (tools/mutate/operators.py: one statement deleted, one condition removed, one bound
moved, one entry dropped...) is written into a scratch copy of the last commit, never into this
checkout, where other work goes on; then the module's stages run there (tools/mutate/stages.py,
cheapest first, on an embedded server of the copy's own). A mutant that every stage lets pass
survives. Survivors are printed as they are found (file:line, operator, the line before and after)
and each module's result is written to reports/mutation/<module>.json; reports/mutation.md sums
up every module's latest result, whichever run wrote it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ops import paths
from ops.commands import cli
from ops.errors import ExitCode, UserError, run_main
from tools.mutate import stages
from tools.mutate.operators import Mutant, mutants

REPORTS = paths.REPO_ROOT / "reports" / "mutation"
SUMMARY = paths.REPO_ROOT / "reports" / "mutation.md"
# Per mutant and stage: a mutant that loops forever is killed by the timeout. The longest stage
# deploys a few stacks through the real engine.
TIMEOUT_S = 900.0
# What the copy borrows from this checkout rather than rebuilds: the virtualenv and the toolchain.
BORROWED = (".venv", ".tools")


@dataclass(frozen=True)
class Survivor:
    module: str
    line: int
    operator: str
    original_line: str
    mutated_line: str

    @property
    def equivalent_because(self) -> str | None:
        return stages.EQUIVALENT.get((self.module, self.original_line, self.mutated_line))

    def __str__(self) -> str:
        return f"{self.module}:{self.line} {self.operator}: `{self.original_line}` -> `{shortened(self.mutated_line)}`"


def shortened(line: str, limit: int = 160) -> str:
    """A literal of many lines is one long line once mutated: its start says which it is."""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def targets(requested: list[str]) -> list[str]:
    """The modules named, each folder (`model/`, `migrations/shared`) standing for its modules."""
    if not requested:
        return list(stages.STAGES)
    found: list[str] = []
    for target in requested:
        folder = target.rstrip("/") + "/"
        matched = [module for module in stages.STAGES if module == target or module.startswith(folder)]
        if not matched:
            raise UserError(
                f"scripts/mutate knows no module or folder {target!r}: name a product module or folder "
                "as scripts/mutate --list shows them (e.g. infra/settings.py, model/). Nothing was run."
            )
        found += [module for module in matched if module not in found]
    return found


def mutants_of(module: str, tree: Path = paths.REPO_ROOT) -> list[Mutant]:
    return mutants(module, (tree / module).read_text())


@contextmanager
def scratch_copy() -> Iterator[tuple[Path, str]]:
    """The last commit unpacked into a temporary folder (with its commit id); its embedded server
    stopped and the folder removed afterwards, also after an interruption."""
    commit = git("rev-parse", "HEAD").strip()
    tree = Path(tempfile.mkdtemp(prefix="headhunter-mutate-"))
    try:
        archive = subprocess.run(["git", "archive", commit], cwd=paths.REPO_ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        for name in BORROWED:
            (tree / name).symlink_to(paths.REPO_ROOT / name)
        yield tree, commit
    finally:
        cluster_link = tree / ".state" / "cluster"  # the copy's server lives outside it (ops/localpg/embedded.py)
        if cluster_link.is_symlink():
            stop = [sys.executable, "-m", "ops.commands.localpg", "stop"]
            subprocess.run(stop, cwd=tree, env=stages.scratch_environment(tree), capture_output=True)
            shutil.rmtree(cluster_link.resolve(), ignore_errors=True)
        shutil.rmtree(tree, ignore_errors=True)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True, check=True).stdout


def mutate(module: str, tree: Path, commit: str) -> list[Survivor]:
    """Every mutant of one module judged in the copy; the result goes to reports/mutation/."""
    started = time.monotonic()
    if not (tree / module).exists():
        raise UserError(
            f"{module} is not in commit {commit[:12]}: scripts/mutate judges committed code, commit it first."
        )
    if failing := stages.failing_stage(module, tree, TIMEOUT_S):
        raise UserError(
            f"{module}: stage {failing} ({' '.join(stages.STAGES[module][failing - 1])}) fails at {commit[:12]} "
            "without any mutant, so it cannot judge one: make it pass first (python -m tools.mutate.stages "
            f"{module}).",
            ExitCode.UNEXPECTED,
        )
    original = (tree / module).read_text()
    found = mutants(module, original)
    alive: list[Survivor] = []
    try:
        for number, mutant in enumerate(found, start=1):
            (tree / module).write_text(mutant.source)
            if stages.failing_stage(module, tree, TIMEOUT_S) is None:
                survivor = survivor_of(mutant, original)
                alive.append(survivor)
                print(f"survived {survivor}", flush=True)
            print(f"mutate: {module} {number}/{len(found)}", file=sys.stderr, flush=True)
    finally:
        (tree / module).write_text(original)
    result = {
        "module": module,
        "commit": commit,
        "mutants": len(found),
        "survivors": [asdict(survivor) for survivor in alive],
        "minutes": (time.monotonic() - started) / 60,
    }
    report_file(module).write_text(json.dumps(result, indent=1) + "\n")
    return alive


def survivor_of(mutant: Mutant, original: str) -> Survivor:
    original_line = original.splitlines()[mutant.line - 1].strip()
    return Survivor(mutant.module, mutant.line, mutant.operator, original_line, mutant.mutated_line)


def report_file(module: str) -> Path:
    return REPORTS / f"{module.replace('/', '_').removesuffix('.py')}.json"


def write_summary() -> str:
    """reports/mutation.md from every module's latest result, whichever run wrote it."""
    lines = [
        "# Mutation testing (scripts/mutate)",
        "",
        "| module | commit | mutants | killed | survived | of which equivalent | score | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    alive: list[Survivor] = []
    equivalent: list[Survivor] = []
    for module in [module for module in stages.STAGES if report_file(module).exists()]:
        result = json.loads(report_file(module).read_text())
        found = [Survivor(**survivor) for survivor in result["survivors"]]
        same = [survivor for survivor in found if survivor.equivalent_because]
        equivalent += same
        alive += [survivor for survivor in found if not survivor.equivalent_because]
        total, survived = result["mutants"], len(found)
        score = f"{100 * (total - survived) / total:.1f}%" if total else "-"
        lines.append(
            f"| `{module}` | {result['commit'][:12]} | {total} | {total - survived} | {survived} | {len(same)} "
            f"| {score} | {result['minutes']:.1f} |"
        )
    lines += ["", "## Survivors no test notices (each needs a test, or a reason in tools/mutate/stages.py)", ""]
    lines += [f"- {survivor}" for survivor in alive] or ["None."]
    lines += ["", "## Equivalent survivors", ""]
    lines += [f"- {survivor}: {survivor.equivalent_because}" for survivor in equivalent] or ["None."]
    SUMMARY.write_text("\n".join(lines) + "\n")
    return SUMMARY.read_text()


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("mutate", sys.argv[1:] if argv is None else argv)
    modules = targets(args.modules)
    if args.list:
        for module in modules:
            plan = " then ".join(" ".join(stage) for stage in stages.STAGES[module])
            print(f"{module} ({len(mutants_of(module))} mutants): {plan}")
        return ExitCode.OK
    REPORTS.mkdir(parents=True, exist_ok=True)
    with scratch_copy() as (tree, commit):
        print(f"mutate: {len(modules)} modules of {commit[:12]}, in {tree}", file=sys.stderr, flush=True)
        for module in modules:
            mutate(module, tree, commit)
    print(write_summary())
    return ExitCode.OK


if __name__ == "__main__":
    run_main(main)
