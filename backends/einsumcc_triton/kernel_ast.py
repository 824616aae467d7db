"""A small frozen AST of the Python/Triton code the backend emits.

It covers exactly what generated modules use: names, constants, operators, calls,
attributes, subscripts with ``:`` and ``None`` (broadcasting), ``for`` loops over ``range``,
``if``, ``raise`` and ``return``.  Identifiers come from :class:`Namer`, which never hands out a
Python keyword, a builtin or a name already taken, so names taken from a ``.ein`` file
cannot reach the generated code unsanitized.
"""

from __future__ import annotations

import builtins
import keyword
import re
import sys
from dataclasses import dataclass

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class PyName:
    id: str


@dataclass(frozen=True)
class Literal:
    value: int | float | bool | str | None


@dataclass(frozen=True)
class BinaryOp:
    op: str  # + - * / // % ** < <= > >= == != & | and or
    lhs: Expr
    rhs: Expr


@dataclass(frozen=True)
class UnaryOp:
    op: str  # - not ~
    operand: Expr


@dataclass(frozen=True)
class FuncCall:
    fn: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()


@dataclass(frozen=True)
class Attribute:
    value: Expr
    attr: str


@dataclass(frozen=True)
class Slice:
    """``:`` in a subscript."""


@dataclass(frozen=True)
class Subscript:
    value: Expr
    index: tuple[Expr | Slice, ...]


@dataclass(frozen=True)
class Tuple:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class List:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class IfExp:
    cond: Expr
    then: Expr
    orelse: Expr


Expr = (
    PyName
    | Literal
    | BinaryOp
    | UnaryOp
    | FuncCall
    | Attribute
    | Subscript
    | Tuple
    | List
    | IfExp
    | Slice
)

# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class Assign:
    target: Expr  # a PyName or a Tuple of PyNames
    value: Expr


@dataclass(frozen=True)
class ExprStmt:
    value: Expr


@dataclass(frozen=True)
class For:
    var: str
    start: Expr
    stop: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class If:
    cond: Expr
    body: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] = ()


@dataclass(frozen=True)
class Raise:
    exc: Expr


@dataclass(frozen=True)
class Return:
    value: Expr | None = None


@dataclass(frozen=True)
class Comment:
    text: str  # may span lines; every line is rendered as a comment


@dataclass(frozen=True)
class Blank:
    pass


@dataclass(frozen=True)
class Arg:
    name: str
    annotation: Expr | None = None


@dataclass(frozen=True)
class FunctionDef:
    name: str
    params: tuple[Arg, ...]
    body: tuple[Stmt, ...]
    decorators: tuple[Expr, ...] = ()
    comment: str = ""  # rendered above the function


Stmt = Assign | ExprStmt | For | If | Raise | Return | Comment | Blank | FunctionDef


@dataclass(frozen=True)
class Module:
    header: str  # rendered as comment lines
    imports: tuple[str, ...]  # module names, rendered 'import x' or 'import x as y'
    body: tuple[Stmt, ...]


# ---------------------------------------------------------------- helpers


def name(id: str) -> PyName:
    return PyName(id)


def attr(value: Expr | str, *names: str) -> Expr:
    out: Expr = PyName(value) if isinstance(value, str) else value
    for n in names:
        out = Attribute(out, n)
    return out


def call(fn: Expr | str, *args: Expr, **kwargs: Expr) -> FuncCall:
    f: Expr = attr(*fn.split(".")) if isinstance(fn, str) else fn
    return FuncCall(f, tuple(args), tuple(kwargs.items()))


def const(value: int | float | bool | str | None) -> Literal:
    return Literal(value)


def fconst(value: float) -> Literal:
    """A float literal."""
    return Literal(float(value))


# keywords, builtins and standard-library module names (a function called os or math would
# shadow the module for anyone who imports both)
_RESERVED = (
    frozenset(keyword.kwlist)
    | frozenset(keyword.softkwlist)
    | frozenset(dir(builtins))
    | frozenset(sys.stdlib_module_names)
)


class Namer:
    """Hands out unique, safe identifiers.

    ``fresh(hint)`` turns ``hint`` into an identifier (non-identifier characters become ``_``),
    then appends ``_1``, ``_2``, ... until it is neither reserved (keywords, builtins, the
    module's imports and helpers) nor taken.  ``key`` memoises: the same key always gets the
    same name.
    """

    def __init__(self, reserved: set[str] | frozenset[str] = frozenset()) -> None:
        self.taken: set[str] = set(_RESERVED) | set(reserved)
        self.by_key: dict[object, str] = {}

    def fresh(self, hint: str) -> str:
        base = re.sub(r"\W", "_", hint, flags=re.ASCII) or "v"
        if base[0].isdigit():
            base = "v_" + base
        if base.startswith("__"):
            base = "u" + base
        candidate = base
        i = 1
        while candidate in self.taken or keyword.iskeyword(candidate):
            candidate = f"{base}_{i}"
            i += 1
        self.taken.add(candidate)
        return candidate

    def get(self, key: object, hint: str) -> str:
        if key not in self.by_key:
            self.by_key[key] = self.fresh(hint)
        return self.by_key[key]

    def child(self) -> Namer:
        """A namer for a function scope: it avoids every name taken so far."""
        n = Namer()
        n.taken = set(self.taken)
        return n
