"""Carry an adoption plan out, in the order that keeps every step safe to repeat after a kill.

1. misplaced rows move to their database (ops.adoption.move; restartable by itself);
2. each database and the tree's tables go to the model's owner role (made here when missing, so the
   deploy imports it rather than failing on a name that exists);
3. indexes found under other names take the revision's name; the tree's version table is stamped
   at the revision its tables were checked equal to; only then is Alembic's default version table
   (the review's tree) retired;
4. the deploy (`pulumi up`) imports the databases and owner roles into the stack and does the rest:
   the other roles, the grants, PUBLIC revoked, and each tree's upgrade from its stamped revision;
5. the retired tables (and their schema) go to the owner role, then the legacy roles are settled as
   legacyRoles says.

Each step first looks whether it is done already, so `--apply` after a kill finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.exc import DBAPIError

from migrations import runner
from migrations.shared.heads import copy_location
from model.names import DatabaseKey
from ops.adoption.baseline import Rename
from ops.adoption.move import (
    RETIRED_SCHEMA,
    MoveReport,
    finish_retired,
    move_table,
    retire_table,
    retired_not_owned_by,
    spec_for,
)
from ops.adoption.plan import LEGACY_VERSION_TABLE, DatabasePlan, Misplaced, Plan, RoleAction
from ops.adoption.server_access import AdminAccess
from ops.errors import ExitCode, UserError


def apply_plan(
    plan: Plan, admin: AdminAccess, deploy: Callable[[list[DatabaseKey]], None], say: Callable[[str], None]
) -> list[MoveReport]:
    """`deploy(existing)`: pulumi up, importing the databases (and their owner roles) named."""
    if plan.refusals:
        details = "\n".join(f"  {line}" for line in plan.refusals)
        raise UserError(f"the adoption is refused; nothing was changed:\n{details}", ExitCode.BAD_INPUT)
    reports = [move(admin, plan, database, table, say) for database, table in _moves(plan, after_deploy=False)]
    for database in plan.databases:
        for table in database.unfinished_moves:
            finish_move(admin, plan, database, table, say)
        if database.inventory is not None:
            take_ownership(admin, database, say)
            baseline_tree(admin, database, say)
    say("deploying: the databases and owner roles are imported into the stack, the rest is created")
    deploy(plan.existing)
    reports += [move(admin, plan, database, table, say) for database, table in _moves(plan, after_deploy=True)]
    for database in plan.databases:
        if database.inventory is not None:
            hand_over_retired(admin, database, say)
    for action in plan.role_actions:
        settle_legacy_role(admin, plan, action, say)
    return reports


def _moves(plan: Plan, after_deploy: bool) -> list[tuple[DatabasePlan, Misplaced]]:
    return [
        (database, table)
        for database in plan.databases
        for table in database.misplaced
        if table.after_deploy is after_deploy
    ]


def move(
    admin: AdminAccess, plan: Plan, database: DatabasePlan, table: Misplaced, say: Callable[[str], None]
) -> MoveReport:
    assert database.inventory is not None
    destination = plan.database(table.destination).name
    return move_table(admin, spec_for(database.inventory.tables[table.table], database.name, destination), say)


def finish_move(admin: AdminAccess, plan: Plan, database: DatabasePlan, moved: str, say: Callable[[str], None]) -> None:
    """A move killed after its source was retired: the destination's table has the same shape."""
    assert database.inventory is not None
    source, table = moved.split(".", 1)
    spec = spec_for(database.inventory.tables[table], source, database.name)
    with admin.connect(database.name, autocommit=False) as target:
        finish_retired(admin, target, spec, say)
    say(f"{moved}: the retired table checked against the moved rows; the move is finished")


def hand_over_retired(admin: AdminAccess, database: DatabasePlan, say: Callable[[str], None]) -> None:
    """What this and earlier runs retired goes to the owner role, whatever legacyRoles keeps: once --apply has
    run, a legacy role reaches nothing in the database (docs/adoption.md), and verify finds no stranger there."""
    with admin.connect(database.name) as connection:
        retired = retired_not_owned_by(connection, database.owner)
        owner = sql.Identifier(database.owner)
        for table in retired:
            # The schema first: a new owner that is not a superuser needs CREATE on its table's schema.
            statement = "ALTER TABLE {} OWNER TO {}" if table else "ALTER SCHEMA {} OWNER TO {}"
            name = sql.Identifier(RETIRED_SCHEMA, table) if table else sql.Identifier(RETIRED_SCHEMA)
            connection.execute(sql.SQL(statement).format(name, owner))
    if retired:
        say(f"{database.name}: {RETIRED_SCHEMA} and the tables retired there owned by {database.owner}")


