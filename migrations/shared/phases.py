"""Expand and contract: which revisions a deploy may run while the previous application version is live.

A revision of the main tree declares its phase with a module-level literal, read here without
importing the revision (as migrations.shared.heads reads `revision` and `down_revision`):

    phase = "contract"

A revision without it is an expand revision: it only adds what the new application version uses
and keeps what the previous one uses, so a deploy runs it at once. A contract revision drops,
renames or tightens what the previous application version uses; it runs only once the stack says
that version is gone: the stack key `headhunter-db:contractThrough` names the last main-tree
revision whose contract revisions may run (or `head`), and the pipeline sets it after the rollout.
Unset, no contract revision runs. docs/expand-contract.md is the recipe.

A tree is one line of revisions: a revision runs only after every revision before it, so the expand
revisions after a waiting contract revision wait with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from migrations.shared.heads import as_revision_ids, module_literals, parsed_literals
from migrations.shared.tree import MAIN, Tree

CONTRACT_KEY = "headhunter-db:contractThrough"
"""The stack key that lets contract revisions run, as `pulumi config set` names it."""
CONTRACT_THROUGH_HEAD = "head"
"""The key's value that lets every contract revision of the tree run."""
CONTRACT_TREES = (MAIN.key,)
"""The trees whose revisions may be contract revisions: the key names revisions of the main tree only."""


class Phase(StrEnum):
    EXPAND = "expand"
    CONTRACT = "contract"


ALLOWED_PHASES = tuple(phase.value for phase in Phase)


class PhaseError(ValueError):
    """A tree whose phases cannot be planned, worded for the author of the revision."""


@dataclass(frozen=True)
class RevisionFile:
    revision: str
    down_revision: str | None
    phase: Phase
    path: Path


@dataclass(frozen=True)
class WaitingRevision:
    revision: str
    phase: Phase
    reason: str
    """One line: why it waits, naming the stack key and the value that lets it run."""


@dataclass(frozen=True)
class UpgradePlan:
    current: str | None
    """The database's revision before the run; None before the first upgrade."""
    target: str
    """The revision to upgrade to: the last before the first contract revision that may not run yet."""
    pending: tuple[str, ...]
    """The revisions this run applies, from after `current` to `target`, oldest first."""
    waiting: tuple[WaitingRevision, ...]
    """The revisions after `target`, oldest first: the waiting contract revisions and the expand revisions
    that come after one of them (a tree is one line)."""


def phase_of(path: Path) -> Phase:
    """A revision file's phase: its module-level `phase` literal, expand when it has none."""
    # Parsed whole rather than by line: a docstring line may well begin with "phase =".
    try:
        declared = parsed_literals(path.read_text(), path, ("phase",)).get("phase", Phase.EXPAND.value)
    except ValueError:  # ast.literal_eval of a name or a call
        declared = "a value that is no literal"
    if declared not in ALLOWED_PHASES:
        raise PhaseError(
            f'{path}: phase = {declared!r} is not a phase: write phase = "contract" or phase = "expand" '
            f"as a string literal ({', '.join(ALLOWED_PHASES)}; a revision without it is an expand revision)"
        )
    return Phase(declared)


