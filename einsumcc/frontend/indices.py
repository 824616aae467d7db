"""Index typing: index expressions as exact affine expressions, and the ranks they index."""

from __future__ import annotations

from einsumcc.frontend import syntax as s
from einsumcc.frontend.context import Context, UnresolvedError
from einsumcc.ir import nodes as ir
from einsumcc.ir.affine import Affine

_KINDS: dict[type, str] = {
    s.Access: "a tensor access",
    s.Call: "a function call",
    s.Reduce: "a reduction",
    s.Inf: "inf",
    s.Cond: "a comparison",
    s.BoolOp: "a condition",
    s.NotCond: "a condition",
}


def is_plus_one(e: s.Expr) -> bool:
    """``x + 1`` with a name ``x``: an iterative dimension or the next iterate."""
    return (
        isinstance(e, s.BinOp)
        and e.op == "+"
        and isinstance(e.lhs, s.Name)
        and isinstance(e.rhs, s.Number)
        and e.rhs.text == "1"
    )


class Indices:
    """Converts index expressions and filter sides; infers the dimension of a left index."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def affine(self, e: s.Expr, what: str) -> Affine:
        expr = self.expr(e, what)
        problem = expr.affine_problem()
        if problem is None:
            return expr
        kind, value, var = problem
        if kind == "nonaffine":
            self.ctx.error(
                e.span,
                f"{what} must be affine in rank variables",
                hint="products of rank variables are not allowed",
            )
        elif kind == "coefficient":
            self.ctx.error(
                e.span,
                f"coefficient {value} of {var} in {what} is not an integer",
                hint="a division in an index expression must be exact",
            )
        else:
            self.ctx.error(e.span, f"{what} has a non-integer offset {value}")
        raise UnresolvedError

    def expr(self, e: s.Expr, what: str) -> Affine:
        if isinstance(e, s.Name):
            return self.name(e, what)
        if isinstance(e, s.Number):
            if not e.text.isdigit():
                self.ctx.error(e.span, f"{what} must be an integer expression, not {e.text}")
                raise UnresolvedError
            return Affine.const(int(e.text))
        if isinstance(e, s.BinOp) and e.op == "**":
            self.ctx.error(
                e.span,
                f"{what} cannot contain a power '**'",
                hint="index expressions are affine: rank variables, extents and integers "
                "joined by + - and *; write a constant power as a product, or declare an extent",
            )
            raise UnresolvedError
        if isinstance(e, s.BinOp):
            a = self.expr(e.lhs, what)
            b = self.expr(e.rhs, what)
            if e.op == "/" and b.is_int(0):
                self.ctx.error(e.span, f"division by zero in {what}")
                raise UnresolvedError
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[e.op]
        if isinstance(e, s.Neg):
            return -self.expr(e.operand, what)
        self.ctx.error(
            e.span,
            f"{what} cannot contain {_KINDS.get(type(e), 'this')}",
            hint="index expressions are affine: rank variables, extents and integers",
        )
        raise UnresolvedError

    def name(self, e: s.Name, what: str) -> Affine:
        ctx = self.ctx
        if e.name in ctx.var_rank:
            return Affine.var(e.name)
        if e.name in ctx.ranks:
            return Affine.extent(e.name)
        if e.name in ctx.params:
            ctx.error(
                e.span,
                f"param '{e.name}' cannot appear in {what}",
                hint="index expressions use rank variables, extents and integers",
            )
            raise UnresolvedError
        ctx.unknown_name(e)
        raise UnresolvedError

    def lhs_dim(self, idx: s.Expr) -> ir.Dim | None:
        """The dimension that a left-hand index implies, or None (reported)."""
        var_rank = self.ctx.var_rank
        if isinstance(idx, s.Name) and idx.name in var_rank:
            return ir.Dim(var_rank[idx.name])
        if is_plus_one(idx):
            assert isinstance(idx, s.BinOp)
            assert isinstance(idx.lhs, s.Name)
            if idx.lhs.name in var_rank:
                return ir.Dim(var_rank[idx.lhs.name], iterative=True)
        try:
            expr = self.affine(idx, "an index")
        except UnresolvedError:
            return None
        for parent, st in self.ctx.splits.items():
            if all(c.name in self.ctx.ranks for c in st.children) and parent in self.ctx.ranks:
                split = ir.Split(parent, tuple(c.name for c in st.children))
                if expr == split.index_affine:
                    return ir.Dim(parent)
        if isinstance(idx, s.Name):
            self.ctx.unknown_name(idx)
            return None
        self.ctx.error(
            idx.span,
            "a left-hand index must be a rank variable, x + 1 for an iterative rank, "
            "or the split expression of a rank",
        )
        return None
