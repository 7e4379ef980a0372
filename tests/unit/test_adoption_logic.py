"""The adoption's pure logic on inventories built here, with no server: the baseline, table differences,
the stamp's name collision. The tests in tests/adoption read the same things off real databases."""

from __future__ import annotations

from ops.adoption.baseline import Rename, find_baseline
from ops.adoption.catalog import Column, Constraint, DatabaseInventory, Index, Table
from ops.adoption.revision_shapes import RevisionShape

ID = Column("id", "bigint", True, None, "a", "")
MESSAGE = Column("message", "text", True, None, "", "")
LEVEL = Column("level", "text", True, None, "", "")
KEY = Constraint("logs_pkey", "PRIMARY KEY (id)")
LEVEL_INDEX = "CREATE INDEX ON public.logs USING btree (level)"


def inventory(*tables: Table, indexes: tuple[Index, ...] = ()) -> DatabaseInventory:
    return DatabaseInventory("db", "owner", {table.name: table for table in tables}, indexes, {})


def logs_table(*columns: Column) -> Table:
    return Table("logs", "owner", (ID, *columns), (KEY,))


# Two revisions: the table, then an index on it.
SHAPES = [
    RevisionShape("r1", inventory(logs_table(MESSAGE, LEVEL))),
    RevisionShape("r2", inventory(logs_table(MESSAGE, LEVEL), indexes=(Index("idx_logs_level", "logs", LEVEL_INDEX),))),
]
TREE_TABLES = frozenset({"logs"})


def test_a_database_without_the_trees_tables_has_nothing_to_stamp() -> None:
    assert find_baseline(inventory(), TREE_TABLES, SHAPES).revision is None


def test_the_newest_revision_the_tables_match_is_the_baseline() -> None:
    live = inventory(logs_table(MESSAGE, LEVEL), indexes=(Index("idx_logs_level", "logs", LEVEL_INDEX),))
    baseline = find_baseline(live, TREE_TABLES, SHAPES)
    assert (baseline.revision, baseline.renames, baseline.to_build, baseline.refused) == ("r2", (), (), False)


def test_an_index_made_by_hand_under_another_name_is_renamed_not_built_again() -> None:
    live = inventory(logs_table(MESSAGE, LEVEL), indexes=(Index("my_level_index", "logs", LEVEL_INDEX),))
    baseline = find_baseline(live, TREE_TABLES, SHAPES)
    assert baseline.revision == "r2"
    assert baseline.renames == (Rename("logs", "my_level_index", "idx_logs_level"),)


def test_without_the_later_index_the_earlier_revision_is_stamped_and_the_index_left_to_the_upgrade() -> None:
    baseline = find_baseline(inventory(logs_table(MESSAGE, LEVEL)), TREE_TABLES, SHAPES)
    assert (baseline.revision, baseline.renames, baseline.to_build) == ("r1", (), ("idx_logs_level",))


def test_a_table_no_revision_has_is_refused_with_its_difference_named() -> None:
    baseline = find_baseline(inventory(logs_table(MESSAGE)), TREE_TABLES, SHAPES)
    assert baseline.refused and baseline.revision is None
    assert any("level" in line and line.startswith("against revision r") for line in baseline.differences)


def test_a_column_of_another_type_is_a_difference_and_a_missing_key_only_when_keys_are_compared() -> None:
    wanted = logs_table(MESSAGE)
    other_type = Table("logs", "owner", (ID, Column("message", "character varying(255)", True, None, "", "")), (KEY,))
    assert len(other_type.differences(wanted)) == 1 and "message" in other_type.differences(wanted)[0]
    keyless = Table("logs", "owner", (ID, MESSAGE), ())
    assert keyless.differences(wanted) != []
    assert keyless.differences(wanted, compare_keys=False) == []


def test_the_name_of_the_stamped_version_tables_key_is_found_wherever_it_is_taken() -> None:
    name = "alembic_version_main_pkc"
    holder = Table("notes", "owner", (ID,), (Constraint(name, "UNIQUE (id)"),))
    assert inventory(holder).relation_named(name) == "a constraint of notes"
    assert inventory(logs_table(), indexes=(Index(name, "logs", LEVEL_INDEX),)).relation_named(name) == (
        "an index of logs"
    )
    assert inventory(Table(name, "owner", (ID,), ())).relation_named(name) == f"the table {name}"
    checked = Table("notes", "owner", (ID,), (Constraint(name, "CHECK ((id > 0))"),))
    assert inventory(checked).relation_named(name) is None  # a CHECK makes no relation of that name
