"""The worked example's revisions (fixtures/expand_contract) as the deploy sees them: their phases, their
plan, and the migration gate's verdict, so the engine tests and the benchmark can deploy them."""

from __future__ import annotations

from pathlib import Path

from fixtures.expand_contract import (
    BACKFILL_REVISION,
    CHECK_REVISION,
    CONTRACT_REVISION,
    EXPAND_REVISION,
    example_trees,
)
from migrations.gate.judging import judge
from migrations.shared.heads import declared_head, default_location
from migrations.shared.phases import Phase, phases_of, upgrade_plan
from migrations.shared.tree import MAIN

EXAMPLE = (EXPAND_REVISION, BACKFILL_REVISION, CHECK_REVISION, CONTRACT_REVISION)


def test_the_example_follows_main_s_head_with_one_contract_revision_last(tmp_path: Path) -> None:
    location = example_trees(tmp_path) / "main"
    phases = phases_of(location)
    assert list(phases)[-4:] == list(EXAMPLE)
    assert [phases[revision] for revision in EXAMPLE] == [Phase.EXPAND] * 3 + [Phase.CONTRACT]
    plan = upgrade_plan(MAIN, location, declared_head(default_location("main")), None)
    assert (plan.pending, [w.revision for w in plan.waiting]) == (EXAMPLE[:3], [CONTRACT_REVISION])


def test_the_gate_passes_the_example_with_its_reasoned_waivers_only(tmp_path: Path) -> None:
    verdict = judge(MAIN, EXAMPLE, example_trees(tmp_path) / "main")
    assert verdict.findings == ()
    assert sorted((w.revision, w.rule) for w in verdict.waivers) == [
        (CONTRACT_REVISION, "ban-drop-constraint"),
        (CONTRACT_REVISION, "ban-drop-function"),
        (CONTRACT_REVISION, "not-null-without-check"),
    ]
