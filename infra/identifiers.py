"""PostgreSQL identifiers, validated once.

PostgreSQL silently truncates an identifier over 63 bytes (with only a NOTICE), so two long names
can collide; and a name that needs quoting is a trap for every hand-written query a DBA runs later.
We accept only names that are valid unquoted: lower case letters, digits and underscores.
"""

from __future__ import annotations

import re

MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1 in a stock build
_UNQUOTED = re.compile(r"[a-z_][a-z0-9_]*")


def identifier_problem(name: str) -> str | None:
    """Why `name` is not a safe identifier, or None when it is."""
    if not name:
        return "it is empty"
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        return f"it is {len(name.encode())} bytes long and PostgreSQL would truncate it to {MAX_IDENTIFIER_BYTES}"
    if not _UNQUOTED.fullmatch(name):
        return "it would need quoting: use only lower case letters, digits and underscores, not starting with a digit"
    return None