def revision_files(script_location: Path) -> list[RevisionFile]:
    """The tree's revisions from the first to the head; a tree that is not one line is refused."""
    by_parent: dict[str | None, list[RevisionFile]] = {}
    for path in sorted((script_location / "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue  # Alembic skips it too
        declared = module_literals(path, ("revision", "down_revision"))
        parents = as_revision_ids(declared.get("down_revision"))
        if "revision" not in declared or len(parents) > 1:
            raise PhaseError(
                f"{path}: expand/contract plans one line of revisions, each with a `revision` and at most one "
                "`down_revision`: declare them, and write a merge as one revision that follows the other"
            )
        parent = parents[0] if parents else None
        file = RevisionFile(str(declared["revision"]), parent, phase_of(path), path)
        by_parent.setdefault(parent, []).append(file)
    ordered: list[RevisionFile] = []
    previous: str | None = None
    while previous in by_parent:
        children = by_parent.pop(previous)
        if len(children) > 1:
            names = ", ".join(child.revision for child in children)
            raise PhaseError(f"{script_location}: {names} all follow {previous or 'the base'}: merge them first")
        ordered.append(children[0])
        previous = children[0].revision
    if by_parent:
        lost = ", ".join(file.revision for files in by_parent.values() for file in files)
        raise PhaseError(f"{script_location}: {lost} follow no revision of the tree: correct their down_revision")
    return ordered


def phases_of(script_location: Path) -> dict[str, Phase]:
    """Each revision's phase, from the first revision to the head."""
    return {file.revision: file.phase for file in revision_files(script_location)}


def contract_through_known(value: str, revisions: list[str]) -> bool:
    """Whether `value` may be the key's value for a tree of `revisions`: one of them, or head."""
    return value == CONTRACT_THROUGH_HEAD or value in revisions


def contract_through_fix(revisions: list[str]) -> str:
    return (
        f"give {CONTRACT_THROUGH_HEAD} or one of {', '.join(revisions)}: the last revision whose contract "
        "revisions may run, set once the application version before it is gone"
    )


def upgrade_plan(
    tree: Tree, script_location: Path, current_revision: str | None, contract_through: str | None
) -> UpgradePlan:
    """What a deploy runs: every revision after `current_revision` up to the first contract revision
    that `contract_through` (the stack key's value; None when unset) does not reach."""
    files = revision_files(script_location)
    revisions = [file.revision for file in files]
    if not files:
        raise PhaseError(f"{script_location}: the tree has no revision")
    _check_contract_placement(tree, files)
    if current_revision is not None and current_revision not in revisions:
        raise PhaseError(
            f"the {tree.key} database is at revision {current_revision}, which {script_location} does not hold: "
            "deploy the checkout that wrote it, or a later one"
        )
    if contract_through is not None and not contract_through_known(contract_through, revisions):
        raise PhaseError(
            f"{CONTRACT_KEY} is {contract_through!r}, which names no revision of the {tree.key} tree in "
            f"{script_location}: {contract_through_fix(revisions)}"
        )
    allowed_through = _allowed_through(contract_through, revisions)
    start = 0 if current_revision is None else revisions.index(current_revision) + 1
    stop = start
    while stop < len(files) and not (files[stop].phase is Phase.CONTRACT and stop > allowed_through):
        stop += 1
    waiting = _waiting(files[stop:], contract_through)
    return UpgradePlan(current_revision, revisions[stop - 1], tuple(revisions[start:stop]), waiting)


def _allowed_through(contract_through: str | None, revisions: list[str]) -> int:
    """The position of the last revision whose contract revisions may run; -1 when none may."""
    if contract_through is None:
        return -1
    if contract_through == CONTRACT_THROUGH_HEAD:
        return len(revisions) - 1
    return revisions.index(contract_through)


def _waiting(files: list[RevisionFile], contract_through: str | None) -> tuple[WaitingRevision, ...]:
    if not files:
        return ()
    blocker = files[0].revision
    now = "unset" if contract_through is None else contract_through
    waiting = [
        WaitingRevision(
            blocker,
            Phase.CONTRACT,
            f"contract revision: waits until the previous application version is gone, then "
            f"`pulumi config set {CONTRACT_KEY} {blocker}` (or {CONTRACT_THROUGH_HEAD}) lets it run; "
            f"{CONTRACT_KEY} is {now}",
        )
    ]
    for file in files[1:]:
        if file.phase is Phase.CONTRACT:
            reason = (
                f"contract revision after the waiting {blocker}: runs once {CONTRACT_KEY} is {file.revision} or "
                f"a later revision (or {CONTRACT_THROUGH_HEAD}); it is {now}"
            )
        else:
            reason = f"expand revision after the waiting contract revision {blocker}: a tree runs in order"
        waiting.append(WaitingRevision(file.revision, file.phase, reason))
    return tuple(waiting)


def _check_contract_placement(tree: Tree, files: list[RevisionFile]) -> None:
    if files[0].phase is Phase.CONTRACT:
        raise PhaseError(f"{files[0].path}: the first revision of a tree has nothing to contract: make it expand")
    if tree.key in CONTRACT_TREES:
        return
    contracts = [file for file in files if file.phase is Phase.CONTRACT]
    if contracts:
        raise PhaseError(
            f'{contracts[0].path}: phase = "contract" in the {tree.key} tree, but {CONTRACT_KEY} names revisions '
            f"of the {', '.join(CONTRACT_TREES)} tree only: make it an expand revision (nothing waits in the "
            f"{tree.key} tree)"
        )
