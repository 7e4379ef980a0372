"""The project's own rules: what squawk cannot see in one revision's SQL, read with PostgreSQL's parser.

squawk judges a file statement by statement; these rules also know which tables the revision itself
created (a table made in the same revision holds no rows and no writer waits on it), which NOT NULL
checks it validated, the revision's phase (migrations.shared.phases: drops and renames wait for the
contract phase), and every timeout the offline SQL sets, env.py's opening statements included.
docs/migration-gate.md lists them with their safe rewrites.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType

from migrations.gate.statements import Statement


@dataclass(frozen=True)
class Rule:
    id: str
    refuses: str
    rewrite: str
    """The safe rewrite, one sentence."""


RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule(
            "index-not-concurrent",
            "CREATE INDEX without CONCURRENTLY on a table the revision did not create: writers wait for the build",
            "build it with CREATE INDEX CONCURRENTLY IF NOT EXISTS outside the transaction "
            "(migrations.shared.concurrent_index.create_concurrently, which drops an INVALID leftover first).",
        ),
        Rule(
            "volatile-default",
            "ADD COLUMN whose default is volatile (a function such as random(), gen_random_uuid(), clock_timestamp(), "
            "nextval(): serial, identity) or a stored generated column: the table is rewritten under ACCESS EXCLUSIVE",
            "add the column without a default (or with a constant one), backfill it in batches, then "
            "ALTER COLUMN ... SET DEFAULT for new rows.",
        ),
        Rule(
            "type-rewrite",
            "ALTER COLUMN ... TYPE on an existing table: unless the types are binary-coercible, every row is "
            "rewritten under ACCESS EXCLUSIVE",
            "add a column of the new type, fill it in batches (and from a trigger for new rows), switch the "
            "application to it, and drop the old column in a contract revision.",
        ),
        Rule(
            "not-null-without-check",
            "SET NOT NULL on an existing table with no validated CHECK (column IS NOT NULL) before it: the whole "
            "table is scanned under ACCESS EXCLUSIVE",
            "add CHECK (column IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it, then SET NOT NULL, which trusts the "
            "validated check instead of scanning the table.",
        ),
        Rule(
            "constraint-not-valid",
            "a FOREIGN KEY or CHECK added without NOT VALID, or a UNIQUE, PRIMARY KEY or EXCLUDE constraint added "
            "without USING INDEX, on an existing table: the table is read (or indexed) while writers wait",
            "add a FOREIGN KEY or CHECK as NOT VALID then VALIDATE CONSTRAINT it in a second statement; build a "
            "unique index CONCURRENTLY and ADD CONSTRAINT ... UNIQUE USING INDEX it.",
        ),
        Rule(
            "drop-or-rename-outside-contract",
            'DROP or RENAME of a table or a column in a revision that does not declare phase = "contract": the '
            "running application version still uses it",
            "keep the old table or column while the previous application version runs, and drop or rename it in a "
            'later revision that declares phase = "contract" (docs/expand-contract.md).',
        ),
        Rule(
            "timeout-missing",
            "a statement that takes a lock runs with no lock_timeout or no statement_timeout in force (a concurrent "
            "build needs the statement_timeout only: its wait blocks no writer)",
            "SET lock_timeout (short: seconds) and statement_timeout (fitted to the statement) before it, or let "
            "env.py's offline script set them for every revision.",
        ),
        Rule(
            "not-rerunnable",
            "a statement of the offline SQL that fails when the script runs a second time (CREATE without IF NOT "
            "EXISTS, DROP without IF EXISTS, ADD CONSTRAINT, RENAME, ATTACH PARTITION outside an IF)",
            "write CREATE ... IF NOT EXISTS, DROP ... IF EXISTS, ADD COLUMN IF NOT EXISTS, or put the statement in a "
            "DO block under IF NOT EXISTS (SELECT FROM pg_catalog ...) so a second run skips it.",
        ),
        Rule(
            "waiver-invalid",
            "a waiver in the revision file without a reason, naming an unknown rule, or matching no finding (or "
            "more than one statement)",
            "give the waiver a rule id, a fragment of exactly one statement that breaks it, and a reason; or remove "
            "it.",
        ),
    )
}

NON_VOLATILE_FUNCTIONS = frozenset(
    {
        "now",
        "transaction_timestamp",
        "statement_timestamp",
        "current_setting",
        "lower",
        "upper",
        "length",
        "date_trunc",
        "make_interval",
        "to_jsonb",
        "jsonb_build_object",
        "jsonb_build_array",
        "json_build_object",
        "json_build_array",
        "array_fill",
    }
)
"""Functions PostgreSQL marks STABLE or IMMUTABLE that defaults commonly call: evaluated once when the column is
added, so no row is rewritten. Any other function call in a new column's default is taken for volatile."""
SERIAL_TYPES = frozenset({"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"})
WRITER_FRIENDLY = (ast.TransactionStmt, ast.VariableSetStmt, ast.VariableShowStmt, ast.CommentStmt, ast.ExplainStmt)
"""Statements that take no lock a writer or DDL could queue behind."""


