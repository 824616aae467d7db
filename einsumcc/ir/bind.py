"""Binding a cascade's symbolic extents and params to numbers (``--dims M=1024,P=512``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import (
    Binary,
    Call,
    Const,
    Expr,
    ExtentRef,
    Neg,
    ParamRef,
    Tensor,
)

# numpy implementations of the built-in functions; the oracle and constant folding share them.
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


@dataclass(frozen=True)
class Bindings:
    """Concrete extents of every rank and values of every param."""

    extents: Mapping[str, int]
    params: Mapping[str, float]

    def shape(self, tensor: Tensor) -> tuple[int, ...]:
        return tuple(self.extents[d.rank] + (1 if d.iterative else 0) for d in tensor.dims)


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


def bind(cascade: Cascade, dims: Mapping[str, int] | None = None) -> Bindings:
    """Resolve every extent (``dims`` override the defaults) and every param.

    Raises :class:`EinError` pointing at the rank or split that cannot be satisfied.
    """
    dims = dict(dims or {})
    src = cascade.source
    names = [r.name for r in cascade.ranks]
    for name, value in dims.items():
        if name not in names:
            raise EinError.plain(
                f"--dims names unknown rank '{name}'",
                hint="ranks of " + cascade.name + ": " + ", ".join(names),
            )
        if not isinstance(value, int | np.integer) or value <= 0:
            raise EinError.plain(f"--dims {name}={value}: extents are positive integers")
    extents: dict[str, int] = {}
    resolving: set[str] = set()

    def resolve(name: str) -> int:
        if name in extents:
            return extents[name]
        if name in dims:
            extents[name] = int(dims[name])
            return extents[name]
        rank = cascade.rank(name)
        if rank.extent is None:
            raise EinError.at(
                rank.span,
                f"rank {name} has no extent",
                src,
                hint=f"give it one on the command line: --dims {name}=...",
            )
        if name in resolving:
            raise EinError.at(rank.span, f"cyclic extent of {name}", src)
        resolving.add(name)
        subs = {sym: resolve(str(sym)) for sym in rank.extent.free_symbols}
        value = sympy.nsimplify(rank.extent.subs(subs))
        resolving.discard(name)
        if not value.is_integer or value <= 0:
            shown = ", ".join(f"{k}={v}" for k, v in sorted((str(k), v) for k, v in subs.items()))
            raise EinError.at(
                rank.span,
                f"extent of {name} = {rank.extent} is {value} with {shown}: not a positive integer",
                src,
                hint="choose extents that divide exactly",
            )
        extents[name] = int(value)
        return extents[name]

    for name in names:
        resolve(name)
    for split in cascade.splits:
        whole = extents[split.parent]
        parts = [extents[c] for c in split.children]
        if math.prod(parts) != whole:
            detail = " * ".join(f"{c}" for c in split.children)
            values = " * ".join(str(p) for p in parts)
            raise EinError.at(
                split.span,
                f"split {split.parent} -> {', '.join(split.children)} does not hold: "
                f"{split.parent} = {whole} but {detail} = {values} = {math.prod(parts)}",
                src,
                hint=f"choose {split.parent} as a multiple of the inner extents",
            )
    param_exprs = {p.name: p.value for p in cascade.params}
    params = {p.name: eval_constant(p.value, extents, param_exprs) for p in cascade.params}
    return Bindings(extents, params)


def index_coefficients(expr: sympy.Expr, extents: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """An affine index as ``({var: coefficient}, constant)`` under concrete extents."""
    subs = {s: extents[str(s)] for s in expr.free_symbols if str(s) in extents and s.is_positive}
    concrete = sympy.expand(expr.subs(subs))
    coeffs: dict[str, int] = {}
    const = 0
    for term, coeff in concrete.as_coefficients_dict().items():
        if term == 1:
            const = _as_int(coeff, expr)
        else:
            coeffs[str(term)] = _as_int(coeff, expr)
    return coeffs, const


def _as_int(value: sympy.Expr, expr: sympy.Expr) -> int:
    if not value.is_integer:
        raise EinError.plain(f"index {expr} has a non-integer coefficient {value} at these dims")
    return int(value)
