"""scripts/rotate writes the raised numbers into the stack file atomically, through the real CLI.

`pulumi config set` truncates the stack file and writes it again: a rotation killed in between left
`Pulumi.STACK.yaml` empty (its config and its secrets' salt gone). ops/commands/rotate.py has the CLI
write a copy that then replaces the file, so the file is either the old one or the new one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pulumi import automation as auto

from fixtures.programs import engine_project, open_engine_stack
from infra.settings import NAMESPACE
from ops.commands.rotate import write_rotations
from ops.errors import UserError

pytestmark = [pytest.mark.engine]

KEY = f"{NAMESPACE}:passwordRotations"


def empty_program() -> None:
    """Nothing to declare: only the stack file is under test."""


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> auto.Stack:
    """A stack of its own (file backend in tmp_path) whose stack file has two rotation numbers."""
    environ: dict[str, str] = {}
    engine_project(tmp_path, environ)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    opened = open_engine_stack(tmp_path, empty_program)
    stack_file(opened).write_text(f"config:\n  {KEY}:\n    app: 1\n    logs_writer: 3\n")
    return opened


def stack_file(stack: auto.Stack) -> Path:
    return Path(stack.workspace.work_dir) / f"Pulumi.{stack.name}.yaml"


def copies_left(stack: auto.Stack) -> list[str]:
    return sorted(path.name for path in stack_file(stack).parent.glob(".Pulumi.*"))


def test_the_raised_numbers_replace_the_stack_file_in_one_step(stack: auto.Stack) -> None:
    before = stack_file(stack).stat().st_ino
    write_rotations(stack, {"app": 2, "logs_writer": 4})
    assert yaml.safe_load(stack_file(stack).read_text())["config"][KEY] == {"app": 2, "logs_writer": 4}
    assert stack_file(stack).stat().st_ino != before, "the stack file was rewritten in place, not replaced whole"
    assert copies_left(stack) == []


def test_a_write_the_cli_refuses_leaves_the_stack_file_as_it_was(stack: auto.Stack) -> None:
    before = stack_file(stack).read_bytes()
    with pytest.raises(UserError, match=r"could not be written.*nothing was changed"):
        write_rotations(stack, {"app[0]": 2})  # app is a number: the CLI cannot index into it
    assert stack_file(stack).read_bytes() == before
    assert copies_left(stack) == []
