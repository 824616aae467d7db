"""Right-hand sides: value expressions, reductions and tensor reads."""

from __future__ import annotations

from einsumcc.frontend import syntax as s
from einsumcc.frontend.constants import Constants
from einsumcc.frontend.context import Context, UnresolvedError, suggest
from einsumcc.frontend.indices import Indices
from einsumcc.ir import nodes as ir
from einsumcc.ir.affine import Affine

SELECT = "select"


def transpose_hint(
    var_rank: dict[str, str], name: str, dims: tuple[ir.Dim, ...], access: s.Access
) -> str | None:
    bare = [i.name for i in access.indices if isinstance(i, s.Name) and i.name in var_rank]
    if len(bare) != len(access.indices):
        return f"{name} is declared {name}[{', '.join(map(str, dims))}]"
    ranks = sorted(var_rank[b] for b in bare)
    if ranks == sorted(d.rank for d in dims):
        by_rank = {var_rank[b]: b for b in bare}
        fixed = ", ".join(by_rank[d.rank] for d in dims)
        shown = ", ".join(map(str, dims))
        return f"{name} is declared {name}[{shown}]: did you mean {name}[{fixed}]?"
    return f"{name} is declared {name}[{', '.join(map(str, dims))}]"


class Values:
    """Converts a right-hand side to an IR expression, reporting every problem in it."""

    def __init__(self, ctx: Context, constants: Constants, indices: Indices) -> None:
        self.ctx = ctx
        self.constants = constants
        self.indices = indices

    def expr(self, e: s.Expr, bound: frozenset[str]) -> ir.Expr:
        lit = self.constants.literal(e)
        if lit is not None:
            return lit
        if isinstance(e, s.Name):
            if e.name in self.ctx.var_rank:
                return ir.VarRef(e.name, e.span)
            self.ctx.unknown_name(e)
            raise UnresolvedError
        if isinstance(e, s.Neg):
            return ir.Neg(self.expr(e.operand, bound), e.span)
        if isinstance(e, s.BinOp):
            lhs, rhs = self.all_of((e.lhs, e.rhs), bound)
            return ir.Binary(e.op, lhs, rhs, e.span)
        if isinstance(e, s.Cond | s.BoolOp | s.NotCond):
            self.ctx.error(
                e.span,
                "a condition is not a value",
                hint="choose a value by a condition with select(condition, a, b)",
            )
            raise UnresolvedError
        if isinstance(e, s.Call) and e.fn.name == SELECT:
            return self.select(e, bound)
        if isinstance(e, s.Call):
            try:
                args = self.all_of(e.args, bound)
            finally:
                self.constants.check_call(e)
            return ir.Call(e.fn.name, args, e.span)
        if isinstance(e, s.Reduce):
            return self.reduce(e, bound)
        assert isinstance(e, s.Access)
        return self.read(e)

    def all_of(self, parts: tuple[s.Expr, ...], bound: frozenset[str]) -> tuple[ir.Expr, ...]:
        """Every part converted, or UnresolvedError after reporting the problems of all."""
        out: list[ir.Expr] = []
        failed = False
        for part in parts:
            try:
                out.append(self.expr(part, bound))
            except UnresolvedError:
                failed = True
        if failed:
            raise UnresolvedError
        return tuple(out)

    # ------------------------------------------------------------ conditions (v2)
    def select(self, e: s.Call, bound: frozenset[str]) -> ir.Expr:
        """``select(c, a, b)``: ``c`` has the syntax of a filter."""
        if len(e.args) != 3:
            self.ctx.error(
                e.span,
                f"function 'select' takes 3 arguments, got {len(e.args)}",
                hint="select(condition, value where it holds, value elsewhere)",
            )
            raise UnresolvedError
        failed = False
        try:
            cond = self.condition(e.args[0], bound, "the condition of select")
        except UnresolvedError:
            failed = True
        try:
            then, other = self.all_of(e.args[1:], bound)
        except UnresolvedError:
            failed = True
        if failed:
            raise UnresolvedError
        return ir.Select(cond, then, other, e.span)

    def condition(self, e: s.Expr, bound: frozenset[str], what: str) -> ir.Expr:
        """A condition: comparisons of values joined by ``and``, ``or`` and ``not``."""
        if isinstance(e, s.Cond):
            lhs, rhs = self.all_of((e.lhs, e.rhs), bound)
            return ir.Compare(lhs, e.op, rhs, e.span)
        if isinstance(e, s.NotCond):
            return ir.Not(self.condition(e.operand, bound, what), e.span)
        if isinstance(e, s.BoolOp):
            parts: list[ir.Expr] = []
            failed = False
            for part in e.parts:
                try:
                    parts.append(self.condition(part, bound, what))
                except UnresolvedError:
                    failed = True
            if failed:
                raise UnresolvedError
            return ir.Logic(e.op, tuple(parts), e.span)
        text = self.source_text(e)
        self.ctx.error(
            e.span,
            f"{what} is not a comparison",
            hint=f"compare the value: {text} != 0"
            if text
            else "a condition compares values (< <= > >= == !=), joined by and, or, not",
        )
        raise UnresolvedError

    def source_text(self, e: s.Expr) -> str | None:
        """The text of ``e`` when it fits on one short line."""
        span, source = e.span, self.ctx.source
        if span is None or source is None or span.line != span.end_line:
            return None
        text = source.line(span.line)[span.col - 1 : span.end_col - 1].strip()
        return text if 0 < len(text) <= 40 else None

    # ------------------------------------------------------------ reductions
    def reduce(self, e: s.Reduce, bound: frozenset[str]) -> ir.Expr:
        op = e.op.name
        ok = True
        if op not in ir.REDUCTIONS:
            hint = suggest(op, ir.REDUCTIONS) or "reductions are sum, max, min and prod"
            self.ctx.error(e.op.span, f"unknown reduction '{op}'", hint=hint)
            ok = False
        names: list[str] = []
        for v in e.variables:
            if self.bound_variable(v, op, bound, names):
                names.append(v.name)
            else:
                ok = False
        body = self.expr(e.body, bound | set(names))
        used = ir.free_variables(body)
        for v in e.variables:
            if v.name in names and v.name not in used:
                self.report_unused(v, op)
                ok = False
        if not ok:
            raise UnresolvedError
        return ir.Reduce(op, tuple(sorted(names)), body, e.span)

    def bound_variable(self, v: s.Ident, op: str, bound: frozenset[str], names: list[str]) -> bool:
        """Whether ``v`` may be bound by this reduction (reported when not)."""
        ctx = self.ctx
        if v.name in ctx.var_rank:
            if v.name in bound or v.name in names:
                ctx.error(v.span, f"rank variable '{v.name}' is already bound by a reduction")
                return False
            return True
        if v.name in ctx.ranks:
            ctx.error(
                v.span,
                f"'{v.name}' is a rank; a reduction binds its variable",
                hint=f"write {op}{{{v.name.lower()}}}",
            )
            return False
        split_hint = None
        if v.name.upper() in ctx.splits:
            kids = [c.name.lower() for c in ctx.splits[v.name.upper()].children]
            parts = ", ".join(k.upper() for k in kids)
            split_hint = (
                f"rank {v.name.upper()} is split into ({parts}); reduce over {', '.join(kids)}"
            )
        ctx.error(
            v.span,
            f"rank variable '{v.name}' has no rank",
            hint=split_hint or suggest(v.name, ctx.var_rank),
        )
        return False

    def report_unused(self, v: s.Ident, op: str) -> None:
        rank = self.ctx.var_rank[v.name]
        split = self.ctx.splits.get(rank)
        if split is not None:
            tiles = ", ".join(c.name.lower() for c in split.children)
            hint = f"rank {rank} is split into its tiles here: reduce over {tiles}?"
        else:
            hint = (
                f"a reduction's operand is a single factor: to reduce a product, "
                f"parenthesise it: {op}{{{v.name}}} (A[..{v.name}..] * B[..])"
            )
        self.ctx.error(
            v.span,
            f"'{v.name}' does not occur in the operand of {op}{{{v.name}}}",
            hint=hint,
        )

    # ------------------------------------------------------------ reads
    def read(self, e: s.Access) -> ir.Access:
        ctx = self.ctx
        name = e.tensor.name
        info = ctx.tensors.get(name)
        if info is None:
            if name in ctx.ranks or name in ctx.params:
                ctx.error(
                    e.tensor.span,
                    f"'{name}' is a {'rank' if name in ctx.ranks else 'param'}, not a tensor",
                )
            else:
                ctx.error(
                    e.tensor.span,
                    f"undeclared tensor '{name}'",
                    hint=suggest(name, list(ctx.tensors)) or f"declare it: input {name}[...]",
                )
            raise UnresolvedError
        dims = info.dims
        if dims is None:
            raise UnresolvedError
        if len(e.indices) != len(dims):
            shown = f"{name}[{', '.join(map(str, dims))}]"
            ctx.error(
                e.span,
                f"{name} has {len(dims)} rank{'s' if len(dims) != 1 else ''} but is indexed "
                f"with {len(e.indices)}",
                hint=f"{name} is {shown}",
                notes=[("declared here", info.span)] if info.decl else [],
            )
            raise UnresolvedError
        return ir.Access(name, self.read_indices(e, dims), e.span)

    def read_indices(self, e: s.Access, dims: tuple[ir.Dim, ...]) -> tuple[Affine, ...]:
        indices: list[Affine] = []
        failed = False
        for i, idx in enumerate(e.indices):
            try:
                expr = self.indices.affine(idx, "an index")
            except UnresolvedError:
                failed = True
                continue
            if not failed and not self.index_fits(e, i, idx, dims):
                failed = True
            indices.append(expr)
        if failed:
            raise UnresolvedError
        return tuple(indices)

    def index_fits(self, e: s.Access, i: int, idx: s.Expr, dims: tuple[ir.Dim, ...]) -> bool:
        """Whether a bare name at position ``i`` indexes the right rank (reported if not)."""
        name = e.tensor.name
        dim = dims[i]
        var_rank = self.ctx.var_rank
        if isinstance(idx, s.Name) and idx.name in var_rank:
            rank = var_rank[idx.name]
            if rank != dim.rank:
                self.ctx.error(
                    idx.span,
                    f"index '{idx.name}' (rank {rank}) is at position {i + 1} of {name}, "
                    f"which has rank {dim.rank}",
                    hint=transpose_hint(var_rank, name, dims, e),
                )
                return False
        elif isinstance(idx, s.Name) and idx.name == dim.rank and not dim.iterative:
            self.ctx.error(
                idx.span,
                f"index {idx.name} is out of range: rank {dim.rank} of {name} "
                f"runs from 0 to {dim.rank} - 1",
                hint=f"did you mean the rank variable '{dim.rank.lower()}'? (an extent "
                "used as an index reads the final iterate of an iterative tensor)",
            )
            return False
        return True
