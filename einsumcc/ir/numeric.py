"""numpy implementations of the built-in functions: the oracle and constant folding share them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from einsumcc.ir.consteval import fold_with
from einsumcc.ir.nodes import Expr

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


def _scalar1(f: Callable[[Any], Any]) -> Callable[[float], float]:
    return lambda x: float(f(np.float64(x)))


def _scalar2(f: Callable[[Any, Any], Any]) -> Callable[[float, float], float]:
    return lambda a, b: float(f(np.float64(a), np.float64(b)))


# the tables above on float64 scalars, for constant folding
_SCALAR_UNARY = {name: _scalar1(f) for name, f in UNARY.items()}
_SCALAR_BINARY = {name: _scalar2(f) for name, f in {**BINARY, **ARITH}.items()}


def eval_constant(e: Expr, extents: Mapping[str, int], params: Mapping[str, Expr]) -> float:
    """Evaluate a constant expression; raises KeyError for an unknown extent or param."""
    with np.errstate(all="ignore"):
        return fold_with(e, extents, params, _SCALAR_UNARY, _SCALAR_BINARY)
