"""What verify expects of a tree's version table (infra.migration_preview.target_difference): where a deploy
with the stack's headhunter-db:contractThrough leaves it, as the worked example's tree copy shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.expand_contract import BACKFILL_REVISION, CHECK_REVISION, CONTRACT_REVISION, example_trees
from infra.migration_preview import NOT_IN_TREE, target_difference
from migrations.shared.heads import declared_head, default_location
from migrations.shared.tree import LOGS, MAIN


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_trees(tmp_path_factory.mktemp("trees")) / "main"


def test_a_waiting_contract_revision_is_no_difference_and_the_revision_before_it_is_the_target(example: Path) -> None:
    assert target_difference(MAIN, example, [CHECK_REVISION], None) is None
    behind = target_difference(MAIN, example, [BACKFILL_REVISION], None)
    assert behind is not None and f"behind {CHECK_REVISION}" in behind and f"{CHECK_REVISION} not applied" in behind


def test_once_the_key_lets_the_contract_run_the_revision_before_it_is_behind(example: Path) -> None:
    behind = target_difference(MAIN, example, [CHECK_REVISION], CONTRACT_REVISION)
    assert behind is not None and f"behind {CONTRACT_REVISION}" in behind
    assert target_difference(MAIN, example, [CONTRACT_REVISION], CONTRACT_REVISION) is None
    assert target_difference(MAIN, example, [CONTRACT_REVISION], "head") is None


def test_a_contract_that_ran_before_the_key_was_unset_is_no_difference(example: Path) -> None:
    assert target_difference(MAIN, example, [CONTRACT_REVISION], None) is None  # the next deploy runs nothing


def test_base_and_a_revision_the_tree_lacks_are_differences(example: Path) -> None:
    assert "is at base" in (target_difference(MAIN, example, [], None) or "")
    assert NOT_IN_TREE in (target_difference(MAIN, example, ["main_9999"], None) or "")
    assert "several version rows" in (target_difference(MAIN, example, [CHECK_REVISION, "ec_0002"], None) or "")


def test_the_logs_tree_ignores_the_main_tree_s_key() -> None:
    logs = default_location(LOGS.key)
    assert target_difference(LOGS, logs, [declared_head(logs)], CONTRACT_REVISION) is None
