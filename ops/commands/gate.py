"""`scripts/gate [TREE...] [--all|--pending-from REV]`: the migration gate at review time, with no stack or server.

Judges revisions from the SQL they will execute (docs/migration-gate.md), as the deploy's preview will,
and prints each finding with its safe rewrite and each waiver honoured. Exit 9 when a revision is
refused, 0 when every one passes: a CI job on a pull request runs it before anything is deployed.
"""

from __future__ import annotations

import sys

from migrations import gate, runner
from migrations.gate.rendering import RenderError
from migrations.shared.heads import copy_location
from migrations.shared.tree import TREES, Tree
from ops.commands import cli
from ops.errors import ExitCode, UserError, run_main

BASE = "base"


def pending(tree: Tree, pending_from: str | None) -> list[str]:
    """Every revision of the tree, or those after `pending_from` (a revision id of the tree, or base)."""
    revisions = runner.revisions_in_order(tree, copy_location(tree.key))
    if pending_from is None or pending_from == BASE:
        return revisions
    if pending_from not in revisions:
        raise UserError(
            f"--pending-from {pending_from}: the {tree.key} tree has no such revision; give one of "
            f"{', '.join([BASE, *revisions])}"
        )
    return revisions[revisions.index(pending_from) + 1 :]


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("gate", sys.argv[1:] if argv is None else argv)
    trees = list(dict.fromkeys(args.trees)) or list(TREES)
    if args.all and args.pending_from:
        raise UserError("give --all or --pending-from REV, not both")
    if args.pending_from and len(trees) != 1:
        raise UserError(f"--pending-from {args.pending_from} names a revision of one tree: name that tree too")
    refused = False
    for key in trees:
        tree = TREES[key]
        try:
            verdict = gate.judge(tree, pending(tree, args.pending_from), copy_location(key))
        except gate.SquawkError as error:
            raise UserError(str(error), ExitCode.TOOLCHAIN) from None
        except RenderError as error:
            raise UserError(str(error)) from None
        print(verdict.report())
        refused = refused or verdict.refused
    return ExitCode.MIGRATION_REFUSED if refused else ExitCode.OK


if __name__ == "__main__":
    run_main(main)
