"""(v2) Values of ``init`` statements and fills: expressions evaluated at each point of a tensor.

``init RNV[f, 0, p] = B0[f, p]`` and ``tensor QK[M, P] : f32 = MASKVAL[p]`` may read inputs,
params, extents and the statement's own non-iterative index variables.  An expression without
tensor reads, rank variables or ``select`` is a constant expression, checked exactly as in v1.
"""

from __future__ import annotations

from einsumcc.frontend import syntax as s
from einsumcc.frontend.constants import Constants
from einsumcc.frontend.context import Context, UnresolvedError
from einsumcc.frontend.values import SELECT, Values
from einsumcc.ir import nodes as ir


def _is_pointwise(e: s.Expr, ctx: Context) -> bool:
    """Whether ``e`` reads a tensor, names a rank variable or holds a select or condition."""
    stack = [e]
    while stack:
        n = stack.pop()
        if isinstance(n, s.Access | s.Cond | s.BoolOp | s.NotCond):
            return True
        if isinstance(n, s.Name) and n.name in ctx.var_rank:
            return True
        if isinstance(n, s.Call):
            if n.fn.name == SELECT:
                return True
            stack.extend(n.args)
        elif isinstance(n, s.BinOp):
            stack += [n.lhs, n.rhs]
        elif isinstance(n, s.Neg):
            stack.append(n.operand)
        elif isinstance(n, s.Reduce):
            return True
    return False


class PointValues:
    """Converts the value of an init or a fill; reports what it may not read."""

    def __init__(self, ctx: Context, constants: Constants, values: Values) -> None:
        self.ctx = ctx
        self.constants = constants
        self.values = values

    def convert(self, e: s.Expr, what: str, own: frozenset[str]) -> ir.Expr:
        """The value of ``e`` at each point; ``own``: the variables it may use."""
        if not _is_pointwise(e, self.ctx):
            return self.constants.const_expr(e, what)
        value = self.values.expr(e, frozenset())
        ok = True
        for n in ir.walk(value):
            if isinstance(n, ir.Reduce):
                self.ctx.error(
                    n.span,
                    f"{what} cannot contain a reduction",
                    hint="compute the reduction in an Einsum and read its result there",
                )
                ok = False
                break
            if isinstance(n, ir.Access):
                ok = self.check_read(n, what) and ok
            if isinstance(n, ir.Access | ir.VarRef):
                ok = self.check_variables(n, what, own) and ok
        if not ok:
            raise UnresolvedError
        return value

    def check_read(self, acc: ir.Access, what: str) -> bool:
        info = self.ctx.tensors[acc.tensor]
        if info.role is ir.Role.INPUT:
            return True
        if info.dims is not None and any(d.iterative for d in info.dims):
            self.ctx.error(
                acc.span,
                f"{what} reads the iterative tensor '{acc.tensor}'",
                hint="an init or a fill is set before any Einsum runs: it may read inputs, "
                "params, extents and its own index variables",
            )
        else:
            self.ctx.error(
                acc.span,
                f"{what} reads '{acc.tensor}', which is not an input",
                hint="an init or a fill is set before any Einsum runs: it may read inputs, "
                "params, extents and its own index variables",
            )
        return False

    def check_variables(self, n: ir.Access | ir.VarRef, what: str, own: frozenset[str]) -> bool:
        used = n.variables if isinstance(n, ir.Access) else frozenset({n.var})
        outside = sorted(used - own)
        if not outside:
            return True
        shown = ", ".join(sorted(own)) or "none"
        self.ctx.error(
            n.span,
            f"{what} uses the rank variable '{outside[0]}', which is not one of its indices",
            hint=f"it may use its own non-iterative index variables ({shown})",
        )
        return False
