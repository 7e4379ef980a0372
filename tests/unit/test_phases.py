"""A revision's phase and the upgrade plan that holds contract revisions back until the stack lets them run."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrations.shared.heads import default_location
from migrations.shared.phases import (
    CONTRACT_KEY,
    Phase,
    PhaseError,
    phase_of,
    phases_of,
    upgrade_plan,
)
from migrations.shared.tree import LOGS, MAIN

# Five revisions in a line: expand, expand, contract, expand, contract (r3 and r5 tighten what r1 and r4 added).
LINE = {
    "r1": ("r1", None, None),
    "r2": ("r2", "r1", None),
    "r3": ("r3", "r2", "contract"),
    "r4": ("r4", "r3", "expand"),
    "r5": ("r5", "r4", "contract"),
}


def write_tree(folder: Path, revisions: dict[str, tuple[str, str | None, str | None]]) -> Path:
    (folder / "versions").mkdir(parents=True)
    for stem, (revision, down, phase) in revisions.items():
        body = f'"""{stem}.\n\nphase = "not a declaration: a docstring line"\n"""\n'
        body += f'revision: str = "{revision}"\ndown_revision: str | None = {down!r}\n'
        if phase is not None:
            body += f'phase = "{phase}"\n'
        (folder / "versions" / f"{stem}.py").write_text(body)
    return folder


def test_phases_are_read_in_tree_order_and_absent_means_expand(tmp_path: Path) -> None:
    tree = write_tree(tmp_path, LINE)
    assert phases_of(tree) == {
        "r1": Phase.EXPAND,
        "r2": Phase.EXPAND,
        "r3": Phase.CONTRACT,
        "r4": Phase.EXPAND,
        "r5": Phase.CONTRACT,
    }
    assert list(phases_of(tree)) == ["r1", "r2", "r3", "r4", "r5"]


def test_the_shipped_trees_are_all_expand() -> None:
    for key in ("main", "logs"):
        assert set(phases_of(default_location(key)).values()) == {Phase.EXPAND}


def test_an_invalid_phase_names_the_file_and_the_allowed_values(tmp_path: Path) -> None:
    tree = write_tree(tmp_path, {"r1": ("r1", None, None), "r2": ("r2", "r1", "contracts")})
    with pytest.raises(PhaseError, match=r"r2\.py: phase = 'contracts' is not a phase: .*expand, contract"):
        phases_of(tree)


def test_a_phase_that_is_no_literal_is_refused_by_file(tmp_path: Path) -> None:
    path = tmp_path / "r1.py"
    path.write_text('revision = "r1"\ndown_revision = None\nphase = PHASE\n')
    with pytest.raises(PhaseError, match=r"r1\.py: phase = 'a value that is no literal' is not a phase"):
        phase_of(path)


def test_unset_key_runs_the_expand_revisions_before_the_first_contract(tmp_path: Path) -> None:
    plan = upgrade_plan(MAIN, write_tree(tmp_path, LINE), None, None)
    assert (plan.target, plan.pending) == ("r2", ("r1", "r2"))
    assert [(w.revision, w.phase) for w in plan.waiting] == [
        ("r3", Phase.CONTRACT),
        ("r4", Phase.EXPAND),
        ("r5", Phase.CONTRACT),
    ]
    assert f"`pulumi config set {CONTRACT_KEY} r3`" in plan.waiting[0].reason
    assert plan.waiting[0].reason.endswith(f"{CONTRACT_KEY} is unset")
    assert "after the waiting contract revision r3" in plan.waiting[1].reason
    assert all("\n" not in w.reason for w in plan.waiting)


def test_a_key_at_a_contract_revision_runs_it_and_holds_the_next(tmp_path: Path) -> None:
    plan = upgrade_plan(MAIN, write_tree(tmp_path, LINE), "r2", "r3")
    assert (plan.target, plan.pending) == ("r4", ("r3", "r4"))
    assert [w.revision for w in plan.waiting] == ["r5"]
    assert plan.waiting[0].reason.endswith(f"{CONTRACT_KEY} is r3")


def test_a_key_at_an_expand_revision_lets_the_contracts_before_it_run(tmp_path: Path) -> None:
    plan = upgrade_plan(MAIN, write_tree(tmp_path, LINE), "r2", "r4")
    assert (plan.target, plan.pending) == ("r4", ("r3", "r4"))
    assert [w.revision for w in plan.waiting] == ["r5"]


def test_head_runs_everything(tmp_path: Path) -> None:
    plan = upgrade_plan(MAIN, write_tree(tmp_path, LINE), "r1", "head")
    assert (plan.target, plan.pending, plan.waiting) == ("r5", ("r2", "r3", "r4", "r5"), ())


def test_a_database_held_at_a_waiting_contract_has_nothing_pending(tmp_path: Path) -> None:
    plan = upgrade_plan(MAIN, write_tree(tmp_path, LINE), "r2", None)
    assert (plan.current, plan.target, plan.pending) == ("r2", "r2", ())
    assert [w.revision for w in plan.waiting] == ["r3", "r4", "r5"]


def test_a_database_past_a_contract_is_not_held_back_by_it(tmp_path: Path) -> None:
    plan = upgrade_plan(MAIN, write_tree(tmp_path, LINE), "r3", None)
    assert (plan.target, plan.pending, [w.revision for w in plan.waiting]) == ("r4", ("r4",), ["r5"])


def test_an_unknown_key_value_names_the_key_the_value_and_the_revisions(tmp_path: Path) -> None:
    with pytest.raises(PhaseError, match=rf"{CONTRACT_KEY} is 'r9', .*give head or one of r1, r2, r3, r4, r5"):
        upgrade_plan(MAIN, write_tree(tmp_path, LINE), "r1", "r9")


def test_a_database_at_a_revision_the_tree_lacks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PhaseError, match=r"at revision r9, which .* does not hold"):
        upgrade_plan(MAIN, write_tree(tmp_path, LINE), "r9", None)


def test_a_contract_revision_outside_the_main_tree_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PhaseError, match=r"r3\.py: phase = \"contract\" in the logs tree"):
        upgrade_plan(LOGS, write_tree(tmp_path, LINE), None, None)


def test_a_first_contract_revision_is_refused(tmp_path: Path) -> None:
    tree = write_tree(tmp_path, {"r1": ("r1", None, "contract")})
    with pytest.raises(PhaseError, match="first revision of a tree has nothing to contract"):
        upgrade_plan(MAIN, tree, None, "head")


def test_a_branched_tree_is_refused_by_name(tmp_path: Path) -> None:
    tree = write_tree(tmp_path, {"r1": ("r1", None, None), "r2": ("r2", "r1", None), "r3": ("r3", "r1", None)})
    with pytest.raises(PhaseError, match="r2, r3 all follow r1: merge them first"):
        upgrade_plan(MAIN, tree, None, None)
