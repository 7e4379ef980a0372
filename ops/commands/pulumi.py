"""`scripts/pulumi`: the pinned CLI run in the project's environment (see ops.toolchain.pinned.pulumi_env)."""

from __future__ import annotations

import os
import sys

from ops.toolchain import pinned


def main() -> None:
    cli = pinned.cli_path()
    # Replaces this process with the CLI, as the shell's `exec` would.
    os.execve(cli, [str(cli), *sys.argv[1:]], pinned.pulumi_env())  # noqa: S606


if __name__ == "__main__":
    main()
