"""A revision's offline SQL as the statements PostgreSQL will run, each with the timeouts in force.

pglast is PostgreSQL's own parser, so a statement is split and read exactly as the server will read it
(dollar quotes, comments, string literals). The static statements inside a DO block's PL/pgSQL body
are statements too: the partition conversion and the rerunnable guards put their DDL there. What a DO
block builds as a string and EXECUTEs cannot be seen before it runs; such a block is marked dynamic.

The timeouts in force are followed through the whole script, the env's opening statements included
(offline.py sets lock_timeout before the first revision): SET, SET LOCAL (until COMMIT or ROLLBACK),
RESET and set_config().
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pglast import ast, parse_plpgsql, parse_sql
from pglast.parser import ParseError, split

TIMEOUTS = ("lock_timeout", "statement_timeout")


@dataclass(frozen=True)
class Timeouts:
    """The value of each timeout in force, None where it is unset or 0 (PostgreSQL's "no limit")."""

    lock_timeout: str | None = None
    statement_timeout: str | None = None


@dataclass(frozen=True)
class Statement:
    text: str
    line: int
    """The 1-based line of the script where the statement (or the DO block holding it) begins."""
    last_line: int
    node: ast.Node
    timeouts: Timeouts
    in_transaction: bool
    in_do_block: bool = False
    guarded: bool = False
    """Inside an IF of a DO block: it runs only when its condition holds (a rerunnable guard)."""
    dynamic: bool = False
    """A DO block that EXECUTEs a string it builds: what that runs is not seen here."""


def statements(script: str) -> list[Statement]:
    """Every statement of the script in the order it runs, a DO block followed by its own statements."""
    found: list[Statement] = []
    state = _SessionState()
    for part in split(script, with_parser=True, only_slices=True):
        text = script[part]
        node = _one_statement(text)
        line = script.count("\n", 0, part.start) + 1
        last_line = line + text.count("\n")
        nested = list(_do_block_statements(node)) if isinstance(node, ast.DoStmt) else []
        dynamic = any(query is None for query, _ in nested)
        found.append(Statement(text, line, last_line, node, state.timeouts(), state.in_transaction, dynamic=dynamic))
        block_state = state.copy()
        for query, guarded in nested:
            if query is None:
                continue
            for inner in _parsed(query):
                found.append(
                    Statement(
                        query,
                        line,
                        last_line,
                        inner,
                        block_state.timeouts(),
                        True,
                        in_do_block=True,
                        guarded=guarded,
                    )
                )
                block_state.apply(inner)
        if nested:
            state.keep_session_settings_of(block_state)
        state.apply(node)
    return found


def _one_statement(text: str) -> ast.Node:
    node = parse_sql(text)[0].stmt
    assert node is not None, "pglast gives every split statement a node"
    return node


def _parsed(query: str) -> list[ast.Node]:
    """A PL/pgSQL body's SQL statement; one with PL/pgSQL's own syntax in it (SELECT ... INTO a variable)
    is left out, as it reads rather than changes."""
    try:
        return [raw.stmt for raw in parse_sql(query) if raw.stmt is not None]
    except ParseError:
        return []


def _do_block_statements(node: ast.DoStmt) -> Iterator[tuple[str | None, bool]]:
    """The static SQL statements of a DO block, each with whether it is inside an IF; None for an EXECUTE."""
    options = {option.defname: option.arg for option in node.args or () if isinstance(option, ast.DefElem)}
    language = options.get("language")
    if isinstance(language, ast.String) and language.sval != "plpgsql":
        return
    body = options.get("as")
    if not isinstance(body, ast.String):
        return
    tag = "$gate_body$"
    function = f"CREATE FUNCTION gate_do_block() RETURNS void LANGUAGE plpgsql AS {tag}{body.sval}{tag}"
    parsed: object = json.loads(json.dumps(parse_plpgsql(function)))
    yield from _walk(parsed, guarded=False)


def _walk(tree: object, guarded: bool) -> Iterator[tuple[str | None, bool]]:
    if isinstance(tree, list):
        for item in tree:
            yield from _walk(item, guarded)
        return
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        if key == "PLpgSQL_stmt_execsql":
            yield str(value["sqlstmt"]["PLpgSQL_expr"]["query"]), guarded
        elif key == "PLpgSQL_stmt_dynexecute":
            yield None, guarded
        elif key in ("PLpgSQL_stmt_if", "PLpgSQL_stmt_case"):
            yield from _walk(value, guarded=True)
        else:
            yield from _walk(value, guarded)


_NO_LIMIT = re.compile(r"^\s*0+\s*(ms|s|min|h|d)?\s*$")


class _SessionState:
    def __init__(self) -> None:
        self.session: dict[str, str | None] = dict.fromkeys(TIMEOUTS)
        self.local: dict[str, str | None] = {}
        self.in_transaction = False

    def copy(self) -> _SessionState:
        copied = _SessionState()
        copied.session, copied.local = dict(self.session), dict(self.local)
        copied.in_transaction = self.in_transaction
        return copied

    def timeouts(self) -> Timeouts:
        values = {**self.session, **self.local}
        return Timeouts(values["lock_timeout"], values["statement_timeout"])

    def keep_session_settings_of(self, block: _SessionState) -> None:
        """A DO block's plain SET outlives the block; its SET LOCAL ends with the block's transaction,
        which is the DO statement itself outside BEGIN, or the caller's inside it."""
        self.session = dict(block.session)
        if self.in_transaction:
            self.local = dict(block.local)

    def apply(self, node: ast.Node) -> None:
        if isinstance(node, ast.TransactionStmt):
            self._transaction(node)
        elif isinstance(node, ast.VariableSetStmt):
            self._set(node)
        elif isinstance(node, ast.SelectStmt):
            for name, value, is_local in _set_config_calls(node):
                self._assign(name, value, is_local)

    def _transaction(self, node: ast.TransactionStmt) -> None:
        kind = node.kind.name if node.kind is not None else ""
        if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
            self.in_transaction = True
        elif kind in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK"):
            self.in_transaction, self.local = False, {}

    def _set(self, node: ast.VariableSetStmt) -> None:
        kind = node.kind.name if node.kind is not None else ""
        if kind == "VAR_RESET_ALL":
            self.session, self.local = dict.fromkeys(TIMEOUTS), {}
            return
        if node.name not in TIMEOUTS:
            return
        if kind in ("VAR_RESET", "VAR_SET_DEFAULT"):
            self._assign(node.name, None, bool(node.is_local))
        elif kind == "VAR_SET_VALUE" and node.args:
            self._assign(node.name, _constant(node.args[0]), bool(node.is_local))

    def _assign(self, name: str, value: str | None, is_local: bool) -> None:
        in_force = None if value is None or _NO_LIMIT.match(value) else value
        if is_local:
            if self.in_transaction:  # SET LOCAL outside a transaction only warns, and changes nothing
                self.local[name] = in_force
        else:
            self.session[name] = in_force
            self.local.pop(name, None)


def _constant(node: ast.Node) -> str | None:
    if isinstance(node, ast.A_Const) and not node.isnull and node.val is not None:
        value = node.val
        if isinstance(value, ast.String):
            return value.sval
        if isinstance(value, ast.Integer):
            return str(value.ival)
        if isinstance(value, ast.Float):
            return value.fval
        if isinstance(value, ast.Boolean):
            return "true" if value.boolval else "false"
    return None


def _set_config_calls(node: ast.SelectStmt) -> Iterator[tuple[str, str | None, bool]]:
    """`SELECT set_config('lock_timeout', '1s', false)`, the way env.py sets the timeouts online."""
    for target in node.targetList or ():
        call = target.val if isinstance(target, ast.ResTarget) else None
        if not isinstance(call, ast.FuncCall) or _name(call.funcname) != "set_config" or len(call.args or ()) != 3:
            continue
        name, value, is_local = (_constant(argument) for argument in call.args or ())
        if name in TIMEOUTS:
            yield name, value, is_local in ("true", "t", "on")


def _name(parts: tuple[ast.Node, ...] | None) -> str:
    """The last part of a qualified name (pg_catalog.set_config is set_config)."""
    last = (parts or ())[-1:]
    return (last[0].sval or "") if last and isinstance(last[0], ast.String) else ""
