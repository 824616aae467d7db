"""Filter rules: ``where`` conditions are affine comparisons within one iteration space."""

from __future__ import annotations

from einsumcc.frontend import syntax as s
from einsumcc.frontend.context import Context, UnresolvedError
from einsumcc.frontend.indices import Indices
from einsumcc.ir import nodes as ir


def in_one_scope(body: ir.Expr, needed: frozenset[str]) -> bool:
    """Whether one reduction of ``body`` (with those around it) binds every ``needed`` variable."""
    if not needed:
        return True

    def visit(e: ir.Expr, scope: frozenset[str]) -> bool:
        if isinstance(e, ir.Reduce):
            scope = scope | set(e.variables)
            if needed <= scope:
                return True
        return any(visit(c, scope) for c in ir.children(e))

    return visit(body, frozenset())


class Filters:
    def __init__(self, ctx: Context, indices: Indices) -> None:
        self.ctx = ctx
        self.indices = indices

    def check(
        self, st: s.EinsumStmt, body: ir.Expr, lhs_vars: set[str]
    ) -> tuple[ir.Condition, ...] | None:
        conds: list[ir.Condition] = []
        reduced = {v for n in ir.walk(body) if isinstance(n, ir.Reduce) for v in n.variables}
        space = lhs_vars | reduced
        ok = True
        for c in st.where:
            cond = self.condition(c, body, space, lhs_vars)
            if cond is None:
                ok = False
            else:
                conds.append(cond)
        return tuple(conds) if ok else None

    def condition(
        self, c: s.Cond, body: ir.Expr, space: set[str], lhs_vars: set[str]
    ) -> ir.Condition | None:
        try:
            lhs = self.indices.affine(c.lhs, "a filter condition")
            rhs = self.indices.affine(c.rhs, "a filter condition")
        except UnresolvedError:
            return None
        cond = ir.Condition(lhs, c.op, rhs, c.span)
        outside = sorted(cond.variables - space)
        if outside:
            self.ctx.error(
                c.span,
                f"filter variable '{outside[0]}' is not iterated by this Einsum",
                hint="a filter restricts the Einsum's own iteration space",
            )
            return None
        if not in_one_scope(body, cond.variables - lhs_vars):
            self.ctx.error(
                c.span,
                "this condition relates variables of separate reductions",
                hint="write the reductions as separate Einsums",
            )
            return None
        return cond
