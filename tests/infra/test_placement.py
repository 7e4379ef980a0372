"""Each table and index in its own database and nowhere else; both trees at their target; no invalid index."""

from __future__ import annotations

import psycopg

from fixtures.catalog import INDEXES, TABLES, misplaced_tables, schema_of_its_revision, version_rows
from infra.migration_preview import target_difference
from migrations.shared.heads import copy_location, default_location
from migrations.shared.tree import TREES
from model.names import DatabaseKey
from ops.deploy.deployed_stack import DeployedStack


def names(connection: psycopg.Connection, query: str) -> set[str]:
    return {row[0] for row in connection.execute(query).fetchall()}


def test_tables(catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, database: DatabaseKey) -> None:
    actual = names(catalogs[database], TABLES)
    expected = schema_of_its_revision(catalogs[database], database).tables | {TREES[database.value].version_table}
    misplaced, missing = sorted(misplaced_tables(catalogs[database], database.value)), sorted(expected - actual)
    assert not misplaced, (
        f"tables that do not belong in {stack.database(database)}: {misplaced}; move their data to the right "
        "database and drop them by hand (the deploy never drops a table)"
    )
    assert not missing, f"{stack.database(database)} lacks {missing}: run scripts/migrate {stack.stack} {database}"


def test_indexes(catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, database: DatabaseKey) -> None:
    actual = names(catalogs[database], INDEXES)
    expected = schema_of_its_revision(catalogs[database], database).indexes
    assert actual <= expected, f"indexes not in the model in {stack.database(database)}: {sorted(actual - expected)}"
    assert actual >= expected, (
        f"{stack.database(database)} lacks the indexes {sorted(expected - actual)}, which a deploy does not "
        f"recreate: recreate each by hand with its definition in migrations/{database}/versions/, CONCURRENTLY "
        "(on a partitioned log table: ON ONLY the table, CONCURRENTLY on each partition, then ATTACH, as "
        "migrations/shared/concurrent_index.py does)"
    )


def test_no_invalid_index(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, database: DatabaseKey
) -> None:
    invalid = names(
        catalogs[database],
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid",
    )
    assert not invalid, f"invalid indexes in {stack.database(database)}: {sorted(invalid)}; drop and rebuild them"


def test_the_tree_is_at_head(
    catalogs: dict[DatabaseKey, psycopg.Connection], stack: DeployedStack, database: DatabaseKey
) -> None:
    """At the head the stack lets it reach: its deploy's expand/contract target (a contract revision may wait
    for headhunter-db:contractThrough), never behind it, never at a revision the tree lacks."""
    tree = TREES[database.value]
    versions = version_rows(catalogs[database], database)
    location = copy_location(tree.key) or default_location(tree.key)
    difference = target_difference(tree, location, versions, stack.contract_through)
    assert difference is None, f"{stack.database(database)} {difference} (stack {stack.stack})"
