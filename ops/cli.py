"""Every script's arguments, in one place and one library (argparse), usable before anything is set up.

This module imports only the standard library: each `scripts/X` runs `python3 -m ops.cli X ARGS`
first, so `--help` answers and a bad argument stops with exit 2 before bootstrap, the server or
the engine change anything. The Python entry points parse the same arguments with the same parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ops.errors import ExitCode

EXIT_CODES = """exit codes (the same for every script):
  0 ok   1 a bug (traceback printed)   2 bad input (arguments, stack config, names; nothing changed)
  3 the deployed state differs from the model   4 toolchain (CLI, plugin or virtualenv)
  5 PostgreSQL unreachable or refusing the admin   6 the stack is locked by another deploy
  7 a migration failed (the database stays at the previous revision)   8 the engine failed otherwise"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(ExitCode.BAD_INPUT)


def _parser(name: str, description: str) -> _Parser:
    return _Parser(
        prog=f"scripts/{name}",
        description=description,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )


def _stack(parser: argparse.ArgumentParser, **kwargs: object) -> None:
    parser.add_argument("stack", metavar="STACK", help="the stack (Pulumi.STACK.yaml must exist)", **kwargs)  # type: ignore[arg-type]


def up() -> _Parser:
    parser = _parser(
        "up",
        "The main job: deploy a stack (default dev, on the embedded PostgreSQL): preflight, `pulumi up` of the "
        "project's program (roles, grants, then both migration trees), a summary and checks that each runtime "
        "role works. Creates the stack in the state backend on its first deploy.",
    )
    _stack(parser, nargs="?", default="dev")
    return parser


def deploy() -> _Parser:
    parser = _parser(
        "deploy",
        "The CD stage for one stack: preflight, preview with the diff, up (with both migration trees), verify. "
        "The stack must exist in the state backend (create it once with `scripts/pulumi stack init STACK`).",
    )
    _stack(parser)
    return parser


def verify() -> _Parser:
    parser = _parser(
        "verify",
        "Check a deployed stack against the model (roles, the full privilege matrix, placement, trees at head). "
        "Writes reports/verify-STACK.xml (JUnit) and reports/verify-STACK.json.",
    )
    _stack(parser, nargs="?")
    parser.add_argument("--hosts", default="local://", help="testinfra hosts, e.g. ssh://admin@db-host")
    parser.add_argument(
        "--description-stdin",
        action="store_true",
        help="read the stack's outputs as JSON on standard input (`pulumi stack output --json --show-secrets`)",
    )
    return parser


def migrate() -> _Parser:
    parser = _parser(
        "migrate",
        "Run the migration trees outside `pulumi up`, with a deployed stack's names and credentials.",
    )
    _stack(parser)
    parser.add_argument("tree", nargs="?", default="all", choices=["main", "logs", "all"])
    parser.add_argument("action", nargs="?", default="upgrade", choices=["upgrade", "current", "history"])
    parser.add_argument("--sql", action="store_true", help="print the upgrade's SQL for review; run nothing")
    return parser


def docs() -> _Parser:
    parser = _parser("docs", "Re-render the generated privilege matrix in docs/architecture.md from the model.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 3 when the docs are stale")
    return parser


def bench() -> _Parser:
    parser = _parser(
        "bench",
        "Benchmarks on the embedded PostgreSQL, each against a baseline measured in the same run; writes "
        "reports/bench.md and reports/bench.json and puts the table into README.md (about 10 minutes).",
    )
    parser.add_argument("--quick", action="store_true", help="small tables, one run; leaves README alone")
    return parser


def test() -> _Parser:
    parser = _parser(
        "test",
        "The whole suite: ruff and mypy, then every test against the embedded PostgreSQL and the real Pulumi "
        "engine and provider. Writes reports/junit.xml.",
    )
    parser.add_argument("--fast", action="store_true", help="skip the tests marked slow (CI runs them all)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed on to pytest")
    return parser


def localpg() -> _Parser:
    parser = _parser("localpg", "The embedded PostgreSQL of the dev stack and the tests.")
    parser.add_argument(
        "command",
        choices=["start", "stop", "status", "env", "reset"],
        help="env prints PG* exports for psql; reset stops the server and deletes the cluster",
    )
    return parser


def bootstrap() -> _Parser:
    parser = _parser(
        "bootstrap",
        "Idempotent setup, called by every other script: .venv from requirements.txt, then the pinned Pulumi "
        "CLI, language host, shims and postgresql plugin (built where missing; see README, The toolchain).",
    )
    parser.add_argument("--python-only", action="store_true", help="only the virtualenv")
    return parser


def lock() -> _Parser:
    return _parser("lock", "Re-pin requirements.txt (with hashes) from requirements.in.")


def env() -> _Parser:
    return _parser(
        "env",
        'Print the shell exports with which plain `pulumi` runs this project as the scripts do: eval "$(scripts/env)".',
    )


def pulumi() -> _Parser:
    parser = _parser(
        "pulumi",
        "The pinned Pulumi CLI with the project's plugins and state backend, e.g. `scripts/pulumi about`. "
        "Everything after scripts/pulumi goes to the CLI (`scripts/pulumi help` for its own help).",
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the CLI's arguments")
    return parser


PARSERS: dict[str, Callable[[], _Parser]] = {
    "up": up,
    "deploy": deploy,
    "verify": verify,
    "migrate": migrate,
    "docs": docs,
    "bench": bench,
    "test": test,
    "localpg": localpg,
    "bootstrap": bootstrap,
    "lock": lock,
    "env": env,
    "pulumi": pulumi,
}


def parse(command: str, argv: list[str]) -> argparse.Namespace:
    return PARSERS[command]().parse_args(argv)


def main(argv: list[str]) -> int:
    """`python3 -m ops.cli COMMAND ARGS`: exit 0 to go on, 2 for bad arguments, 64 after printing help."""
    command, args = argv[0], argv[1:]
    if args[:1] in (["-h"], ["--help"]) or (command != "pulumi" and ("-h" in args or "--help" in args)):
        PARSERS[command]().print_help()
        return HELP_SHOWN
    parse(command, args)
    return ExitCode.OK


HELP_SHOWN = 64  # tells the calling script to stop with exit 0: it asked only for help


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
