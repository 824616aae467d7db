"""Filter rules: the conjuncts of ``where`` within one iteration space.

A conjunct that is an affine comparison over rank variables, extents and integers (the v1
form) becomes a :class:`~einsumcc.ir.nodes.Condition`, what tools reason about statically.
Every other conjunct (v2: comparisons of any values, tensor reads included, ``or``, ``not``)
is a condition evaluated point by point, kept in the Einsum's ``mask``.
"""

from __future__ import annotations

from dataclasses import dataclass

from einsumcc.frontend import syntax as s
from einsumcc.frontend.context import Context, UnresolvedError
from einsumcc.frontend.indices import Indices
from einsumcc.frontend.values import Values
from einsumcc.ir import nodes as ir
from einsumcc.ir.affine import Affine


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


def _quiet_affine(ctx: Context, e: s.Expr) -> Affine | None:
    """``e`` as an affine expression of rank variables, extents and integers, or None."""
    if isinstance(e, s.Name):
        if e.name in ctx.var_rank:
            return Affine.var(e.name)
        return Affine.extent(e.name) if e.name in ctx.ranks else None
    if isinstance(e, s.Number):
        return Affine.const(int(e.text)) if e.text.isdigit() else None
    if isinstance(e, s.Neg):
        inner = _quiet_affine(ctx, e.operand)
        return None if inner is None else -inner
    if isinstance(e, s.BinOp) and e.op in {"+", "-", "*", "/"}:
        a = _quiet_affine(ctx, e.lhs)
        b = _quiet_affine(ctx, e.rhs)
        if a is None or b is None or (e.op == "/" and b.is_int(0)):
            return None
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[e.op]
    return None


@dataclass(frozen=True)
class Filter:
    where: tuple[ir.Condition, ...]
    mask: tuple[ir.Expr, ...]


class Filters:
    def __init__(self, ctx: Context, indices: Indices, values: Values) -> None:
        self.ctx = ctx
        self.indices = indices
        self.values = values

    def check(self, st: s.EinsumStmt, body: ir.Expr, lhs_vars: set[str]) -> Filter | None:
        where: list[ir.Condition] = []
        mask: list[ir.Expr] = []
        reduced = {v for n in ir.walk(body) if isinstance(n, ir.Reduce) for v in n.variables}
        space = lhs_vars | reduced
        ok = True
        for c in st.where:
            cond = self.affine(c)
            found = cond if cond is not None else self.data(c)
            if found is None or not self.in_space(c, found, body, space, lhs_vars):
                ok = False
            elif isinstance(found, ir.Condition):
                where.append(found)
            else:
                mask.append(found)
        return Filter(tuple(where), tuple(mask)) if ok else None

    def affine(self, c: s.Expr) -> ir.Condition | None:
        """A v1 condition: an affine comparison (None: the conjunct is not one)."""
        if not isinstance(c, s.Cond):
            return None
        lhs = _quiet_affine(self.ctx, c.lhs)
        rhs = _quiet_affine(self.ctx, c.rhs)
        if lhs is None or rhs is None:
            return None
        if lhs.affine_problem() is not None or rhs.affine_problem() is not None:
            return None
        return ir.Condition(lhs, c.op, rhs, c.span)

    def data(self, c: s.Expr) -> ir.Expr | None:
        """(v2) a condition evaluated at each point; reductions belong in Einsums of their own."""
        try:
            cond = self.values.condition(c, frozenset(), "a filter condition")
        except UnresolvedError:
            return None
        for n in ir.walk(cond):
            if isinstance(n, ir.Reduce):
                self.ctx.error(
                    n.span,
                    "a filter condition cannot contain a reduction",
                    hint="compute the reduction in an Einsum of its own and compare its result",
                )
                return None
        return cond

    def in_space(
        self,
        c: s.Expr,
        cond: ir.Condition | ir.Expr,
        body: ir.Expr,
        space: set[str],
        lhs_vars: set[str],
    ) -> bool:
        """Whether the condition's variables are iterated by the Einsum, in one scope."""
        variables = cond.variables if isinstance(cond, ir.Condition) else ir.free_variables(cond)
        outside = sorted(variables - space)
        if outside:
            self.ctx.error(
                c.span,
                f"filter variable '{outside[0]}' is not iterated by this Einsum",
                hint="a filter restricts the Einsum's own iteration space",
            )
            return False
        if not in_one_scope(body, variables - lhs_vars):
            self.ctx.error(
                c.span,
                "this condition relates variables of separate reductions",
                hint="write the reductions as separate Einsums",
            )
            return False
        return True
