"""`scripts/localpg start|stop|status|reset|env`: the embedded PostgreSQL (ops/localpg/embedded.py)."""

from __future__ import annotations

import shlex
import sys

import yaml

from infra.settings import NAMESPACE, declared_defaults
from model.server_versions import supported_text
from ops import paths
from ops.commands import cli
from ops.errors import ExitCode, UserError, run_main
from ops.localpg.embedded import (
    current_connection,
    dump_client_bin_dir,
    is_initialized,
    remove_cluster,
    start,
    status,
    stop,
)


def stack_major(stack: str) -> int:
    """The stack file's embeddedServerVersion, else Pulumi.yaml's default: read as YAML, before any engine runs."""
    stack_file = paths.PROJECT_DIR / f"Pulumi.{stack}.yaml"
    config = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {} if stack_file.exists() else {}
    value = str(config.get(f"{NAMESPACE}:embeddedServerVersion") or declared_defaults()["embeddedServerVersion"])
    if not value.isdigit():
        raise UserError(
            f"{stack_file.name}: {NAMESPACE}:embeddedServerVersion is {value!r}: give a major ({supported_text()})",
            ExitCode.BAD_INPUT,
        )
    return int(value)


def main(argv: list[str] | None = None) -> int:
    args = cli.parse("localpg", sys.argv[1:] if argv is None else argv)
    if args.command == "start":
        start(args.unsafe_fast, args.major or (stack_major(args.stack) if args.stack else None))
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
        print(f'export PATH={shlex.quote(str(dump_client_bin_dir()))}:"$PATH"')  # pg_dump of its major
    return 0


if __name__ == "__main__":
    run_main(main)
