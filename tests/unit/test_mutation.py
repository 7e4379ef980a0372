"""scripts/mutate: its operators on small snippets, its reach (every product module has stages), and
its reading of survivors (which are alive, which equivalent)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from ops.errors import ExitCode, UserError
from ops.paths import REPO_ROOT
from tools.mutate import command, stages
from tools.mutate.operators import (
    DELETE_STATEMENT,
    DROP_ENTRY,
    DROP_FILTER,
    IF_FALSE,
    IF_TRUE,
    MOVE_BOUND,
    NEGATE,
    REMOVE_GUARD,
    SHIFT_CONSTANT,
    Edit,
    Span,
    apply,
    mutants,
)


def made(operator: str, snippet: str) -> list[tuple[int, str]]:
    """(line, mutated line) of each mutant of one operator, for a snippet written indented."""
    return [(m.line, m.mutated_line) for m in mutants("snippet.py", textwrap.dedent(snippet)) if m.operator == operator]


def test_a_statement_or_a_call_is_replaced_by_pass_and_docstrings_imports_and_pass_are_kept() -> None:
    snippet = '''
        import os
        def save(path):
            """Write it."""
            os.sync()
            count = 1
            pass
            return count
        '''
    assert made(DELETE_STATEMENT, snippet) == [(5, "pass"), (6, "pass"), (8, "pass")]


def test_a_deleted_statement_of_several_lines_leaves_one_pass_and_the_rest_of_the_file_as_written() -> None:
    source = "def f():\n    call(\n        1,\n    )  # why\n    return 2\n"
    first = next(m for m in mutants("snippet.py", source) if m.operator == DELETE_STATEMENT)
    assert first.source == "def f():\n    pass  # why\n    return 2\n"


def test_an_if_is_made_always_and_never_true() -> None:
    snippet = """
        if ready:
            start()
        elif late:
            stop()
        else:
            wait()
        """
    assert made(IF_TRUE, snippet) == [(2, "if True:"), (4, "elif True:")]
    assert made(IF_FALSE, snippet) == [(2, "if False:"), (4, "elif False:")]


def test_a_guard_clause_is_removed_whole_instead_of_made_never_true() -> None:
    snippet = """
        def check(name):
            if not name:
                raise ValueError(name)
            if name == "x":
                return None
            return name
        """
    assert made(REMOVE_GUARD, snippet) == [(3, "pass"), (5, "pass")]
    assert made(IF_FALSE, snippet) == []


def test_a_comprehensions_filter_is_dropped() -> None:
    assert made(DROP_FILTER, "kept = [x for x in xs if x > 0]\n") == [(1, "kept = [x for x in xs if True]")]


def test_a_comparisons_bound_moves_and_an_integer_it_compares_with_shifts_by_one() -> None:
    snippet = """
        if len(name) > 63 or 1 <= size < limit:
            pass
        """
    assert made(MOVE_BOUND, snippet) == [
        (2, "if len(name) >= 63 or 1 <= size < limit:"),
        (2, "if len(name) > 63 or 1 < size < limit:"),
        (2, "if len(name) > 63 or 1 <= size <= limit:"),
    ]
    assert made(SHIFT_CONSTANT, snippet) == [
        (2, "if len(name) > 64 or 1 <= size < limit:"),
        (2, "if len(name) > 62 or 1 <= size < limit:"),
        (2, "if len(name) > 63 or 2 <= size < limit:"),
        (2, "if len(name) > 63 or 0 <= size < limit:"),
    ]


def test_each_entry_of_a_list_set_or_tuple_is_dropped_once() -> None:
    assert made(DROP_ENTRY, "ROLES = ['app', 'logs']\n") == [(1, "ROLES = ['logs']"), (1, "ROLES = ['app']")]
    assert made(DROP_ENTRY, "KEYS = {'a'}\n") == [(1, "KEYS = set()")]
    assert made(DROP_ENTRY, "PAIR = (1, 2)\n") == [(1, "PAIR = (2,)"), (1, "PAIR = (1,)")]


def test_annotations_and_assignment_targets_are_not_mutated() -> None:
    snippet = """
        def pair(x: tuple[int, int] = (1,)) -> list[bool]:
            a, b = x
        """
    assert made(DROP_ENTRY, snippet) == [(2, "def pair(x: tuple[int, int] = ()) -> list[bool]:")]
    assert made(NEGATE, snippet) == []


def test_equality_identity_membership_booleans_and_not_are_negated() -> None:
    snippet = """
        ok = a == b and c is not None or not d in e
        flag = True if key is None else False
        """
    assert made(NEGATE, snippet) == [
        (2, "ok = (a == b and c is not None) and (not d in e)"),
        (2, "ok = a == b or c is not None or not d in e"),
        (2, "ok = a == b and c is not None or d in e"),
        (2, "ok = a != b and c is not None or not d in e"),
        (2, "ok = a == b and c is None or not d in e"),
        (2, "ok = a == b and c is not None or not d not in e"),
        (3, "flag = True if key is not None else False"),
        (3, "flag = False if key is None else False"),
        (3, "flag = True if key is None else True"),
    ]


def committed_files() -> set[str]:
    """The checkout's files as git knows them (work in progress left out); every file in a copy
    without git (the scratch copy scripts/mutate runs the tests in is the last commit)."""
    if (REPO_ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        return set(listed.stdout.splitlines())
    return {str(path.relative_to(REPO_ROOT)) for path in REPO_ROOT.rglob("*") if path.is_file()}


def product_modules() -> list[str]:
    folders = tuple(f"{folder}/" for folder in stages.PRODUCT_FOLDERS)
    return sorted(path for path in committed_files() if path.startswith(folders) and path.endswith(".py"))


@pytest.mark.parametrize("module", product_modules())
def test_every_product_module_with_a_mutant_has_stages(module: str) -> None:
    assert module in stages.STAGES or not command.mutants_of(module), (
        f"{module} has mutants but no stages: add the tests that judge it to STAGES in tools/mutate/stages.py"
    )


def test_every_module_with_stages_and_every_test_a_stage_names_is_committed() -> None:
    committed = committed_files()
    for module, module_stages in stages.STAGES.items():
        assert module in committed, module
        for selection in (test for stage in module_stages for test in stage):
            path = selection.split("::")[0]
            assert path in committed or (REPO_ROOT / path).is_dir(), (module, selection)


def test_every_equivalent_entry_is_a_mutant_the_operators_still_make() -> None:
    for module, original, mutated in stages.EQUIVALENT:
        source = (REPO_ROOT / module).read_text()
        lines = source.splitlines()
        assert any(
            m.mutated_line == mutated and lines[m.line - 1].strip() == original for m in mutants(module, source)
        ), f"stale entry of EQUIVALENT: {module}: {original} -> {mutated}"


def test_a_folder_stands_for_its_modules_and_an_unknown_target_is_refused() -> None:
    assert command.targets(["model/"]) == [module for module in stages.STAGES if module.startswith("model/")]
    assert command.targets(["migrations/shared", "infra/settings.py"])[-1] == "infra/settings.py"
    with pytest.raises(UserError, match=r"knows no module or folder 'infra/setings\.py'.*--list"):
        command.targets(["infra/setings.py"])


def test_only_a_listed_survivor_counts_as_equivalent() -> None:
    frozen = command.Survivor("infra/settings.py", 40, NEGATE, *stages.FROZEN_DATACLASS)
    bound = command.Survivor("infra/identifiers.py", 20, MOVE_BOUND, "if n > MAX:", "if n >= MAX:")
    assert frozen.equivalent_because == stages.FROZEN
    assert bound.equivalent_because is None
    assert str(bound) == "infra/identifiers.py:20 move-bound: `if n > MAX:` -> `if n >= MAX:`"
    long = command.Survivor("model/privileges.py", 138, DROP_ENTRY, "return (", "return (" + "Rule(), " * 40)
    assert str(long).endswith("Rule(), Rule(...`") and len(long.mutated_line) > 200


def test_the_stages_runner_without_a_module_prints_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert stages.main([]) == ExitCode.BAD_INPUT
    assert stages.main(["no/such.py"]) == ExitCode.BAD_INPUT
    assert "usage: python -m tools.mutate.stages MODULE" in capsys.readouterr().err


def test_every_mutant_compiles_and_differs_from_its_module() -> None:
    source = Path(REPO_ROOT / "model" / "rotation.py").read_text()
    found = mutants("model/rotation.py", source)
    assert found
    for mutant in found:
        compile(mutant.source, mutant.module, "exec")
        assert mutant.source != source


def test_a_replacement_that_does_not_compile_makes_no_mutant() -> None:
    lines = ["x = 1\n"]
    assert apply("snippet.py", lines, Edit(NEGATE, Span(1, 4, 1, 5), "(")) is None
    assert apply("snippet.py", lines, Edit(NEGATE, Span(1, 4, 1, 5), "2")) is not None
