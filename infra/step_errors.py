"""The errors the migration step raises, each marked so that a deploy tells them apart from the engine's events.

The engine passes a dynamic provider's exception on as the message of an error diagnostic on the
step's resource ("Exception calling application: <message>"), its class lost on the way. So each of
these errors starts its message with a marker of this project's, `[headhunter:<kind>]`:
ops/deploy/engine_events.py finds it in that event and chooses the exit code from the kind. The
markers are ours and stable; no other text of the engine's decides an exit code.
"""

from __future__ import annotations

from typing import ClassVar

MARKER_PREFIX = "[headhunter:"


def marker(kind: str) -> str:
    return f"{MARKER_PREFIX}{kind}]"


class MarkedStepError(Exception):
    """An error of the migration step whose message starts with its kind's marker."""

    kind: ClassVar[str]

    def __init__(self, message: str) -> None:
        super().__init__(f"{marker(self.kind)} {message}")
