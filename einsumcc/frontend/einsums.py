"""Einsum statements: the left-hand side, the Einstein rule and the scoping of reductions."""

from __future__ import annotations

from einsumcc.diagnostics import Span
from einsumcc.frontend import syntax as s
from einsumcc.frontend.context import Context, TensorInfo, UnresolvedError
from einsumcc.frontend.filters import Filters
from einsumcc.frontend.indices import Indices
from einsumcc.frontend.values import Values, transpose_hint
from einsumcc.ir import nodes as ir
from einsumcc.ir.affine import Affine
from einsumcc.ir.einstein import make_sums_explicit


def _show(e: s.Expr) -> str:
    if isinstance(e, s.Name):
        return f"'{e.name}'"
    return "expression"


def _children(e: s.Expr) -> tuple[s.Expr, ...]:
    if isinstance(e, s.BinOp | s.Cond):
        return (e.lhs, e.rhs)
    if isinstance(e, s.Neg | s.NotCond):
        return (e.operand,)
    if isinstance(e, s.BoolOp):
        return e.parts
    if isinstance(e, s.Call):
        return e.args
    if isinstance(e, s.Access):
        return e.indices
    return ()


def first_free_use(e: s.Expr, v: str, bound: frozenset[str]) -> Span | None:
    """Where ``v`` is first used outside every reduction that binds it."""
    if isinstance(e, s.Name):
        return e.span if e.name == v and v not in bound else None
    if isinstance(e, s.Reduce):
        return first_free_use(e.body, v, bound | {x.name for x in e.variables})
    for k in _children(e):
        span = first_free_use(k, v, bound)
        if span is not None:
            return span
    return None


class Einsums:
    """Builds ``ctx.einsums``: one :class:`~einsumcc.ir.nodes.Einsum` per assignment."""

    def __init__(self, ctx: Context, indices: Indices, values: Values) -> None:
        self.ctx = ctx
        self.indices = indices
        self.values = values
        self.filters = Filters(ctx, indices, values)

    def check(self) -> None:
        ctx = self.ctx
        for name, st in ctx.assignments.items():
            if name in ctx.ranks or name in ctx.params or name in ctx.var_rank:
                continue
            einsum = self.einsum(st, ctx.tensors[name])
            if einsum is not None:
                ctx.einsums[name] = einsum

    def einsum(self, st: s.EinsumStmt, info: TensorInfo) -> ir.Einsum | None:
        out = self.lhs(st.target, info)
        try:
            body = self.values.expr(st.value, frozenset())
        except UnresolvedError:
            return None
        if out is None:
            return None
        lhs_vars = set(out.variables)
        if not self.check_scoping(st, body, lhs_vars):
            return None
        implicit = ir.free_variables(body) - lhs_vars
        body = make_sums_explicit(body, implicit)
        found = self.filters.check(st, body, lhs_vars)
        if found is None:
            return None
        return ir.Einsum(out, body, found.where, st.span, found.mask)

    # ------------------------------------------------------------ left-hand side
    def lhs(self, target: s.Access, info: TensorInfo) -> ir.Access | None:
        dims = info.dims
        if dims is not None and len(target.indices) != len(dims):
            self.ctx.error(
                target.span,
                f"{info.name} has {len(dims)} rank{'s' if len(dims) != 1 else ''} "
                f"({', '.join(map(str, dims)) or 'rank 0'}) but is assigned with "
                f"{len(target.indices)} ind{'ices' if len(target.indices) != 1 else 'ex'}",
                notes=[("declared here", info.span)] if info.decl else [],
            )
            return None
        seen: dict[str, Span | None] = {}
        indices: list[Affine] = []
        ok = True
        for i, idx in enumerate(target.indices):
            dim = self.indices.lhs_dim(idx)
            if dim is None:
                ok = False
                continue
            try:
                expr = self.indices.affine(idx, "an index")
            except UnresolvedError:
                ok = False
                continue
            ok = self.distinct(expr, idx, seen) and ok
            if dims is not None and dims[i] != dim and ok:
                self.wrong_dim(target, info, dims, i, dim)
                ok = False
            indices.append(expr)
        if not ok:
            return None
        return ir.Access(info.name, tuple(indices), target.span)

    def distinct(self, expr: Affine, idx: s.Expr, seen: dict[str, Span | None]) -> bool:
        ok = True
        for v in expr.free_symbols:
            if v.var:
                if v.name in seen:
                    self.ctx.error(
                        idx.span,
                        f"rank variable '{v.name}' appears twice on the left side",
                        hint="left-hand indices are distinct rank variables",
                    )
                    ok = False
                seen[v.name] = idx.span
        return ok

    def wrong_dim(
        self,
        target: s.Access,
        info: TensorInfo,
        dims: tuple[ir.Dim, ...],
        i: int,
        dim: ir.Dim,
    ) -> None:
        idx = target.indices[i]
        want = dims[i]
        var = self.ctx.ranks[want.rank].name.name.lower()
        hint = transpose_hint(self.ctx.var_rank, info.name, dims, target)
        if want.rank == dim.rank and want.iterative:
            msg = f"{info.name} is iterative in {want.rank}: its Einsum writes the next iterate"
            hint = f"write {info.name}[..{var} + 1..] = ... and read {info.name}[..{var}..]"
        elif want.rank == dim.rank:
            msg = f"{info.name} is not iterative in {want.rank}"
            hint = f"index it with {var}, or declare it {info.name}[..{want.rank}+1..]"
        else:
            msg = (
                f"index {_show(idx)} (rank {dim.rank}) is at position {i + 1} of "
                f"{info.name}, which has rank {want.rank}"
            )
        self.ctx.error(
            idx.span,
            msg,
            hint=hint,
            notes=[(f"{info.name} declared here", info.span)] if info.decl else [],
        )

    # ------------------------------------------------------------ scoping
    def check_scoping(self, st: s.EinsumStmt, body: ir.Expr, lhs_vars: set[str]) -> bool:
        """Bound reduction variables: not on the left, not used outside their operand."""
        ok = True
        bound_anywhere: set[str] = set()
        for n in ir.walk(body):
            if not isinstance(n, ir.Reduce):
                continue
            for v in n.variables:
                if v in lhs_vars:
                    self.ctx.error(
                        n.span,
                        f"rank variable '{v}' is reduced but also appears on the left side",
                        hint=f"drop '{v}' from the left side, or do not reduce over it",
                    )
                    ok = False
                bound_anywhere.add(v)
        free = ir.free_variables(body)
        for v in sorted(bound_anywhere & free):
            site = first_free_use(st.value, v, frozenset())
            self.ctx.error(
                site or st.span,
                f"rank variable '{v}' is used outside the reduction that binds it",
                hint=f"a reduction's operand is a single factor: to reduce a product, "
                f"parenthesise it: sum{{{v}}} (A[..{v}..] * B[..{v}..])",
            )
            ok = False
        return ok
