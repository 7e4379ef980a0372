"""A copy of the main tree with one fixture revision after its head, judged by the gate: no server needed,
the gate reads the revision's offline SQL."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.revisions import revision_file
from migrations import gate
from migrations.shared.heads import declared_head, default_location
from migrations.shared.tree import MAIN

REVISION = "main_9001"
IMPORTS = "import sqlalchemy as sa\nfrom alembic import op\nfrom sqlalchemy.dialects import postgresql"
TIMEOUTS = "op.execute(\"SET lock_timeout = '2s'\")\nop.execute(\"SET statement_timeout = '1min'\")\n"
"""What a careful revision sets first, whatever env.py's script sets, so a fixture breaks only its own rule."""

Judge = Callable[..., gate.Verdict]


def tree_with(folder: Path, upgrade: str, module_lines: str = "") -> Path:
    """A copy of the main tree whose head is followed by a revision running `upgrade`."""
    tree = folder / "main"
    shutil.copytree(default_location(MAIN.key), tree, ignore=shutil.ignore_patterns("__pycache__"))
    text = revision_file(REVISION, "A fixture revision of the gate's tests.", upgrade, imports=IMPORTS)
    text = text.replace("{down}", declared_head(tree)).replace(
        "depends_on = None\n", f"depends_on = None\n{module_lines}"
    )
    (tree / "versions" / f"{REVISION}_fixture.py").write_text(text)
    return tree


@pytest.fixture
def judge(tmp_path: Path) -> Judge:
    """judge(upgrade, module_lines=...): the gate's verdict on a fixture revision whose upgrade() runs `upgrade`
    after setting both timeouts; module_lines are put at module level (phase, gate_waivers)."""

    def judged(upgrade: str, module_lines: str = "", timeouts: bool = True) -> gate.Verdict:
        folder = Path(tempfile.mkdtemp(dir=tmp_path))  # a test may judge several revisions
        tree = tree_with(folder, (TIMEOUTS if timeouts else "") + upgrade, module_lines)
        return gate.judge(MAIN, [REVISION], tree)

    return judged


def rules_of(verdict: gate.Verdict) -> set[str]:
    return {finding.rule for finding in verdict.findings}
