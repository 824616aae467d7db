"""Constant expressions: params, fills and init values, and the calls they may hold."""

from __future__ import annotations

import math

from einsumcc.frontend import syntax as s
from einsumcc.frontend.context import Context, UnresolvedError, suggest
from einsumcc.frontend.extents import Extents
from einsumcc.frontend.parser import KEYWORDS
from einsumcc.ir import nodes as ir
from einsumcc.ir.consteval import fold_constant
from einsumcc.ir.digraph import Digraph, find_cycle


class Constants:
    """Converts constant expressions and folds them with the extents known so far."""

    def __init__(self, ctx: Context, extents: Extents) -> None:
        self.ctx = ctx
        self.extents = extents

    def resolve_params(self) -> None:
        ctx = self.ctx
        graph: Digraph[str] = Digraph()
        for name, st in ctx.params.items():
            graph.add_node(name)
            try:
                value = self.const_expr(st.value, f"param {name}")
            except UnresolvedError:
                continue
            ctx.param_values[name] = value
            for n in ir.walk(value):
                if isinstance(n, ir.ParamRef):
                    graph.add_edge(n.name, name)
        found = find_cycle(graph)
        if found is not None:
            cycle = [c[0] for c in found]
            ctx.error(
                ctx.params[cycle[0]].span,
                "cyclic params: " + " -> ".join([*cycle, cycle[0]]),
            )

    def literal(self, e: s.Expr) -> ir.Expr | None:
        """Numbers, inf, params and extents: what every kind of expression may hold."""
        if isinstance(e, s.Number):
            return ir.Const(e.value, e.span)
        if isinstance(e, s.Inf):
            return ir.Const(math.inf, e.span)
        if isinstance(e, s.Name) and e.name in self.ctx.params:
            return ir.ParamRef(e.name, e.span)
        if isinstance(e, s.Name) and e.name in self.ctx.ranks:
            return ir.ExtentRef(e.name, e.span)
        return None

    def const_expr(self, e: s.Expr, what: str) -> ir.Expr:
        """A constant expression: numbers, inf, params, extents, arithmetic and functions."""
        lit = self.literal(e)
        if lit is not None:
            return lit
        if isinstance(e, s.Name):
            self.bad_name(e, what)
        if isinstance(e, s.Neg):
            return ir.Neg(self.const_expr(e.operand, what), e.span)
        if isinstance(e, s.BinOp):
            a = self.const_expr(e.lhs, what)
            b = self.const_expr(e.rhs, what)
            return ir.Binary(e.op, a, b, e.span)
        if isinstance(e, s.Call) and e.fn.name == "select":
            self.ctx.error(
                e.span,
                f"{what} cannot contain select",
                hint="select chooses a value at each point of an Einsum; a constant is one value",
            )
            raise UnresolvedError
        if isinstance(e, s.Call):
            args = tuple(self.const_expr(a, what) for a in e.args)
            self.check_call(e)
            return ir.Call(e.fn.name, args, e.span)
        self.ctx.error(
            e.span,
            f"{what} must be a constant expression",
            hint="constants are numbers, inf, params, rank extents, arithmetic and functions",
        )
        raise UnresolvedError

    def bad_name(self, e: s.Name, what: str) -> None:
        """Report a name that cannot appear in a constant expression, and give up."""
        ctx = self.ctx
        if e.name in ctx.var_rank:
            ctx.error(
                e.span,
                f"rank variable '{e.name}' cannot appear in {what}",
                hint=f"{what} is a constant expression; the extent is {ctx.var_rank[e.name]}",
            )
        elif e.name in KEYWORDS:
            ctx.error(e.span, f"unexpected keyword '{e.name}' in {what}")
        else:
            ctx.error(
                e.span,
                f"undeclared name '{e.name}' in {what}",
                hint=suggest(e.name, [*ctx.params, *ctx.ranks]),
            )
        raise UnresolvedError

    def check_call(self, e: s.Call) -> None:
        name = e.fn.name
        if name not in ir.FUNCTIONS:
            hint = suggest(name, ir.FUNCTIONS)
            if name in ir.REDUCTIONS:
                hint = f"'{name}' is a reduction: write {name}{{var}} operand"
            elif name in self.ctx.tensors or name in self.ctx.assignments:
                hint = f"tensors are indexed with brackets: {name}[...]"
            self.ctx.error(e.fn.span, f"unknown function '{name}'", hint=hint)
            raise UnresolvedError
        arity = ir.FUNCTIONS[name]
        if len(e.args) != arity:
            plural = "s" if arity != 1 else ""
            hint = None
            if name in {"max", "min"} and len(e.args) == 1:
                hint = f"to reduce over a rank, write {name}{{var}} operand"
            self.ctx.error(
                e.span,
                f"function '{name}' takes {arity} argument{plural}, got {len(e.args)}",
                hint=hint,
            )
            raise UnresolvedError

    def fold(self, e: ir.Expr) -> float | None:
        """Evaluate a constant expression with default extents; None when not known yet."""
        try:
            return fold_constant(e, self.extents.known(), self.ctx.param_values)
        except (KeyError, RecursionError):
            return None
