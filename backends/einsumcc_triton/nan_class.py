"""Whether a value can be NaN, for finite inputs: a max/min reduction of a value that cannot
be NaN needs no NaN check (Triton's ``tl.max`` drops NaNs, numpy's ``max`` propagates them).

Each expression is classified ``fin`` (finite), ``inf`` (maybe infinite, never NaN) or
``nan`` (maybe NaN).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Const,
    Expr,
    ExtentRef,
    Neg,
    ParamRef,
    Role,
    VarRef,
)
from einsumcc.schedule.nodes import Node, NodeKind

if TYPE_CHECKING:
    from einsumcc_triton.scope import KernelScope


def _number_class(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "nan"
    return "inf" if math.isinf(v) else "fin"


def _access_class(scope: KernelScope, e: Access) -> str:
    p = scope.prog.producer(e.tensor)
    if p is None:
        return "fin" if scope.c.tensor(e.tensor).role is Role.INPUT else "nan"
    if p.key not in scope.local_keys():
        return "nan"
    return node_class(scope, p)


def _binary_class(op: str, a: str, b: str) -> str:
    if "nan" in (a, b):
        return "nan"
    if op in "+-":
        return "fin" if a == b == "fin" else ("inf" if "fin" in (a, b) else "nan")
    if op == "*":
        return "fin" if a == b == "fin" else "nan"
    return "nan"


def _call_class(fn: str, args: list[str]) -> str:
    if "nan" in args:
        return "nan"
    if fn in ("max", "min", "abs", "relu"):
        return "fin" if all(c == "fin" for c in args) else "inf"
    if fn in ("tanh", "sigmoid"):
        return "fin"
    if fn == "exp":
        return "inf"
    return "nan"


def nan_class(scope: KernelScope, e: Expr, reader: Node) -> str:
    """fin (finite), inf (maybe infinite, never NaN) or nan, assuming finite inputs."""
    if isinstance(e, Const):
        return _number_class(float(e.value))
    if isinstance(e, ParamRef | ExtentRef):
        return _number_class(scope.low.constant(e))
    if isinstance(e, VarRef):
        return "fin"
    if isinstance(e, Access):
        return _access_class(scope, e)
    if isinstance(e, Neg):
        return nan_class(scope, e.operand, reader)
    if isinstance(e, Binary):
        return _binary_class(e.op, nan_class(scope, e.lhs, reader), nan_class(scope, e.rhs, reader))
    if isinstance(e, Call):
        return _call_class(e.fn, [nan_class(scope, x, reader) for x in e.args])
    return "nan"


def node_class(scope: KernelScope, n: Node) -> str:
    if n.kind is NodeKind.SURVIVE:
        return "fin"
    if n.iterative_variable is not None:
        return "nan"
    body = nan_class(scope, n.body, n)
    if n.kind is NodeKind.REDUCE and n.op == "sum" and body != "fin":
        body = "nan"
    if n.top and n.filtered:
        fill = scope.low.constant(scope.c.tensor(n.key).fill)
        if fill is None or math.isnan(fill):
            return "nan"
        if math.isinf(fill) and body == "fin":
            return "inf"
    return body
