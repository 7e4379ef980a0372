"""Each pending revision's SQL on its own, as Alembic's offline mode prints it (migrations.runner.upgrade_sql).

A revision is rendered from the revision before it ("prev:rev"), so its script holds env.py's opening
statements (placement guard, role, lock_timeout), then its own, then the version table's update. The
statements judged are its own: from Alembic's "-- Running upgrade ... -> rev" comment to the update of
the version table. The opening statements still count for the timeouts in force.

The runner, and through it the tree and the trees' env.py, is imported when a tree is rendered, not
when the gate is imported: the gate reads no model/ or infra/ module of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pglast import ast

from migrations.gate.statements import Statement, statements

if TYPE_CHECKING:
    from migrations.shared.tree import Tree


@dataclass(frozen=True)
class RevisionSQL:
    revision: str
    path: Path
    """The revision file (its waivers and its phase are read there)."""
    script: str
    """The whole offline SQL of the revision on its own, env.py's statements included."""
    statements: tuple[Statement, ...]
    """The revision's own statements, in the order they run."""


class RenderError(RuntimeError):
    """A revision whose offline SQL cannot be read: named with the fix."""


def render(tree: Tree, revisions: Sequence[str], script_location: Path | None = None) -> list[RevisionSQL]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import URL

    from migrations import runner

    config = Config(str(runner.ALEMBIC_INI), ini_section=tree.key)
    if script_location is not None:
        config.set_main_option("script_location", str(script_location))
    scripts = ScriptDirectory.from_config(config)
    # Offline mode connects to nothing: the URL only satisfies the runner's target.
    target = runner.Target(tree, URL.create("postgresql+psycopg"), None, script_location)
    rendered = []
    for revision in revisions:
        script = scripts.get_revision(revision)
        if script is None:
            raise RenderError(f"the {tree.key} tree has no revision {revision!r}: name one of its revision ids")
        down = script.down_revision
        # A revision on its own, from the one before it; the first (and a merge) from the tree's base.
        span = f"{down}:{revision}" if isinstance(down, str) else revision
        sql = runner.upgrade_sql(target, span)
        own = own_statements(sql, revision, tree.version_table)
        rendered.append(RevisionSQL(revision, Path(script.path), sql, own))
    return rendered


def own_statements(script: str, revision: str, version_table: str) -> tuple[Statement, ...]:
    """The statements after the revision's "Running upgrade" comment and before the version table's update."""
    marker = re.search(rf"^-- Running upgrade .*-> {re.escape(revision)}\s*$", script, re.MULTILINE)
    if marker is None:
        raise RenderError(f"the offline SQL of {revision} has no '-- Running upgrade ... -> {revision}' comment")
    first_line = script.count("\n", 0, marker.start()) + 1
    own = []
    for statement in statements(script):
        if statement.line <= first_line:
            continue
        if _records_version(statement.node, version_table):
            break
        own.append(statement)
    return tuple(own)


def _records_version(node: ast.Node, version_table: str) -> bool:
    if isinstance(node, (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)):
        return node.relation is not None and node.relation.relname == version_table
    return False
