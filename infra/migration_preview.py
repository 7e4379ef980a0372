"""What a migration step will run, read before it runs: at every preview, and by the scripts' preflight.

The database's own revision decides what is pending, not the stack's state: a database restored from
an older backup, or set back by hand, is behind its state, and the next deploy brings it to the
target. A revision the checkout's tree does not hold (the database was migrated from a newer
checkout) is refused by name before anything runs. The target is the expand/contract plan's
(migrations.shared.phases): the head, or the revision before a contract revision that waits for
the stack key. The pending revisions are judged by the migration gate (migrations.gate) before any
of them runs: a refusal stops the preview, and the waivers it honoured are said with the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from infra.step_errors import MarkedStepError
from migrations.shared.phases import CONTRACT_KEY, CONTRACT_TREES, UpgradePlan, revision_files, upgrade_plan
from migrations.shared.tree import Tree

if TYPE_CHECKING:
    from migrations.gate import Verdict

# How the refusal of a revision the tree lacks reads (its exit code comes from the marker, infra/step_errors.py).
NOT_IN_TREE = "does not hold: the database was migrated from a newer checkout"


# Why a step being created has every revision pending when its migrator cannot log in yet (said at the preview).
NO_LOGIN_YET = "the migrator's login is not there yet: this deploy makes it, so every revision is pending"
NOT_ANSWERING_YET = "the server does not answer yet: this deploy makes the database, so every revision is pending"


# How a refusal of the gate reads (the exit code comes from its error's marker, infra/step_errors.py).
REFUSED_BY_GATE = "the migration gate refused a pending revision, so nothing ran"


class RevisionNotInTreeError(MarkedStepError):
    """The database is at a revision this checkout's tree does not hold: the fix is another checkout."""

    kind = "revision-not-in-tree"


class MigrationRefusedError(MarkedStepError):
    """A pending revision broke a rule of the gate: the message is the verdict's report."""

    kind = "migration-refused"


@dataclass(frozen=True)
class DatabaseRevision:
    revision: str | None
    """None: no revision yet (no version table, or no database yet)."""
    read_from: str
    """Where the revision was read, as the preview says it: the database, or why not and what instead."""


@dataclass(frozen=True)
class StepPreview:
    """One tree's run as a preview sees it: where its database is, and the plan from there."""

    tree: Tree
    database: str
    at: DatabaseRevision
    plan: UpgradePlan
    verdict: Verdict | None
    """The gate's verdict on the pending revisions; None when none is pending."""

    def lines(self) -> list[str]:
        """What the preview says about the run; nothing when the database is at the target and nothing waits."""
        said = []
        where = f"{self.tree.key} tree on database {self.database!r}"
        if self.plan.pending:
            pending = ", ".join(self.plan.pending)
            said.append(f"{where}: at {self.at.revision or 'base'} ({self.at.read_from}); to run: {pending}")
        said += [f"{where}: waiting {waiting.revision}: {waiting.reason}" for waiting in self.plan.waiting]
        if self.verdict is not None and not self.verdict.refused:  # a refusal is the error's own text
            said += self.verdict.report().splitlines()  # the waivers it honoured included
        return said

    def require_pass(self) -> None:
        """MigrationRefusedError, with the verdict's report, when the gate refused a pending revision."""
        if self.verdict is not None and self.verdict.refused:
            raise MigrationRefusedError(f"{REFUSED_BY_GATE}:\n{self.verdict.report()}")


def preview_step(
    tree: Tree, script_location: Path, database: str, at: DatabaseRevision, contract_through: str | None
) -> StepPreview:
    """The run from the database's revision to the plan's target, judged; a revision the tree lacks is refused."""
    revisions = [file.revision for file in revision_files(script_location)]
    if at.revision is not None and at.revision not in revisions:
        raise RevisionNotInTreeError(not_in_tree_message(tree, script_location, database, at.revision, revisions))
    # The stack key names revisions of the main tree; the other trees have no contract revision.
    through = contract_through if tree.key in CONTRACT_TREES else None
    plan = upgrade_plan(tree, script_location, at.revision, through)
    return StepPreview(tree, database, at, plan, judged(tree, plan.pending, script_location))


def judged(tree: Tree, pending: tuple[str, ...], script_location: Path) -> Verdict | None:
    if not pending:
        return None  # nothing to judge: a preview at the target loads neither Alembic nor the gate
    from migrations.gate import judge

    return judge(tree, pending, script_location)


def not_in_tree_message(tree: Tree, script_location: Path, database: str, revision: str, revisions: list[str]) -> str:
    head = revisions[-1] if revisions else "none"
    return (
        f"the {tree.key} database {database!r} is at revision {revision}, which this checkout's {tree.key} tree "
        f"({script_location}, head {head}) {NOT_IN_TREE}. Deploy "
        f"from a checkout that has {revision} (that release or a later one); nothing was changed."
    )


def target_difference(
    tree: Tree, script_location: Path, versions: list[str], contract_through: str | None
) -> str | None:
    """How a database's version rows differ from where a deploy with `contract_through` leaves the tree: the
    plan's target, or a later revision of the tree (a contract revision that ran before the key was unset);
    None when the next deploy would run nothing. The same plan the deploy makes (preview_step)."""
    if len(versions) > 1:
        return f"has several version rows ({', '.join(versions)}), where a tree of one line has one"
    at = versions[0] if versions else None
    revisions = [file.revision for file in revision_files(script_location)]
    if at is not None and at not in revisions:
        return (
            f"is at revision {at}, which this checkout's {tree.key} tree (head {revisions[-1]}) {NOT_IN_TREE}: "
            f"verify and deploy from a checkout that has {at}"
        )
    through = contract_through if tree.key in CONTRACT_TREES else None
    plan = upgrade_plan(tree, script_location, at, through)
    if not plan.pending:
        return None
    return (
        f"is at {at or 'base'}, behind {plan.target}, where a deploy with {CONTRACT_KEY} "
        f"{through or 'unset'} leaves it: {', '.join(plan.pending)} not applied; the next scripts/deploy applies them"
    )
