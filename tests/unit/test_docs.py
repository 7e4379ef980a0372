"""The privilege matrix in docs/architecture.md is the model's, rendered: never edited by hand."""

from ops.commands import docs


def test_the_documented_matrix_is_the_models() -> None:
    assert docs.ARCHITECTURE.read_text() == docs.rendered_document(), "run scripts/docs and commit the result"


def test_the_matrix_says_the_writer_only_inserts() -> None:
    row = next(line for line in docs.render_matrix().splitlines() if line.startswith("| `headhunter_logs_writer`"))
    # database, schema, tables, version table, sequences, new tables, through
    assert row.endswith("| CONNECT | USAGE | INSERT | - | - | INSERT | default privileges, grant |")


def test_the_matrix_shows_every_kind_of_object_that_verification_checks() -> None:
    header = next(line for line in docs.render_matrix().splitlines() if line.startswith("| role |"))
    for column in ("database", "schema", "tables", "version table", "sequences", "new tables"):
        assert f"| {column} |" in header
