"""Tensor declarations: dimensions, dtypes and fills; ranks of undeclared intermediates."""

from __future__ import annotations

import math

from einsumcc.frontend import syntax as s
from einsumcc.frontend.constants import Constants
from einsumcc.frontend.context import Context, TensorInfo, UnresolvedError, suggest
from einsumcc.frontend.indices import Indices, is_plus_one
from einsumcc.frontend.points import PointValues
from einsumcc.frontend.values import Values
from einsumcc.ir import nodes as ir

DTYPES = {d.value: d for d in ir.DType}


def fill_hint(dtype: ir.DType, value: float) -> str:
    if dtype.is_float and math.isfinite(value):
        return (
            f"the largest finite {dtype.value} is {dtype.max_finite:g}; use -inf, or a "
            "wider dtype such as f32"
        )
    if not dtype.is_float:
        return f"{dtype.value} holds integers from {dtype.min_value:g} to {dtype.max_finite:g}"
    return "choose a value the dtype can hold"


class Tensors:
    """Fills in ``ctx.tensors``: declared tensors, then the intermediates assigned only."""

    def __init__(self, ctx: Context, constants: Constants, indices: Indices) -> None:
        self.ctx = ctx
        self.constants = constants
        self.indices = indices
        self.points = PointValues(ctx, constants, Values(ctx, constants, indices))

    def resolve(self) -> None:
        declared = list(self.ctx.tensors.values())
        for info in declared:
            st = info.decl
            assert st is not None
            dims = [self.decl_dim(d) for d in st.dims]
            info.dims = None if None in dims else tuple(d for d in dims if d is not None)
            if st.dtype is not None:
                self.dtype(info, st.dtype)
        self.undeclared()
        # fills last: a fill may read inputs declared after the tensor (v2)
        for info in declared:
            assert info.decl is not None
            if info.decl.fill is not None:
                self.fill(info, info.decl.fill)

    def undeclared(self) -> None:
        for name, assignment in self.ctx.assignments.items():
            if name in self.ctx.tensors:
                continue
            self.ctx.tensors[name] = TensorInfo(
                name,
                None,
                self.lhs_dims(assignment.target),
                ir.DType.F32,
                ir.Const(0),
                None,
                assignment.target.span,
            )

    def dtype(self, info: TensorInfo, dtype: s.Ident) -> None:
        if dtype.name in DTYPES:
            info.dtype = DTYPES[dtype.name]
            return
        self.ctx.error(
            dtype.span,
            f"unknown dtype '{dtype.name}'",
            hint=suggest(dtype.name, DTYPES) or "dtypes are " + ", ".join(DTYPES),
        )

    def fill(self, info: TensorInfo, fill: s.Expr) -> None:
        own = frozenset(d.rank.lower() for d in info.dims or () if not d.iterative)
        try:
            info.fill = self.points.convert(fill, f"the fill value of {info.name}", own)
        except UnresolvedError:
            return
        value = self.constants.fold(info.fill)
        if value is not None and not info.dtype.can_represent(value):
            self.ctx.error(
                fill.span,
                f"fill value {value!r} of {info.name} cannot be represented in {info.dtype.value}",
                hint=fill_hint(info.dtype, value),
            )

    def decl_dim(self, d: s.Expr) -> ir.Dim | None:
        ranks = self.ctx.ranks
        if isinstance(d, s.Name):
            if d.name in ranks:
                return ir.Dim(d.name)
            self.ctx.error(
                d.span,
                f"undeclared rank '{d.name}'",
                hint=suggest(d.name, ranks) or f"declare it: rank {d.name}",
            )
            return None
        if is_plus_one(d):
            assert isinstance(d, s.BinOp)
            assert isinstance(d.lhs, s.Name)
            if d.lhs.name in ranks:
                return ir.Dim(d.lhs.name, iterative=True)
            self.ctx.error(
                d.lhs.span, f"undeclared rank '{d.lhs.name}'", suggest(d.lhs.name, ranks)
            )
            return None
        self.ctx.error(
            d.span,
            "a tensor's dimensions are rank names, or X+1 for an iterative rank",
        )
        return None

    def lhs_dims(self, target: s.Access) -> tuple[ir.Dim, ...] | None:
        dims = [self.indices.lhs_dim(idx) for idx in target.indices]
        return None if None in dims else tuple(d for d in dims if d is not None)
