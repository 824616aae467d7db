"""The syntax tree of a `.ein` file: frozen dataclasses that mirror the grammar.

Nothing here is resolved yet: a :class:`Name` may turn out to be a param, a rank extent or a
rank variable.  Spans never take part in equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from einsumcc.diagnostics import Span


def _span() -> Span | None:
    return field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class Ident:
    name: str
    span: Span | None = _span()


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Number:
    text: str
    span: Span | None = _span()

    @property
    def value(self) -> int | float:
        return int(self.text) if self.text.isdigit() else float(self.text)


@dataclass(frozen=True, slots=True)
class Inf:
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Access:
    tensor: Ident
    indices: tuple[Expr, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Call:
    fn: Ident
    args: tuple[Expr, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Reduce:
    op: Ident
    variables: tuple[Ident, ...]
    body: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # one of + - * / ** (v2: power)
    lhs: Expr
    rhs: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Cond:
    """One comparison ``lhs op rhs`` (a condition, not a value)."""

    lhs: Expr
    op: str
    rhs: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class BoolOp:
    """(v2) ``a and b and ...`` or ``a or b or ...``: a condition."""

    op: str  # and | or
    parts: tuple[Expr, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class NotCond:
    """(v2) ``not c``: a condition."""

    operand: Expr
    span: Span | None = _span()


Expr = Number | Inf | Name | Access | Call | Reduce | Neg | BinOp | Cond | BoolOp | NotCond


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class CascadeStmt:
    name: Ident
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class RankStmt:
    name: Ident
    extent: Expr | None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class SplitStmt:
    parent: Ident
    children: tuple[Ident, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ParamStmt:
    name: Ident
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class TensorStmt:
    kind: str  # input | output | tensor
    name: Ident
    dims: tuple[Expr, ...]
    dtype: Ident | None
    fill: Expr | None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class InitStmt:
    target: Access
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class EinsumStmt:
    target: Access
    value: Expr
    where: tuple[Expr, ...]  # the conjuncts of the filter's top-level ``and``
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ExpectStmt:
    fn: Ident
    args: tuple[Expr, ...]
    op: str
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ReservedStmt:
    word: str
    span: Span | None = _span()


Stmt = (
    CascadeStmt
    | RankStmt
    | SplitStmt
    | ParamStmt
    | TensorStmt
    | InitStmt
    | EinsumStmt
    | ExpectStmt
    | ReservedStmt
)


@dataclass(frozen=True, slots=True)
class Program:
    statements: tuple[Stmt, ...]
    file: str = field(default="<string>", compare=False)
