"""An applied revision is a frozen snapshot: no revision file imports the live model or settings.

A revision that reads model/ (or infra/, which reads the stack's settings) does something else on the next
fresh database once that code changes: logs_0004 read model.log_lifecycle.PARTITION_INTERVALS, so a third
partitioned log table added to the model would have broken every fresh deploy at logs_0004. The imports are
read with ast, without importing anything, and followed through the project's own modules a revision
imports (migrations.shared.*), so a tie through a helper counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ops.paths import REPO_ROOT

LIVE_PACKAGES = ("model", "infra")
REVISIONS = sorted((REPO_ROOT / "migrations").glob("*/versions/*.py"))


def imported_modules(path: Path) -> list[str]:
    """Every module a file imports, anywhere in it (inside a function or under TYPE_CHECKING too)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            # `from migrations.shared import partitions` imports the module migrations.shared.partitions.
            found += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return found


def project_file(module: str) -> Path | None:
    """The project's own file for a module name; None for a library (or a name that is not a module)."""
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def live_imports(path: Path) -> list[list[str]]:
    """Each chain of imports from the file to a module of model/ or infra/, through the project's modules."""
    chains: list[list[str]] = []
    seen: set[Path] = set()
    pending: list[tuple[Path, list[str]]] = [(path, [path.name])]
    while pending:
        current, chain = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for module in imported_modules(current):
            if module.split(".")[0] in LIVE_PACKAGES:
                chains.append([*chain, module])
            elif (found := project_file(module)) is not None:
                pending.append((found, [*chain, module]))
    return chains


def test_both_trees_have_revisions() -> None:
    assert {path.parent.parent.name for path in REVISIONS} == {"main", "logs"}


@pytest.mark.parametrize("revision", REVISIONS, ids=lambda path: path.stem)
def test_no_revision_imports_the_live_model_or_settings(revision: Path) -> None:
    chains = [" -> ".join(chain) for chain in live_imports(revision)]
    assert chains == [], (
        f"{revision.name} imports live code that may change after it is applied: {chains}. Copy the values "
        "it needs into the revision (frozen as they are today), or pass them in to the helper it calls."
    )


def test_an_import_through_a_helper_is_followed(tmp_path: Path) -> None:
    """The check itself: a revision importing a project module that imports model/ is caught, with its chain."""
    revision = tmp_path / "x_0001_helper.py"
    revision.write_text("from migrations.shared import phases\nfrom migrations.shared.tree import LOGS\n")
    chains = live_imports(revision)
    assert ["x_0001_helper.py", "migrations.shared.tree", "model.names"] in chains
