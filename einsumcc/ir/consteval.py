"""Constant folding in plain Python floats, with numpy's IEEE results (no numpy import).

The checker folds fills and params with it; :func:`einsumcc.ir.bind.eval_constant` (numpy) is
what the oracle uses.  Both give IEEE double results: inf and nan instead of exceptions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from einsumcc.ir.nodes import Binary, Call, Const, Expr, ExtentRef, Neg, ParamRef


def _div(a: float, b: float) -> float:
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _log(x: float) -> float:
    if math.isnan(x) or x < 0:
        return math.nan
    return -math.inf if x == 0 else math.log(x)


def _sqrt(x: float) -> float:
    return math.nan if math.isnan(x) or x < 0 else math.sqrt(x)


def _pow(a: float, b: float) -> float:
    """``a ** b`` as numpy computes it in float64: NaN for a negative base and a fractional
    exponent, inf for zero to a negative power, inf on overflow."""
    try:
        return math.pow(a, b)
    except OverflowError:
        odd = b == int(b) and int(b) % 2 == 1
        return -math.inf if a < 0 and odd else math.inf
    except ValueError:
        if a == 0 and b < 0:
            odd = b == int(b) and int(b) % 2 == 1
            return math.copysign(math.inf, a) if odd else math.inf
        return math.nan


def _max(a: float, b: float) -> float:
    return math.nan if math.isnan(a) or math.isnan(b) else max(a, b)


def _min(a: float, b: float) -> float:
    return math.nan if math.isnan(a) or math.isnan(b) else min(a, b)


UNARY: dict[str, Callable[[float], float]] = {
    "exp": _exp,
    "log": _log,
    "sqrt": _sqrt,
    "rsqrt": lambda x: _div(1.0, _sqrt(x)),
    "tanh": math.tanh,
    "sigmoid": lambda x: _div(1.0, 1.0 + _exp(-x)),
    "relu": lambda x: _max(x, 0.0),
    "abs": abs,
}
BINARY: dict[str, Callable[[float, float], float]] = {
    "max": _max,
    "min": _min,
    "safe_div": lambda a, b: _div(a, b) if b != 0 else 0.0,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _div,
    "**": _pow,
}


def fold_constant(e: Expr, extents: Mapping[str, int], params: Mapping[str, Expr]) -> float:
    """Evaluate a constant expression; raises KeyError for an unknown extent or param."""
    return fold_with(e, extents, params, UNARY, BINARY)


def fold_with(
    e: Expr,
    extents: Mapping[str, int],
    params: Mapping[str, Expr],
    unary: Mapping[str, Callable[[float], float]],
    binary: Mapping[str, Callable[[float, float], float]],
    depth: int = 0,
) -> float:
    """The constant-folding walk, with the functions (``unary`` calls; ``binary`` calls and
    the arithmetic operators) given: plain Python here, numpy in
    :func:`einsumcc.ir.numeric.eval_constant`."""
    if depth > 100:
        raise RecursionError("cyclic params")
    if isinstance(e, Const):
        return float(e.value)
    if isinstance(e, ExtentRef):
        return float(extents[e.rank])
    if isinstance(e, ParamRef):
        return fold_with(params[e.name], extents, params, unary, binary, depth + 1)
    if isinstance(e, Neg):
        return -fold_with(e.operand, extents, params, unary, binary, depth)
    if isinstance(e, Binary):
        a = fold_with(e.lhs, extents, params, unary, binary, depth)
        b = fold_with(e.rhs, extents, params, unary, binary, depth)
        return binary[e.op](a, b)
    if isinstance(e, Call):
        args = [fold_with(a, extents, params, unary, binary, depth) for a in e.args]
        fn = unary.get(e.fn)
        if fn is not None:
            return fn(args[0])
        return binary[e.fn](args[0], args[1])
    raise KeyError(f"not a constant: {e}")
