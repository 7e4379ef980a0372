"""The PostgreSQL majors this project supports: each is tested for real (scripts/test --versions).

A major enters this list when the whole version-matrix stage passes on it; 14 left it when its
community support ended (November 2026). A server of another major is refused before anything is
changed, unless the stack opts in with `allowUntestedServerVersion`.
"""

from __future__ import annotations

SUPPORTED_MAJORS = (15, 16, 17, 18)
DEFAULT_MAJOR = 18
"""The embedded server's major when a stack sets no embeddedServerVersion: the newest, which passes the
whole suite (CI runs it there, and the version-matrix stage on the others)."""


def is_supported(major: int) -> bool:
    """Whether the project tests this major: the one question every check of a server's or a stack's major asks."""
    return major in SUPPORTED_MAJORS


def supported_text() -> str:
    return ", ".join(map(str, SUPPORTED_MAJORS))
