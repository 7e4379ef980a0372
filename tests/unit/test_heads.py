"""The deploy program's reading of a tree's head, held to Alembic's own answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from migrations.shared.heads import copy_location, declared_head, default_location
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


def test_a_plain_assignment_over_several_lines_is_read(tmp_path: Path) -> None:
    tree = write_tree(
        tmp_path,
        {
            "a": 'revision = "a"\ndown_revision = None\n',
            "b": 'revision = "b"\ndown_revision = "a"\n',
            "c": 'revision = "c"\ndown_revision = "a"\n',
            "m": 'import os\nrevision = "m"\ndown_revision = (\n    "b",\n    "c",\n)\nx = y = 1\n',
        },
    )
    assert [declared_head(tree)] == alembic_heads(tree) == ["m"]


def test_a_tree_without_revisions_is_refused(tmp_path: Path) -> None:
    tree = write_tree(tmp_path, {})
    with pytest.raises(RuntimeError, match="has 0 heads"):
        declared_head(tree)


def test_a_file_without_a_revision_is_refused_as_alembic_refuses_it(tmp_path: Path) -> None:
    tree = write_tree(tmp_path, {"_helpers": "X = 1\n", "a": 'revision = "a"\ndown_revision = None\n'})
    with pytest.raises(RuntimeError, match=r"_helpers\.py declares no `revision`"):
        declared_head(tree)
    (tmp_path / "versions" / "_helpers.py").unlink()
    (tmp_path / "versions" / "__init__.py").write_text("")
    # Alembic's default file names start with the hexadecimal revision id, digits included.
    (tmp_path / "versions" / "3b5f7a8c9d2e_next.py").write_text('revision = "3b5f7a8c9d2e"\ndown_revision = "a"\n')
    (tmp_path / "versions" / "z_last.py").write_text('revision = "z"\ndown_revision = "3b5f7a8c9d2e"\n')
    assert [declared_head(tree)] == alembic_heads(tree) == ["z"]  # read on past __init__.py


def test_a_copy_of_the_trees_is_named_by_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HEADHUNTER_MIGRATIONS_DIR", raising=False)
    assert copy_location("logs") is None
    monkeypatch.setenv("HEADHUNTER_MIGRATIONS_DIR", str(tmp_path))
    assert copy_location("logs") == tmp_path / "logs"
