"""The deploy program's reading of a tree's head, held to Alembic's own answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from migrations.shared.heads import declared_head, default_location
from migrations.shared.tree import TREES


def alembic_heads(script_location: Path) -> list[str]:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    return sorted(ScriptDirectory.from_config(config).get_heads())


def write_tree(folder: Path, revisions: dict[str, str]) -> Path:
    """A tree whose revision files hold `revisions` (file stem -> module body)."""
    (folder / "versions").mkdir(parents=True)
    (folder / "script.py.mako").write_text("")
    for stem, body in revisions.items():
        (folder / "versions" / f"{stem}.py").write_text(body)
    return folder


@pytest.mark.parametrize("key", sorted(TREES))
def test_each_shipped_tree_has_the_head_alembic_finds(key: str) -> None:
    assert [declared_head(default_location(key))] == alembic_heads(default_location(key))


def test_a_merge_revision_is_the_head_of_both_branches(tmp_path: Path) -> None:
    tree = write_tree(
        tmp_path,
        {
            "a": 'revision = "a"\ndown_revision = None\n',
            "b": 'revision: str = "b"\ndown_revision: str | None = "a"\n',
            "c": 'revision: str = "c"\ndown_revision: str | None = "a"\n',
            "m": 'revision: str = "m"\ndown_revision: tuple[str, str] = (\n    "b",\n    "c",\n)\n',
        },
    )
    assert [declared_head(tree)] == alembic_heads(tree) == ["m"]


def test_two_heads_are_refused_by_name(tmp_path: Path) -> None:
    tree = write_tree(
        tmp_path,
        {
            "a": 'revision = "a"\ndown_revision = None\n',
            "b": 'revision = "b"\ndown_revision = "a"\n',
            "c": 'revision = "c"\ndown_revision = "a"\n',
        },
    )
    assert alembic_heads(tree) == ["b", "c"]
    with pytest.raises(RuntimeError, match=r"2 heads \(b, c\): merge them first"):
        declared_head(tree)
