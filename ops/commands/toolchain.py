"""`python -m ops.commands.toolchain ensure|cli-path|env`: what scripts/bootstrap and scripts/env run."""

from __future__ import annotations

import sys

from ops.errors import ExitCode, run_main
from ops.toolchain.pinned import cli_path, ensure, shell_exports


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["ensure"]:
        return ensure()
    if args == ["cli-path"]:
        print(cli_path())
        return 0
    if args == ["env"]:
        print(shell_exports())
        return 0
    print("usage: python -m ops.commands.toolchain ensure|cli-path|env", file=sys.stderr)
    return ExitCode.BAD_INPUT


if __name__ == "__main__":
    run_main(main)
