"""Masks: which lanes of a tile are points of the iteration space, and which accesses can
fall outside their tensor."""

from __future__ import annotations

from collections.abc import Iterable

import sympy

from einsumcc.ir.nodes import Condition, is_var_symbol
from einsumcc.schedule.nodes import Node
from einsumcc.schedule.schedule import AxisRole
from einsumcc_triton import kernel_ast as ka
from einsumcc_triton.part import Part
from einsumcc_triton.values import Val


class Masks(Part):
    """Lane validity (block padding, the last tile of a stream), the conditions a loop
    segment still has to check, and the bounds of an access that are not provably in range."""

    def lane_valid(self, var: str) -> Val | None:
        """Validity of a lane axis here: padding of a block, the last tile of a stream."""
        if var == self.scope.loop_var and self.k.axis(var).role is AxisRole.STREAM:
            code = self.scope.stream_valid if self.scope.seg.partial else None
            return Val(code, (var,), "i1") if code is not None else None
        code = self.scope.valid.get(var)
        return Val(code, (var,), "i1") if code is not None else None

    def active(self, node: Node, conds: Iterable[Condition]) -> list[Condition]:
        lp = self.scope.seg.loop
        if lp is None or self.scope.seg.partial:
            return list(conds)
        classified = {(s.node, s.condition) for s in lp.tiles.classified}
        return [c for c in conds if (node.key, c) not in classified]

    def in_range(self, expr: sympy.Expr, rank: str, iterative: bool) -> bool:
        """The index is within ``[0, extent)`` for every point of its variables."""
        lo: sympy.Expr = sympy.Integer(0)
        hi: sympy.Expr = sympy.Integer(0)
        expr = sympy.expand(expr)
        for sym in expr.free_symbols:
            if not is_var_symbol(sym):
                continue
            coeff = expr.coeff(sym, 1)
            top = self.c.rank(self.c.var_ranks[str(sym)]).symbol - 1
            if coeff.is_nonnegative:
                hi, lo = hi + coeff * top, lo
            elif coeff.is_nonpositive:
                lo = lo + coeff * top
            else:
                return False
        const = expr.xreplace({s: 0 for s in expr.free_symbols if is_var_symbol(s)})
        lo, hi = lo + const, hi + const
        dim = self.c.rank(rank).symbol + (1 if iterative else 0)
        ok_lo = self.low.concrete(lo).is_nonnegative
        ok_hi = self.low.concrete(dim - 1 - hi).is_nonnegative
        return bool(ok_lo) and bool(ok_hi)

    def access_mask(
        self, tensor: str, indices: tuple[sympy.Expr, ...], axes: tuple[str, ...]
    ) -> ka.Expr | None:
        parts: list[ka.Expr] = []
        for v in axes:
            lv = self.lane_valid(v)
            if lv is not None:
                parts.append(self.values.expand_to(lv, axes))
        dims = self.low.tensor_dims(tensor)
        for pos, ix in enumerate(indices):
            rank, iterative = dims[pos]
            if self.in_range(ix, rank, iterative):
                continue
            code = self.index.render_terms(self.index.terms(ix), axes) or ka.Literal(0)
            bound: ka.Expr = self.scope.extent(rank)
            if iterative:
                bound = ka.BinaryOp("+", bound, ka.Literal(1))
            parts.append(
                ka.BinaryOp(
                    "&", ka.BinaryOp(">=", code, ka.Literal(0)), ka.BinaryOp("<", code, bound)
                )
            )
        if not parts:
            return None
        out = parts[0]
        for p in parts[1:]:
            out = ka.BinaryOp("&", out, p)
        return out
