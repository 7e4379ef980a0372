"""Upgrade one tree in a process of its own, as a second deploy job would.

Reads {"tree": ..., "url": ..., "expected_database": ...} as JSON on stdin, so the password is
never a process argument; prints the applied revisions as JSON.
"""

from __future__ import annotations

import json
import sys

from sqlalchemy.engine import make_url

from migrations import runner


def main() -> None:
    request = json.load(sys.stdin)
    target = runner.Target(runner.tree_named(request["tree"]), make_url(request["url"]), request["expected_database"])
    print(json.dumps(list(runner.upgrade(target).applied)))


if __name__ == "__main__":
    main()
