"""A state file that a killed deploy left half-written is restored from the backend's backup, with a word."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

from fixtures.fault_log import SeenFunction
from fixtures.programs import ENGINE_PROJECT, open_engine_stack

pytestmark = pytest.mark.engine


def program() -> None:
    pulumi.export("answer", 42)


@pytest.mark.fault(
    what="a kill in the middle of a checkpoint write leaves the file backend's `<stack>.json` empty or cut "
    '(every plain command, `pulumi cancel` included, then fails with "failed to load checkpoint")',
    recovery="the next command of the scripts restores it from the backend's own `<stack>.json.bak` and keeps the "
    "damaged file beside it",
)
@pytest.mark.parametrize("damage", [b"", b'{"version": 3, "checkpoint": {"stack": "te'])
def test_an_empty_or_cut_checkpoint_is_restored_from_its_backup(
    engine_workspace: Path, damage: bytes, capsys: pytest.CaptureFixture[str], fault_seen: SeenFunction
) -> None:
    stack = open_engine_stack(engine_workspace, program)
    stack.up(color="never")
    stack.up(color="never")  # a second checkpoint, so that a backup exists
    checkpoint = engine_workspace / "state" / ".pulumi" / "stacks" / ENGINE_PROJECT / "test.json"
    assert checkpoint.with_name("test.json.bak").exists()
    checkpoint.write_bytes(damage)

    reopened = open_engine_stack(engine_workspace, program)
    assert reopened.outputs()["answer"].value == 42
    said = capsys.readouterr().out
    assert "was damaged by an interrupted deploy: restored the previous checkpoint" in said
    fault_seen("the next command opening the stack", None, said, "restored the previous checkpoint")
    assert [path.read_bytes() for path in checkpoint.parent.glob("test.json.damaged-*")] == [damage]
