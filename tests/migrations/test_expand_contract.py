"""docs/expand-contract.md's worked example on PostgreSQL, two application versions writing throughout.

The example's revisions (fixtures/expand_contract) follow main's head in a copy of the tree; each
deploy runs what migrations.shared.phases.upgrade_plan allows for the stack key's value, through
migrations/runner.py as the migration step does.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fixtures.app_versions import AppWriter, Written, new_app_insert, old_app_insert
from fixtures.cluster import ProvisionedDatabases
from fixtures.expand_contract import (
    BACKFILL_BATCH_SIZE,
    BACKFILL_REVISION,
    CHECK_REVISION,
    CONTRACT_REVISION,
    EXPAND_REVISION,
    example_trees,
)
from migrations import runner
from migrations.shared.heads import declared_head, default_location
from migrations.shared.phases import CONTRACT_KEY, Phase, UpgradePlan, upgrade_plan
from migrations.shared.tree import MAIN
from model.names import DatabaseKey
from ops.localpg.embedded import dump_client_bin_dir

SEEDED_ROWS = 5 * BACKFILL_BATCH_SIZE  # rows of the previous version, so the backfill has several batches
SEED = (
    "INSERT INTO user_invitations (email, token_hash, role, invited_by, expires_at) "
    "SELECT 'Seed' || n || '@Example.com', sha256(convert_to('seed' || n, 'UTF8')), 'viewer', "
    "NULLIF(n %% 7, 0) * 10, now() + interval '7 days' FROM generate_series(1, %s) AS n RETURNING id, email, invited_by"
)


def app_connection(provisioned: ProvisionedDatabases) -> psycopg.Connection:
    """A connection as the application's runtime role, as both versions log in."""
    return provisioned.connect_as(provisioned.names.of("app"), DatabaseKey.MAIN)


def deploy(target: runner.Target, location: Path, contract_through: str | None) -> UpgradePlan:
    """One deploy of the main tree: the plan for the key's value, then the upgrade to its target."""
    plan = upgrade_plan(MAIN, location, runner.current_revision(target), contract_through)
    if plan.pending:
        runner.upgrade(target, plan.target)
    return plan


@pytest.fixture
def writers(provisioned: ProvisionedDatabases) -> Iterator[dict[str, AppWriter]]:
    run_id = uuid.uuid4().hex
    apps = {
        "old": AppWriter("old", lambda: app_connection(provisioned), old_app_insert, run_id),
        "new": AppWriter("new", lambda: app_connection(provisioned), new_app_insert, run_id),
    }
    yield apps
    for app in apps.values():
        if app.is_alive():
            app.finish()


def column_names(provisioned: ProvisionedDatabases) -> set[str]:
    with app_connection(provisioned) as connection:
        rows = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'user_invitations'"
        ).fetchall()
    return {row[0] for row in rows}


@pytest.mark.timeout(300)  # a few thousand rows and four revisions with writers alongside: about a minute
def test_both_versions_write_through_expand_and_the_new_one_alone_after_contract(
    provisioned: ProvisionedDatabases, main_target: runner.Target, writers: dict[str, AppWriter], tmp_path: Path
) -> None:
    location = example_trees(tmp_path) / "main"
    target = runner.Target(main_target.tree, main_target.url, main_target.expected_database, location)
    old, new = writers["old"], writers["new"]

    # The previous release: the tree before the example, the old app writing on rows it already has.
    runner.upgrade(target, declared_head(default_location("main")))
    with app_connection(provisioned) as connection:
        seeded = {row[0]: (row[1], row[2]) for row in connection.execute(SEED, (SEEDED_ROWS,)).fetchall()}
    old.start()
    old.wait_for(5)

    # Expand: the deploy runs ec_0001 to ec_0003 with the old app writing, and holds the contract back.
    expand = deploy(target, location, contract_through=None)
    assert expand.pending == (EXPAND_REVISION, BACKFILL_REVISION, CHECK_REVISION)
    assert [(w.revision, w.phase) for w in expand.waiting] == [(CONTRACT_REVISION, Phase.CONTRACT)]
    assert runner.current_revision(target) == CHECK_REVISION
    new.start()  # the new version rolls out once expand is in
    old.wait_for(5)
    new.wait_for(5)
    assert old.snapshot()[1] == [] and new.snapshot()[1] == [], "after expand both versions write"

    with app_connection(provisioned) as connection:
        unfilled = connection.execute(
            "SELECT count(*) FROM user_invitations WHERE email_normalized IS NULL OR inviter_id IS DISTINCT FROM "
            "invited_by OR email_normalized <> lower(btrim(email))"
        ).fetchone()
        # Each backfilled row carries the id of the transaction that wrote it last: its batch's.
        batches = connection.execute(
            "SELECT xmin::text, count(*) FROM user_invitations WHERE id = ANY(%s) GROUP BY 1", (list(seeded),)
        ).fetchall()
    assert unfilled == (0,), "the backfill and the trigger leave no row unfilled"
    assert max(count for _, count in batches) <= BACKFILL_BATCH_SIZE, "no transaction locks more than one batch"
    assert len(batches) >= SEEDED_ROWS // BACKFILL_BATCH_SIZE

    # The stack key unset: the contract revision waits, whatever number of deploys.
    waiting = deploy(target, location, contract_through=None)
    assert (waiting.pending, [w.revision for w in waiting.waiting]) == ((), [CONTRACT_REVISION])
    assert CONTRACT_KEY in waiting.waiting[0].reason and "unset" in waiting.waiting[0].reason
    assert runner.current_revision(target) == CHECK_REVISION and "invited_by" in column_names(provisioned)

    # The pipeline sets the key after the rollout: the next deploy contracts.
    old.wait_for(3)
    assert old.snapshot()[1] == [], "the old app writes until the contract revision runs"
    contract = deploy(target, location, contract_through=CONTRACT_REVISION)
    assert (contract.pending, contract.waiting) == ((CONTRACT_REVISION,), ())
    assert runner.current_revision(target) == CONTRACT_REVISION

    new.wait_for(5)
    old.wait_for(0, refusals=3)
    old.finish()
    new.finish()
    written_old, refused_old = old.snapshot()
    written_new, refused_new = new.snapshot()
    assert refused_new == [], "the new app writes after contract"
    assert refused_old, "the old app is refused after contract"
    assert {
        (r.sqlstate, 'column "invited_by" of relation "user_invitations" does not exist' in r.message)
        for r in refused_old
    } == {("42703", True)}, f"the old app is refused by name: {refused_old[:2]}"
    assert_no_wrong_data(provisioned, seeded, written_old + written_new)


