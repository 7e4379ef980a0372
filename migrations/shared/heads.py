"""A tree's head, read from its revision files without importing Alembic.

The deploy program needs the head only to tell the engine when a tree must run again; importing
Alembic and SQLAlchemy for it cost the program process a fifth of a second on every `pulumi up`.
Each revision file assigns `revision` and `down_revision` at module level (Alembic's own
template); those literals are all this reads. tests/unit/test_heads.py holds it to Alembic's answer.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Mapping
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent


def default_location(tree_key: str) -> Path:
    """Where a tree lives in this repository (alembic.ini's script_location for its section)."""
    return MIGRATIONS_DIR / tree_key


MIGRATIONS_COPY_ENV_VAR = "HEADHUNTER_MIGRATIONS_DIR"
"""A folder with a copy of both trees (main/, logs/) to deploy, migrate and verify instead of this
checkout's: the benchmark's grown logs tree, a release's trees."""


def migrations_copy_folder(environ: Mapping[str, str]) -> Path | None:
    folder = environ.get(MIGRATIONS_COPY_ENV_VAR)
    return Path(folder) if folder else None


def copy_location(tree_key: str) -> Path | None:
    """The copy of a tree that MIGRATIONS_COPY_ENV_VAR names, else None (the commands' and the
    tests' way; the program reads it through infra.settings.ProgramEnvironment)."""
    folder = migrations_copy_folder(os.environ)
    return folder / tree_key if folder else None


def declared_head(script_location: Path) -> str:
    """The one revision no other revision of the tree revises; a tree with several heads is refused."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted((script_location / "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue  # Alembic skips it too
        declared = module_literals(path, ("revision", "down_revision"))
        if "revision" not in declared:
            raise RuntimeError(
                f"{path} declares no `revision`: Alembic refuses such a tree too; move it out of versions/"
            )
        revisions.add(str(declared["revision"]))
        revised.update(as_revision_ids(declared.get("down_revision")))
    heads = sorted(revisions - revised)
    if len(heads) != 1:
        raise RuntimeError(
            f"the tree in {script_location} has {len(heads)} heads ({', '.join(heads)}): merge them first."
        )
    return heads[0]


def module_literals(path: Path, names: tuple[str, ...]) -> dict[str, object]:
    """The module-level literals `names` are assigned. Each is found by its line first (a tree of
    500 revisions is read in milliseconds); a file where that fails is parsed whole."""
    text = path.read_text()
    found: dict[str, object] = {}
    for name in names:
        match = re.search(rf"^{name}\b[^=\n]*=(.+)$", text, re.MULTILINE)
        if match is None:
            continue
        try:
            found[name] = ast.literal_eval(match[1].strip())
        except (ValueError, SyntaxError):  # a value over several lines
            return parsed_literals(text, path, names)
    return found


def parsed_literals(text: str, path: Path, names: tuple[str, ...]) -> dict[str, object]:
    found: dict[str, object] = {}
    for node in ast.parse(text, str(path)).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        else:
            continue
        if target in names:
            found[target] = ast.literal_eval(value)
    return found


def as_revision_ids(down_revision: object) -> list[str]:
    """down_revision is None (the first revision), one id, or a tuple of ids (a merge)."""
    if down_revision is None:
        return []
    if isinstance(down_revision, str):
        return [down_revision]
    if isinstance(down_revision, (tuple, list)):
        return [str(revision) for revision in down_revision]
    raise ValueError(f"down_revision must be None, a revision id or a tuple of them, not {down_revision!r}")
