"""Rendering the kernel AST as Python source, deterministically.

Operators are printed with the fewest parentheses their precedence needs; floats with
``repr`` (so they read back exactly), infinities and NaN as ``float("inf")`` and
``float("nan")``, strings with ``repr`` (never an f-string), comments line by line.
"""

from __future__ import annotations

import math

from einsumcc_triton.kernel_ast import (
    Assign,
    Attribute,
    BinaryOp,
    Blank,
    Comment,
    Expr,
    ExprStmt,
    For,
    FuncCall,
    FunctionDef,
    If,
    IfExp,
    List,
    Literal,
    Module,
    PyName,
    Raise,
    Return,
    Slice,
    Stmt,
    Subscript,
    Tuple,
    UnaryOp,
)

_BINARY = {
    "or": 1,
    "and": 2,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "==": 4,
    "!=": 4,
    "|": 5,
    "^": 6,
    "&": 7,
    "+": 9,
    "-": 9,
    "*": 10,
    "/": 10,
    "//": 10,
    "%": 10,
    "**": 12,
}
_UNARY = {"not": 3, "-": 11, "~": 11}
_ATOM = 14
INDENT = "    "


def _const(v: int | float | bool | str | None) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return 'float("nan")'
        if math.isinf(v):
            return 'float("inf")' if v > 0 else '-float("inf")'
        return repr(v)
    return repr(v)


def _prec(e: Expr) -> int:
    if isinstance(e, BinaryOp):
        return _BINARY[e.op]
    if isinstance(e, UnaryOp):
        return _UNARY[e.op]
    if isinstance(e, IfExp):
        return 0
    if (
        isinstance(e, Literal)
        and isinstance(e.value, float)
        and (math.isinf(e.value) and e.value < 0)
    ):
        return _UNARY["-"]
    if isinstance(e, Literal) and isinstance(e.value, int | float) and e.value < 0:
        return _UNARY["-"]
    return _ATOM


def render_expr(e: Expr, ctx: int = 0) -> str:
    text = _expr(e)
    return f"({text})" if _prec(e) < ctx else text


def _expr(e: Expr) -> str:
    if isinstance(e, PyName):
        return e.id
    if isinstance(e, Literal):
        return _const(e.value)
    if isinstance(e, BinaryOp):
        p = _BINARY[e.op]
        # comparisons do not chain the way arithmetic associates: parenthesise both sides
        if p == 4:
            return f"{render_expr(e.lhs, p + 1)} {e.op} {render_expr(e.rhs, p + 1)}"
        if e.op == "**":
            return f"{render_expr(e.lhs, p + 1)} ** {render_expr(e.rhs, p)}"
        return f"{render_expr(e.lhs, p)} {e.op} {render_expr(e.rhs, p + 1)}"
    if isinstance(e, UnaryOp):
        p = _UNARY[e.op]
        sep = " " if e.op == "not" else ""
        return f"{e.op}{sep}{render_expr(e.operand, p)}"
    if isinstance(e, FuncCall):
        parts = [render_expr(a) for a in e.args]
        parts += [f"{k}={render_expr(v)}" for k, v in e.kwargs]
        return f"{render_expr(e.fn, _ATOM)}({', '.join(parts)})"
    if isinstance(e, Attribute):
        return f"{render_expr(e.value, _ATOM)}.{e.attr}"
    if isinstance(e, Subscript):
        idx = ", ".join(":" if isinstance(i, Slice) else render_expr(i) for i in e.index)
        return f"{render_expr(e.value, _ATOM)}[{idx}]"
    if isinstance(e, Tuple):
        inner = ", ".join(render_expr(i) for i in e.items)
        return f"({inner},)" if len(e.items) == 1 else f"({inner})"
    if isinstance(e, List):
        return "[" + ", ".join(render_expr(i) for i in e.items) + "]"
    if isinstance(e, IfExp):
        return (
            f"{render_expr(e.then, 1)} if {render_expr(e.cond, 1)} else {render_expr(e.orelse, 0)}"
        )
    assert isinstance(e, Slice)
    return ":"


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines()] or [f"{indent}#"]


def _stmts(body: tuple[Stmt, ...], depth: int) -> list[str]:
    if not body:
        return [INDENT * depth + "pass"]
    out: list[str] = []
    for s in body:
        out.extend(_stmt(s, depth))
    return out


def _stmt(s: Stmt, depth: int) -> list[str]:
    ind = INDENT * depth
    if isinstance(s, Assign):
        target = render_expr(s.target)
        if isinstance(s.target, Tuple):
            target = ", ".join(render_expr(i) for i in s.target.items)
        return [f"{ind}{target} = {render_expr(s.value)}"]
    if isinstance(s, ExprStmt):
        return [f"{ind}{render_expr(s.value)}"]
    if isinstance(s, For):
        head = f"{ind}for {s.var} in range({render_expr(s.start)}, {render_expr(s.stop)}):"
        return [head, *_stmts(s.body, depth + 1)]
    if isinstance(s, If):
        out = [f"{ind}if {render_expr(s.cond)}:", *_stmts(s.body, depth + 1)]
        if s.orelse:
            out += [f"{ind}else:", *_stmts(s.orelse, depth + 1)]
        return out
    if isinstance(s, Raise):
        return [f"{ind}raise {render_expr(s.exc)}"]
    if isinstance(s, Return):
        return [f"{ind}return" + (f" {render_expr(s.value)}" if s.value is not None else "")]
    if isinstance(s, Comment):
        return _comment(s.text, ind)
    if isinstance(s, Blank):
        return [""]
    assert isinstance(s, FunctionDef)
    out = []
    if s.comment:
        out += _comment(s.comment, ind)
    out += [f"{ind}@{render_expr(d)}" for d in s.decorators]
    params = []
    for p in s.params:
        params.append(
            p.name + (f": {render_expr(p.annotation)}" if p.annotation is not None else "")
        )
    head = f"{ind}def {s.name}("
    one_line = head + ", ".join(params) + "):"
    if len(one_line) <= 100:
        out.append(one_line)
    else:
        out.append(head)
        out += [f"{ind}{INDENT}{p}," for p in params]
        out.append(f"{ind}):")
    out += _stmts(s.body, depth + 1)
    return out


def render_module(m: Module) -> str:
    lines = _comment(m.header, "")
    lines.append("")
    for imp in m.imports:
        lines.append(f"import {imp}")
    for s in m.body:
        if isinstance(s, FunctionDef):
            lines += ["", ""]
        lines.extend(_stmt(s, 0))
    return "\n".join(lines).rstrip() + "\n"
