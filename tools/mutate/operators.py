"""The mutation operators of scripts/mutate: each turns one module's source into its mutants.

A mutant is the module's source with one span of text replaced, so every other line, comment and
line number stays as written and a survivor reads as the line a reviewer knows. The spans come from
the module's syntax tree (`ast`), never from text matching, and a replacement that does not compile
is dropped (it would be killed by any test, and says nothing about them).

Why our own operators rather than cosmic-ray's: cosmic-ray 8.7 has none that deletes a statement,
removes a condition or drops an entry of a literal, and adding them means installing the project
into its virtualenv as a plugin (entry points); it also rewrites the module in place, where the
other work of the checkout goes on. These few operators are ~150 lines of `ast`, need nothing
installed, and are unit-tested on snippets (tests/unit/test_mutation.py).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

DELETE_STATEMENT = "delete-statement"
IF_TRUE = "if-true"
IF_FALSE = "if-false"
REMOVE_GUARD = "remove-guard"
DROP_FILTER = "drop-filter"
MOVE_BOUND = "move-bound"
SHIFT_CONSTANT = "shift-constant"
DROP_ENTRY = "drop-entry"
NEGATE = "negate"
OPERATORS = (
    DELETE_STATEMENT,
    IF_TRUE,
    IF_FALSE,
    REMOVE_GUARD,
    DROP_FILTER,
    MOVE_BOUND,
    SHIFT_CONSTANT,
    DROP_ENTRY,
    NEGATE,
)

# A deleted import, `global` or `pass` changes nothing a test could judge beyond a NameError.
KEPT_STATEMENTS = (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Pass)
BOUND_MOVES: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
}
NEGATIONS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}


@dataclass(frozen=True)
class Span:
    """Where a node's text is: lines 1-based, columns 0-based (as `ast` counts them)."""

    line: int
    column: int
    end_line: int
    end_column: int

    @staticmethod
    def of(node: ast.AST) -> Span:
        return Span(node.lineno, node.col_offset, node.end_lineno or node.lineno, node.end_col_offset or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Mutant:
    module: str
    operator: str
    line: int
    mutated_line: str
    """The first changed line as the mutant has it, stripped: how reports and EQUIVALENT name it."""
    source: str

    @property
    def site(self) -> str:
        return f"{self.module}:{self.line}"


@dataclass(frozen=True)
class Edit:
    operator: str
    span: Span
    text: str


def mutants(module: str, source: str) -> list[Mutant]:
    """Every mutant of one module, in the order of the source; the same source gives the same list."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    found = [apply(module, lines, edit) for edit in edits(tree)]
    return sorted((mutant for mutant in found if mutant), key=lambda mutant: mutant.line)


def apply(module: str, lines: list[str], edit: Edit) -> Mutant | None:
    span = edit.span
    before = "".join(lines[: span.line - 1]) + lines[span.line - 1][: span.column]
    after = lines[span.end_line - 1][span.end_column :] + "".join(lines[span.end_line :])
    source = before + edit.text + after
    try:
        compile(source, module, "exec", dont_inherit=True)
    except SyntaxError:
        return None
    return Mutant(module, edit.operator, span.line, source.splitlines()[span.line - 1].strip(), source)


def edits(tree: ast.Module) -> Iterator[Edit]:
    skipped = annotation_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        for body in statement_lists(node):
            yield from statement_deletions(body)
        if isinstance(node, ast.If):
            yield from condition_removals(node)
        elif isinstance(node, ast.comprehension):
            yield from (Edit(DROP_FILTER, Span.of(test), "True") for test in node.ifs)
        elif isinstance(node, ast.Compare):
            yield from comparison_mutations(node)
        elif isinstance(node, ast.Set) or (isinstance(node, (ast.List, ast.Tuple)) and isinstance(node.ctx, ast.Load)):
            yield from entry_drops(node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            yield Edit(NEGATE, Span.of(node), str(not node.value))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield Edit(NEGATE, Span.of(node), ast.unparse(node.operand))
        elif isinstance(node, ast.BoolOp):
            other: ast.boolop = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            yield Edit(NEGATE, Span.of(node), ast.unparse(ast.BoolOp(op=other, values=node.values)))


def annotation_nodes(tree: ast.Module) -> set[int]:
    """Annotations and subscripts' slices (`tuple[str, ...]`): not evaluated at run time here
    (`from __future__ import annotations`), so their mutants could only survive."""
    roots: list[ast.AST | None] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            roots.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple):
            roots.append(node.slice)
    return {id(inner) for root in roots if root is not None for inner in ast.walk(root)}


def statement_lists(node: ast.AST) -> Iterator[list[ast.stmt]]:
    for field in ("body", "orelse", "finalbody"):
        body = getattr(node, field, None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            yield body


def statement_deletions(body: list[ast.stmt]) -> Iterator[Edit]:
    """Each simple statement replaced with `pass` (the block stays non-empty); docstrings are kept."""
    for statement in body:
        if isinstance(statement, KEPT_STATEMENTS) or is_compound(statement):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring (or `...`): nothing runs
        if isinstance(statement, ast.AnnAssign) and statement.value is None:
            continue  # a declaration (a dataclass field without a default): nothing runs
        yield Edit(DELETE_STATEMENT, Span.of(statement), "pass")


def is_compound(statement: ast.stmt) -> bool:
    return any(isinstance(getattr(statement, field, None), list) for field in ("body", "handlers", "cases"))


def condition_removals(node: ast.If) -> Iterator[Edit]:
    """`if x:` made always and never true; a guard clause (`if x: raise/return`) removed whole."""
    yield Edit(IF_TRUE, Span.of(node.test), "True")
    is_guard = not node.orelse and len(node.body) == 1 and isinstance(node.body[0], (ast.Raise, ast.Return))
    if is_guard:
        yield Edit(REMOVE_GUARD, Span.of(node), "pass")  # the same as `if False:`, so that one is not made
    else:
        yield Edit(IF_FALSE, Span.of(node.test), "False")


def comparison_mutations(node: ast.Compare) -> Iterator[Edit]:
    """A bound moved (`<` and `<=`, `>` and `>=`; an integer compared with, one more or one less),
    and an equality, identity or membership test negated."""
    for index, op in enumerate(node.ops):
        for table, operator in ((BOUND_MOVES, MOVE_BOUND), (NEGATIONS, NEGATE)):
            if type(op) in table:
                ops = [*node.ops[:index], table[type(op)](), *node.ops[index + 1 :]]
                yield Edit(operator, Span.of(node), ast.unparse(ast.Compare(node.left, ops, node.comparators)))
    for operand in (node.left, *node.comparators):
        if isinstance(operand, ast.Constant) and type(operand.value) is int:
            for shifted in (operand.value + 1, operand.value - 1):
                yield Edit(SHIFT_CONSTANT, Span.of(operand), str(shifted))


def entry_drops(node: ast.List | ast.Set | ast.Tuple) -> Iterator[Edit]:
    """One mutant per entry, that entry left out. An emptied set literal becomes `set()`."""
    for index in range(len(node.elts)):
        kept = [*node.elts[:index], *node.elts[index + 1 :]]
        if isinstance(node, ast.Set):
            text = ast.unparse(ast.Set(kept)) if kept else "set()"
        else:
            text = ast.unparse(type(node)(kept, ast.Load()))
        yield Edit(DROP_ENTRY, Span.of(node), text)
