"""Binding a cascade's symbolic extents and params to numbers (``--dims M=1024,P=512``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import Tensor

if TYPE_CHECKING:
    import sympy

    from einsumcc.ir.numeric import (
        ARITH,
        BINARY,
        COMPARE,
        REDUCE_IDENTITY,
        UNARY,
        eval_constant,
    )

__all__ = [
    "ARITH",
    "BINARY",
    "COMPARE",
    "REDUCE_IDENTITY",
    "UNARY",
    "Bindings",
    "bind",
    "eval_constant",
    "index_coefficients",
]
_NUMERIC = {"ARITH", "BINARY", "COMPARE", "REDUCE_IDENTITY", "UNARY", "eval_constant"}


def __getattr__(name: str) -> Any:
    """The numpy tables of :mod:`einsumcc.ir.numeric`, imported on first use."""
    if name in _NUMERIC:
        from einsumcc.ir import numeric

        return getattr(numeric, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Bindings:
    """Concrete extents of every rank and values of every param."""

    extents: Mapping[str, int]
    params: Mapping[str, float]

    def shape(self, tensor: Tensor) -> tuple[int, ...]:
        return tuple(self.extents[d.rank] + (1 if d.iterative else 0) for d in tensor.dims)


def bind(cascade: Cascade, dims: Mapping[str, int] | None = None) -> Bindings:
    """Resolve every extent (``dims`` override the defaults) and every param.

    Raises :class:`EinError` pointing at the rank or split that cannot be satisfied.
    """
    import numpy as np
    import sympy

    from einsumcc.ir.numeric import eval_constant

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
    import sympy

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