@dataclass
class _RevisionState:
    """What the revision did so far, in the order its statements run."""

    contract: bool
    new_tables: set[str] = field(default_factory=set)
    not_null_checks: dict[str, tuple[str, str]] = field(default_factory=dict)
    """NOT VALID checks of the form `column IS NOT NULL`, by name: (table, column)."""
    validated_not_null: set[tuple[str, str]] = field(default_factory=set)


def breaches(statements: Sequence[Statement], contract: bool) -> Iterator[tuple[int, str]]:
    """(index of the statement, rule id) for every rule each statement breaks, in statement order."""
    state = _RevisionState(contract)
    for index, statement in enumerate(statements):
        for rule in dict.fromkeys(_breaches(statement, state)):  # one finding per rule and statement
            yield index, rule


def _breaches(statement: Statement, state: _RevisionState) -> Iterator[str]:
    node = statement.node
    if _takes_locks(statement) and not _timeouts_in_force(statement):
        yield "timeout-missing"
    if isinstance(node, ast.IndexStmt):
        yield from _index(node, statement, state)
    elif isinstance(node, ast.CreateStmt):
        state.new_tables.add(_table(node.relation))
        if not node.if_not_exists and not statement.guarded:
            yield "not-rerunnable"
    elif isinstance(node, ast.AlterTableStmt):
        yield from _alter_table(node, statement, state)
    elif isinstance(node, ast.RenameStmt):
        yield from _rename(node, statement, state)
    elif isinstance(node, ast.DropStmt):
        yield from _drop(node, statement, state)
    elif _creates_without_if_not_exists(node) and not statement.guarded:
        yield "not-rerunnable"


def _takes_locks(statement: Statement) -> bool:
    node = statement.node
    if isinstance(node, ast.DoStmt):
        return statement.dynamic  # its static statements are judged one by one
    if isinstance(node, ast.SelectStmt):
        return bool(node.lockingClause)
    return not isinstance(node, WRITER_FRIENDLY)


def _timeouts_in_force(statement: Statement) -> bool:
    timeouts = statement.timeouts
    if _blocks_no_writer(statement.node):
        return timeouts.statement_timeout is not None
    return timeouts.lock_timeout is not None and timeouts.statement_timeout is not None


def _blocks_no_writer(node: ast.Node) -> bool:
    """A concurrent build, or a VALIDATE CONSTRAINT: what they wait for blocks no INSERT, UPDATE or DELETE."""
    if isinstance(node, (ast.IndexStmt, ast.DropStmt)):
        return bool(node.concurrent)
    if isinstance(node, ast.ReindexStmt):
        return any(isinstance(option, ast.DefElem) and option.defname == "concurrently" for option in node.params or ())
    if isinstance(node, ast.AlterTableStmt):
        return all(_subtype(command) is AlterTableType.AT_ValidateConstraint for command in node.cmds or ())
    return False


def _index(node: ast.IndexStmt, statement: Statement, state: _RevisionState) -> Iterator[str]:
    only = node.relation is not None and not node.relation.inh
    # ON ONLY a partitioned parent builds nothing (the index stays invalid until its partitions' attach).
    if not node.concurrent and not only and _table(node.relation) not in state.new_tables:
        yield "index-not-concurrent"
    if not node.if_not_exists and not statement.guarded:
        yield "not-rerunnable"


def _alter_table(node: ast.AlterTableStmt, statement: Statement, state: _RevisionState) -> Iterator[str]:
    table = _table(node.relation)
    existing = table not in state.new_tables
    for command in node.cmds or ():
        if not isinstance(command, ast.AlterTableCmd):
            continue
        subtype = _subtype(command)
        if subtype is AlterTableType.AT_AddColumn and isinstance(command.def_, ast.ColumnDef):
            if existing:
                yield from _new_column(command.def_)
            if not command.missing_ok and not statement.guarded:
                yield "not-rerunnable"
        elif subtype is AlterTableType.AT_AlterColumnType and existing:
            yield "type-rewrite"
        elif subtype is AlterTableType.AT_SetNotNull and existing:
            if (table, command.name) not in state.validated_not_null:
                yield "not-null-without-check"
        elif subtype is AlterTableType.AT_AddConstraint and isinstance(command.def_, ast.Constraint):
            _remember_not_null_check(table, command.def_, state)
            if existing and not _added_without_scan(command.def_):
                yield "constraint-not-valid"
            if not statement.guarded:
                yield "not-rerunnable"  # ADD CONSTRAINT has no IF NOT EXISTS
        elif subtype is AlterTableType.AT_ValidateConstraint and command.name in state.not_null_checks:
            state.validated_not_null.add(state.not_null_checks[command.name])
        elif subtype is AlterTableType.AT_DropColumn:
            if existing and not state.contract:
                yield "drop-or-rename-outside-contract"
            if not command.missing_ok and not statement.guarded:
                yield "not-rerunnable"
        elif _fails_when_repeated(command) and not statement.guarded:
            yield "not-rerunnable"