def settle_legacy_role(admin: AdminAccess, plan: Plan, action: RoleAction, say: Callable[[str], None]) -> None:
    """After the deploy, so the application's new roles exist before the old one stops working."""
    role = sql.Identifier(action.role)
    if action.action == "nologin":
        with admin.connect() as connection:
            connection.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
        say(f"{action.role}: can no longer log in")
        return
    for database in plan.databases:
        if database.inventory is None:
            continue
        with admin.connect(database.name) as connection:
            # What it still owns here (the retired tables) goes to the owner role before anything is dropped.
            connection.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(role, sql.Identifier(database.owner)))
            connection.execute(sql.SQL("DROP OWNED BY {}").format(role))
    with admin.connect() as connection:
        try:
            connection.execute(sql.SQL("DROP ROLE {}").format(role))
        except psycopg.errors.DependentObjectsStillExist as error:
            raise UserError(
                f"{action.role} still owns or is granted objects outside this stack's databases "
                f"({error.diag.message_detail}): reassign or revoke them there, then run --apply again.",
                ExitCode.DEPLOY_FAILED,
            ) from None
    say(f"{action.role}: dropped (what it owned is its databases' owner roles' now)")


def take_ownership(admin: AdminAccess, database: DatabasePlan, say: Callable[[str], None]) -> None:
    assert database.inventory is not None
    with admin.connect() as connection:
        _ensure_owner_role(connection, database.owner)
        connection.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database.name), sql.Identifier(database.owner)
            )
        )
    with admin.connect(database.name) as connection:
        for table in database.foreign_owned:
            # ALTER TABLE moves the table's indexes and identity sequences with it.
            connection.execute(
                sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                    sql.Identifier("public", table), sql.Identifier(database.owner)
                )
            )
    say(f"{database.name}: owned by {database.owner}, with {', '.join(database.foreign_owned) or 'no table to move'}")


def _ensure_owner_role(connection: psycopg.Connection[Any], owner: str) -> None:
    if connection.execute("SELECT FROM pg_roles WHERE rolname = %s", (owner,)).fetchone() is not None:
        return
    connection.execute(sql.SQL("CREATE ROLE {} NOLOGIN INHERIT").format(sql.Identifier(owner)))
    is_superuser = connection.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not (is_superuser and is_superuser[0]):
        # A managed server's admin gives a database away only to a role it is a member of.
        connection.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(owner)))


def baseline_tree(admin: AdminAccess, database: DatabasePlan, say: Callable[[str], None]) -> None:
    assert database.inventory is not None
    baseline = database.baseline
    with admin.connect(database.name) as connection:
        for index in database.inventory.invalid_indexes:
            connection.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier("public", index)))
            say(f"{database.name}: invalid index {index} dropped")
        for rename in baseline.renames if baseline else ():
            if _rename(connection, rename):
                say(f"{database.name}: {rename.kind} {rename.old} is now {rename.new}")
    if baseline is not None and baseline.revision is not None:
        target = runner.Target(database.tree, admin.url(database.name), database.name, copy_location(database.key))
        try:
            runner.stamp(target, baseline.revision)
        except DBAPIError as error:
            raise UserError(
                f"{database.name}: stamping {database.tree.version_table} at {baseline.revision} failed: "
                f"{str(error.orig).strip()}. Fix what it names, then run --apply again: the steps done are kept",
                ExitCode.MIGRATION_FAILED,
            ) from None
        say(f"{database.name}: {database.tree.version_table} stamped at {baseline.revision}")
    if database.legacy_versions is not None:
        with admin.connect(database.name) as connection:
            retire_table(connection, LEGACY_VERSION_TABLE)
        say(f"{database.name}: {LEGACY_VERSION_TABLE} retired to {RETIRED_SCHEMA}.{LEGACY_VERSION_TABLE}")


def _rename(connection: psycopg.Connection[Any], rename: Rename) -> bool:
    """Rename an index or a table's constraint to the revision's name; False when done already (a rerun)."""
    table, old, new = sql.Identifier("public", rename.table), sql.Identifier(rename.old), sql.Identifier(rename.new)
    if rename.kind == "constraint":
        exists = "SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s)"
        if connection.execute(exists, (f"public.{rename.table}", rename.old)).fetchone() != (True,):
            return False
        connection.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(table, old, new))
        return True
    if connection.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{rename.old}",)).fetchone() != (True,):
        return False
    connection.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier("public", rename.old), new))
    return True
