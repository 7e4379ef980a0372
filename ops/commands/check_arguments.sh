# Sourced by every script, from the repository root: the script's argument check (ops/commands/cli.py),
# run before bootstrap, the server or the engine can change anything. Exits the script after --help
# (0) or on a bad argument (2, ops/errors.py); returns when the script may go on.
check_arguments() {
  local code=0
  python3 -B -m ops.commands.cli "$@" || code=$?
  [ "$code" = 0 ] && return 0
  [ "$code" = "$(python3 -B -c 'from ops.errors import HELP_SHOWN; print(HELP_SHOWN)')" ] && exit 0
  exit "$code"
}
