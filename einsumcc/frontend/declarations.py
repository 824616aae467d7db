"""Collecting declarations: one table per kind of name, and the clashes between names."""

from __future__ import annotations

from collections.abc import Callable

from einsumcc.diagnostics import Span
from einsumcc.frontend import syntax as s
from einsumcc.frontend.context import Context, TensorInfo
from einsumcc.ir import nodes as ir

_ROLES = {"input": ir.Role.INPUT, "output": ir.Role.OUTPUT}


class Declarations:
    """Fills the name tables of a :class:`Context` from the statements, in source order."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.seen: dict[str, tuple[str, Span | None]] = {}
        self.index = 0
        self.handlers: dict[type, Callable[..., None]] = {
            s.CascadeStmt: self.cascade,
            s.RankStmt: self.rank,
            s.SplitStmt: self.split,
            s.ParamStmt: self.param,
            s.TensorStmt: self.tensor,
            s.EinsumStmt: self.einsum,
            s.InitStmt: self.init,
            s.ReservedStmt: self.reserved,
        }

    def collect(self) -> None:
        for i, st in enumerate(self.ctx.program.statements):
            self.index = i
            handler = self.handlers.get(type(st))
            if handler is not None:
                handler(st)
        self.check_clashes()

    def declare(self, ident: s.Ident, what: str) -> bool:
        self.ctx.check_name(ident, what)  # reported; keep the declaration to avoid follow-ups
        if ident.name in self.seen:
            kind, where = self.seen[ident.name]
            self.ctx.error(
                ident.span,
                f"'{ident.name}' is already declared as a {kind}",
                notes=[("first declared here", where)],
            )
            return False
        self.seen[ident.name] = (what, ident.span)
        return True

    def cascade(self, st: s.CascadeStmt) -> None:
        if self.index != 0:
            self.ctx.error(
                st.span,
                "the 'cascade' header must be the first statement",
                hint="move it to the top of the file",
            )
        elif self.ctx.check_name(st.name, "cascade"):
            self.ctx.name = st.name.name

    def rank(self, st: s.RankStmt) -> None:
        ctx = self.ctx
        if not self.declare(st.name, "rank"):
            return
        name = st.name.name
        if name == name.lower():
            ctx.error(
                st.name.span,
                f"rank name '{name}' has no uppercase letter",
                hint="a rank's variable is its lowercase name, so rank names are "
                f"written in uppercase: rank {name.upper()}",
            )
        var = name.lower()
        if var in ctx.var_rank:
            other = ctx.var_rank[var]
            ctx.error(
                st.name.span,
                f"ranks '{other}' and '{name}' share the variable '{var}'",
                notes=[(f"'{other}' declared here", ctx.ranks[other].name.span)],
            )
            return
        ctx.ranks[name] = st
        ctx.var_rank[var] = name

    def split(self, st: s.SplitStmt) -> None:
        if st.parent.name in self.ctx.splits:
            self.ctx.error(
                st.parent.span,
                f"rank '{st.parent.name}' is split twice",
                notes=[("first split here", self.ctx.splits[st.parent.name].span)],
            )
        else:
            self.ctx.splits[st.parent.name] = st

    def param(self, st: s.ParamStmt) -> None:
        if self.declare(st.name, "param"):
            self.ctx.params[st.name.name] = st

    def tensor(self, st: s.TensorStmt) -> None:
        if self.declare(st.name, "tensor"):
            role = _ROLES.get(st.kind, ir.Role.INTERMEDIATE)
            self.ctx.tensors[st.name.name] = TensorInfo(
                st.name.name, role, None, ir.DType.F32, ir.Const(0), st, st.name.span
            )

    def einsum(self, st: s.EinsumStmt) -> None:
        name = st.target.tensor.name
        if not self.ctx.check_name(st.target.tensor, "tensor"):
            return
        if name in self.ctx.assignments:
            self.ctx.error(
                st.target.span,
                f"tensor '{name}' is assigned twice",
                hint="each tensor is assigned by exactly one Einsum; "
                "give the second result another name",
                notes=[("first assigned here", self.ctx.assignments[name].target.span)],
            )
        else:
            self.ctx.assignments[name] = st

    def init(self, st: s.InitStmt) -> None:
        name = st.target.tensor.name
        if name in self.ctx.inits:
            self.ctx.error(
                st.target.span,
                f"tensor '{name}' has two init statements",
                notes=[("first init here", self.ctx.inits[name].span)],
            )
        else:
            self.ctx.inits[name] = st

    def reserved(self, st: s.ReservedStmt) -> None:
        self.ctx.error(st.span, f"'{st.word}' is reserved for future use")

    def check_clashes(self) -> None:
        """Names of ranks, variables and params must not collide with tensors or each other."""
        ctx = self.ctx
        for var, rank in ctx.var_rank.items():
            if var in ctx.params:
                ctx.error(
                    ctx.params[var].name.span,
                    f"param '{var}' has the name of rank {rank}'s variable",
                    hint="choose another name for the param",
                )
        for name, st in ctx.assignments.items():
            if name in ctx.ranks:
                what = "rank"
            elif name in ctx.params:
                what = "param"
            elif name in ctx.var_rank:
                what = "rank variable"
            else:
                continue
            ctx.error(st.target.tensor.span, f"'{name}' names a {what}, not a tensor")
