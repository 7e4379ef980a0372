"""The second half of `scripts/env`: PostgreSQL's client programs of the embedded server's major on PATH.

pg_dump, pg_restore and psql come from the pinned client build of that major (ops/localpg/client_builds.py;
fetched on the first run), so that a user's first `pg_dump` of the dev stack's server works.
"""

from __future__ import annotations

import shlex
import sys

from ops.errors import ExitCode, run_main
from ops.localpg.embedded import dump_client_bin_dir


def main(argv: list[str] | None = None) -> int:
    if sys.argv[1:] if argv is None else argv:
        print("usage: python -m ops.commands.client_programs", file=sys.stderr)
        return ExitCode.BAD_INPUT
    print(f'export PATH={shlex.quote(str(dump_client_bin_dir()))}:"$PATH"')
    return 0


if __name__ == "__main__":
    run_main(main)
