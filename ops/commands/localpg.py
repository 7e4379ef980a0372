"""`scripts/localpg start|stop|status|reset|env`: the embedded PostgreSQL (ops/localpg/embedded.py)."""

from __future__ import annotations

import sys

from ops.commands import cli
from ops.errors import run_main
from ops.localpg.embedded import current_connection, is_initialized, remove_cluster, start, status, stop


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("localpg", sys.argv[1:] if argv is None else argv)
    if args.command == "start":
        start(args.unsafe_fast)
    elif args.command == "stop":
        stop()
    elif args.command == "status":
        return status()
    elif args.command == "reset":
        if is_initialized():
            stop()
        remove_cluster()
        print("localpg: cluster deleted", file=sys.stderr)
    else:
        print(current_connection().exports())
    return 0


if __name__ == "__main__":
    run_main(main)