def _fails_when_repeated(command: ast.AlterTableCmd) -> bool:
    """DROP CONSTRAINT without IF EXISTS, and ATTACH PARTITION (the table is a partition already)."""
    subtype = _subtype(command)
    if subtype is AlterTableType.AT_DropConstraint:
        return not command.missing_ok
    return subtype is AlterTableType.AT_AttachPartition


def _subtype(command: ast.Node) -> AlterTableType | None:
    return command.subtype if isinstance(command, ast.AlterTableCmd) else None


def _new_column(column: ast.ColumnDef) -> Iterator[str]:
    type_name = _last_name(column.typeName.names if column.typeName is not None else None)
    # pglast gives a column without identity or generation the character NUL for each.
    if type_name in SERIAL_TYPES or (column.identity or "\x00") != "\x00" or (column.generated or "\x00") != "\x00":
        yield "volatile-default"
    for constraint in column.constraints or ():
        if not isinstance(constraint, ast.Constraint):
            continue
        if _computed_per_row(constraint):
            yield "volatile-default"
        elif constraint.contype in (
            ConstrType.CONSTR_FOREIGN,
            ConstrType.CONSTR_CHECK,
            ConstrType.CONSTR_UNIQUE,
            ConstrType.CONSTR_PRIMARY,
            ConstrType.CONSTR_EXCLUSION,
        ):
            yield "constraint-not-valid"


def _computed_per_row(constraint: ast.Constraint) -> bool:
    """A default that must be computed for each existing row: volatile, an identity, a stored generated column."""
    if constraint.contype is ConstrType.CONSTR_DEFAULT:
        return _volatile(constraint.raw_expr)
    return constraint.contype in (ConstrType.CONSTR_IDENTITY, ConstrType.CONSTR_GENERATED)


def _volatile(expression: ast.Node | None) -> bool:
    """Whether a default calls a function not known to be STABLE or IMMUTABLE, anywhere in the expression."""
    if expression is None:
        return False
    calls: list[ast.FuncCall] = []
    _collect_calls(expression, calls)
    return any(_last_name(call.funcname) not in NON_VOLATILE_FUNCTIONS for call in calls)


def _collect_calls(node: object, calls: list[ast.FuncCall]) -> None:
    if isinstance(node, ast.FuncCall):
        calls.append(node)
    if isinstance(node, ast.Node):
        for name in node:
            _collect_calls(getattr(node, name), calls)
    elif isinstance(node, tuple):
        for item in node:
            _collect_calls(item, calls)


def _added_without_scan(constraint: ast.Constraint) -> bool:
    if constraint.contype in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK):
        return bool(constraint.skip_validation)
    if constraint.contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY):
        return bool(constraint.indexname)
    return constraint.contype is not ConstrType.CONSTR_EXCLUSION


def _remember_not_null_check(table: str, constraint: ast.Constraint, state: _RevisionState) -> None:
    """A `CHECK (column IS NOT NULL) NOT VALID` that a later VALIDATE makes a proof SET NOT NULL trusts."""
    test = constraint.raw_expr
    if constraint.contype is not ConstrType.CONSTR_CHECK or not isinstance(test, ast.NullTest):
        return
    if test.nulltesttype is None or test.nulltesttype.name != "IS_NOT_NULL":
        return
    column = test.arg
    if isinstance(column, ast.ColumnRef) and constraint.conname:
        state.not_null_checks[constraint.conname] = (table, _last_name(column.fields))


def _rename(node: ast.RenameStmt, statement: Statement, state: _RevisionState) -> Iterator[str]:
    table_or_column = node.renameType in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_COLUMN)
    if table_or_column and _table(node.relation) not in state.new_tables and not state.contract:
        yield "drop-or-rename-outside-contract"
    if not statement.guarded:
        yield "not-rerunnable"


def _drop(node: ast.DropStmt, statement: Statement, state: _RevisionState) -> Iterator[str]:
    if node.removeType is ObjectType.OBJECT_TABLE and not state.contract:
        tables = {_last_name(name) for name in node.objects or () if isinstance(name, tuple)}
        if tables - state.new_tables:
            yield "drop-or-rename-outside-contract"
    if not node.missing_ok and not statement.guarded:
        yield "not-rerunnable"


def _creates_without_if_not_exists(node: ast.Node) -> bool:
    if isinstance(node, (ast.CreateSeqStmt, ast.CreateSchemaStmt, ast.CreateExtensionStmt)):
        return not node.if_not_exists
    if isinstance(node, ast.CreateTableAsStmt):
        return not node.if_not_exists
    if isinstance(node, (ast.ViewStmt, ast.CreateFunctionStmt, ast.CreateTrigStmt)):
        return not node.replace
    return isinstance(node, (ast.CompositeTypeStmt, ast.CreateEnumStmt, ast.CreateDomainStmt))


def _table(relation: ast.RangeVar | None) -> str:
    return (relation.relname or "") if relation is not None else ""


def _last_name(parts: tuple[ast.Node, ...] | None) -> str:
    """The last part of a qualified name (public.t is t, pg_catalog.int4 is int4)."""
    last = (parts or ())[-1:]
    return (last[0].sval or "") if last and isinstance(last[0], ast.String) else ""
