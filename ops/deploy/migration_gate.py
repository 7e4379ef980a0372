"""The migration gate in the scripts' preflight: each tree's pending revisions judged before the engine starts.

The migration step judges the same revisions at the engine's preview (infra/migration_step.py),
but scripts/up's `up` has no preview of its own and, in scripts/deploy, the engine starts the
providers of every resource before the step is reached. Here, before anything runs, each database's
revision is read as the admin (the preflight's own login), the expand/contract plan is made from it
and the gate judges what the plan would run: a refusal exits 9 with the verdict's report, a database
at a revision the checkout lacks exits 2, and what will run, what waits and every honoured waiver
are printed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from infra.migration_preview import (
    DatabaseRevision,
    MigrationRefusedError,
    RevisionNotInTreeError,
    StepPreview,
    preview_step,
)
from infra.settings import Settings
from migrations.shared.heads import default_location
from migrations.shared.phases import PhaseError
from migrations.shared.tree import TREES
from model.names import DatabaseKey
from ops.errors import ExitCode, UserError

Connect = Callable[[str], psycopg.Connection[tuple[Any, ...]]]
"""A session as the admin on the named database of the server."""


def check_pending_revisions(settings: Settings, connect: Connect, say: Callable[[str], None]) -> list[StepPreview]:
    """Both trees' runs as the next deploy would make them, judged; UserError when one is refused."""
    previews = []
    refusals = []
    for key in DatabaseKey:
        tree = TREES[key.value]
        location = settings.environment.tree_location(key.value) or default_location(key.value)
        database = settings.database_names[key]
        at = revision_as_admin(settings, connect, database, tree.version_table)
        try:
            preview = preview_step(tree, location, database, at, settings.contract_through)
        except (RevisionNotInTreeError, PhaseError) as error:
            raise UserError(str(error), ExitCode.BAD_INPUT) from None
        for line in preview.lines():
            say(line)
        try:
            preview.require_pass()
        except MigrationRefusedError as refusal:
            refusals.append(str(refusal))
        previews.append(preview)
    if refusals:
        raise UserError(
            "\n".join(refusals) + "\nRewrite each statement as its safe rewrite says (or waive the rule for that "
            "statement with a reason in the revision, docs/migration-gate.md) and deploy again.",
            ExitCode.MIGRATION_REFUSED,
        )
    return previews


def revision_as_admin(settings: Settings, connect: Connect, database: str, version_table: str) -> DatabaseRevision:
    """The database's revision, read as the admin; none when the database or its version table is not there yet."""
    try:
        with connect(database) as session:
            query = sql.SQL("SELECT version_num FROM {}").format(sql.Identifier(version_table))
            row = session.execute(query).fetchone()
    except psycopg.errors.UndefinedTable:
        return DatabaseRevision(None, "read from the database, which has no version table yet")
    except psycopg.Error as error:
        if f'database "{database}" does not exist' in str(error):
            return DatabaseRevision(None, "the database does not exist yet")
        server = settings.server
        reason = (str(error).strip().splitlines() or ["no message"])[-1]
        raise UserError(
            f"the preflight cannot read the revision of database {database!r} at {server.host}:{server.port} as "
            f"{server.admin_user} ({reason}): it reads it to judge the pending revisions before anything runs. "
            "The admin must reach the database and its version table (a member of its owner role on a managed "
            "server). Nothing was changed.",
            ExitCode.SERVER_UNREACHABLE,
        ) from None
    return DatabaseRevision(row[0] if row else None, "read from the database")
