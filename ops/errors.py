"""User-facing errors and the exit codes every script shares: defined here, rendered into each
--help (ops/commands/cli.py), README.md and docs/pipelines.md (scripts/docs)."""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable


class ExitCode(enum.IntEnum):
    OK = 0
    UNEXPECTED = 1  # a bug: the traceback is printed
    BAD_INPUT = 2  # arguments, stack config, names: nothing was changed
    VERIFY_FAILED = 3  # the deployed state differs from the expected one
    TOOLCHAIN = 4  # Pulumi CLI, plugin or virtualenv missing or failed to build
    SERVER_UNREACHABLE = 5  # PostgreSQL does not answer, or refuses the admin login
    STACK_LOCKED = 6  # another deploy holds the stack
    MIGRATION_FAILED = 7  # an Alembic revision failed; the database stays at the previous one
    DEPLOY_FAILED = 8  # pulumi up/preview/destroy failed for another reason
    MIGRATION_REFUSED = 9  # the migration gate refused a pending revision; nothing ran
    POLICY_VIOLATED = 10  # the program breaks a mandatory rule of the policy pack; nothing was deployed


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "ok",
    ExitCode.UNEXPECTED: "a bug (traceback printed)",
    ExitCode.BAD_INPUT: "bad input (arguments, stack config, names; nothing changed)",
    ExitCode.VERIFY_FAILED: "the deployed state differs from the model",
    ExitCode.TOOLCHAIN: "toolchain (CLI, plugin or virtualenv missing or failed to build; the policy pack did not "
    "start)",
    ExitCode.SERVER_UNREACHABLE: "PostgreSQL (the stack's server or the state backend) unreachable or refusing "
    "the login",
    ExitCode.STACK_LOCKED: "the stack is locked by another deploy",
    ExitCode.MIGRATION_FAILED: "a migration failed (the database stays at the previous revision)",
    ExitCode.DEPLOY_FAILED: "the engine failed for another reason",
    ExitCode.MIGRATION_REFUSED: "the migration gate refused a pending revision (named with its statement, rule and "
    "safe rewrite; nothing changed)",
    ExitCode.POLICY_VIOLATED: "the program breaks a rule of the policy pack (each named with its fix; nothing "
    "deployed)",
}
HELP_SHOWN = 64
"""Only between a script and its argument check (ops/commands/check_arguments.sh): --help was
answered, the script stops with exit 0."""


def exit_codes_text() -> str:
    """Every exit code with its meaning, as --help, README.md and docs/pipelines.md give them."""
    return "; ".join(f"{int(code)} {meaning}" for code, meaning in MEANINGS.items())


class UserError(Exception):
    """A problem the user can fix: printed as one sentence naming the problem and the fix."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_main(main: Callable[[], int]) -> None:
    try:
        code = main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        code = error.exit_code
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