def assert_no_wrong_data(
    provisioned: ProvisionedDatabases, seeded: dict[int, tuple[str, int | None]], written: list[Written]
) -> None:
    """Every row either version was told it stored is there with what it wrote, and no other row is."""
    with app_connection(provisioned) as connection:
        rows = connection.execute("SELECT id, email, email_normalized, inviter_id FROM user_invitations").fetchall()
    stored = {row[0]: row[1:] for row in rows}
    expected: dict[int, tuple[str, str | None, int | None]] = {
        id_: (email, None, inviter) for id_, (email, inviter) in seeded.items()
    }
    expected |= {w.id: (w.email, w.email.strip().lower(), w.inviter) for w in written}
    assert set(stored) == set(expected)
    wrong = [
        (id_, stored[id_], want)
        for id_, want in expected.items()
        if (stored[id_][0], stored[id_][2]) != (want[0], want[2]) or stored[id_][1] != stored[id_][0].strip().lower()
    ]
    assert wrong == [], f"{len(wrong)} rows hold other values than their application wrote: {wrong[:3]}"


def psql_as_migrator(provisioned: ProvisionedDatabases, script: str) -> subprocess.CompletedProcess[str]:
    """The reviewer's script run as a DBA runs it: psql -v ON_ERROR_STOP=1, as the main tree's migrator."""
    server, migrator = provisioned.server.connection, provisioned.names.migrator(DatabaseKey.MAIN)
    login = {
        "PGHOST": server.host,
        "PGPORT": str(server.port),
        "PGUSER": migrator,
        "PGPASSWORD": provisioned.passwords[migrator],
        "PGDATABASE": provisioned.databases[DatabaseKey.MAIN],
        "PGOPTIONS": "-c client_min_messages=warning",  # the second run's skipping NOTICEs are no error
    }
    command = [str(dump_client_bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    return subprocess.run(
        command, input=script, text=True, capture_output=True, env={**os.environ, **login}, timeout=120
    )


def test_the_offline_sql_backfills_in_committed_batches_and_runs_twice(
    provisioned: ProvisionedDatabases, main_target: runner.Target, tmp_path: Path
) -> None:
    location = example_trees(tmp_path) / "main"
    target = runner.Target(main_target.tree, main_target.url, main_target.expected_database, location)
    head = declared_head(default_location("main"))
    runner.upgrade(target, head)
    with app_connection(provisioned) as connection:
        seeded = [row[0] for row in connection.execute(SEED, (SEEDED_ROWS,)).fetchall()]
    script = runner.upgrade_sql(target, f"{head}:{CHECK_REVISION}")

    first, second = psql_as_migrator(provisioned, script), psql_as_migrator(provisioned, script)

    assert (first.returncode, first.stderr, second.returncode, second.stderr) == (0, "", 0, "")
    assert runner.current_revision(target) == CHECK_REVISION
    with app_connection(provisioned) as connection:
        unfilled = connection.execute(
            "SELECT count(*) FROM user_invitations WHERE email_normalized IS NULL OR inviter_id IS DISTINCT FROM "
            "invited_by OR email_normalized <> lower(btrim(email))"
        ).fetchone()
        batches = connection.execute(
            "SELECT xmin::text, count(*) FROM user_invitations WHERE id = ANY(%s) GROUP BY 1", (seeded,)
        ).fetchall()
    assert unfilled == (0,)
    assert max(count for _, count in batches) <= BACKFILL_BATCH_SIZE, "the offline backfill commits each batch"
