"""A state file that a killed deploy left half-written is restored from the backend's backup, with a word."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

from fixtures.programs import ENGINE_PROJECT, open_engine_stack

pytestmark = pytest.mark.engine


def program() -> None:
    pulumi.export("answer", 42)


@pytest.mark.parametrize("damage", [b"", b'{"version": 3, "checkpoint": {"stack": "te'])
def test_an_empty_or_cut_checkpoint_is_restored_from_its_backup(
    engine_workspace: Path, damage: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = open_engine_stack(engine_workspace, program)
    stack.up(color="never")
    stack.up(color="never")  # a second checkpoint, so that a backup exists
    checkpoint = engine_workspace / "state" / ".pulumi" / "stacks" / ENGINE_PROJECT / "test.json"
    assert checkpoint.with_name("test.json.bak").exists()
    checkpoint.write_bytes(damage)

    reopened = open_engine_stack(engine_workspace, program)
    assert reopened.outputs()["answer"].value == 42
    assert "was damaged by an interrupted deploy: restored the previous checkpoint" in capsys.readouterr().out
    assert [path.read_bytes() for path in checkpoint.parent.glob("test.json.damaged-*")] == [damage]
