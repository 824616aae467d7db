"""numpy implementations of the built-in functions: the oracle and constant folding share them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from einsumcc.ir.nodes import (
    Binary,
    Call,
    Const,
    Expr,
    ExtentRef,
    Neg,
    ParamRef,
)

UNARY: dict[str, Callable[[Any], Any]] = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0.0),
    "abs": np.abs,
}


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    nz = b != 0
    out: np.ndarray = np.where(nz, a / np.where(nz, b, 1.0), 0.0)
    return out


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "max": np.maximum,
    "min": np.minimum,
    "safe_div": _safe_div,
}
ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "**": np.power,
}


# the identity of each reduction (what an empty reduction gives) and the filter comparisons
REDUCE_IDENTITY: dict[str, float] = {"sum": 0.0, "prod": 1.0, "max": -np.inf, "min": np.inf}
COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def eval_constant(e: Expr, extents: Mapping[str, int], params: Mapping[str, Expr]) -> float:
    """Evaluate a constant expression; raises KeyError for an unknown extent or param."""
    with np.errstate(all="ignore"):
        return float(_const(e, extents, params, 0))


def _const(e: Expr, extents: Mapping[str, int], params: Mapping[str, Expr], depth: int) -> float:
    if depth > 100:
        raise RecursionError("cyclic params")
    if isinstance(e, Const):
        return float(e.value)
    if isinstance(e, ExtentRef):
        return float(extents[e.rank])
    if isinstance(e, ParamRef):
        return _const(params[e.name], extents, params, depth + 1)
    if isinstance(e, Neg):
        return -_const(e.operand, extents, params, depth)
    if isinstance(e, Binary):
        a = _const(e.lhs, extents, params, depth)
        b = _const(e.rhs, extents, params, depth)
        return float(ARITH[e.op](np.float64(a), np.float64(b)))
    if isinstance(e, Call):
        args = [np.float64(_const(a, extents, params, depth)) for a in e.args]
        fn = UNARY.get(e.fn)
        if fn is not None:
            return float(fn(args[0]))
        return float(BINARY[e.fn](args[0], args[1]))
    raise KeyError(f"not a constant: {e}")
