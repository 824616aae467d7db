"""Inits of iterative tensors and the roles of tensors (input, output, intermediate)."""

from __future__ import annotations

import difflib

from einsumcc.diagnostics import Span
from einsumcc.frontend import syntax as s
from einsumcc.frontend.constants import Constants
from einsumcc.frontend.context import Context, TensorInfo, UnresolvedError, suggest
from einsumcc.frontend.points import PointValues
from einsumcc.ir import nodes as ir
from einsumcc.ir.affine import Affine


class Inits:
    """``init T[0, p] = value``: builds ``ctx.ir_inits``."""

    def __init__(self, ctx: Context, constants: Constants, points: PointValues) -> None:
        self.ctx = ctx
        self.constants = constants
        self.points = points

    def check(self) -> None:
        for name, st in self.ctx.inits.items():
            info = self.ctx.tensors.get(name)
            if info is None:
                self.ctx.error(
                    st.target.tensor.span,
                    f"init of undeclared tensor '{name}'",
                    hint=suggest(name, self.ctx.tensors),
                )
                continue
            if info.dims is not None:
                self.init(name, st, info.dims)

    def init(self, name: str, st: s.InitStmt, dims: tuple[ir.Dim, ...]) -> None:
        pos = next((i for i, d in enumerate(dims) if d.iterative), None)
        if pos is None:
            self.ctx.error(
                st.target.span,
                f"init of {name}, which is not iterative",
                hint=f"only a tensor assigned as {name}[..x + 1..] has an init",
            )
            return
        if len(st.target.indices) != len(dims):
            self.ctx.error(
                st.target.span,
                f"{name} has {len(dims)} ranks but its init has {len(st.target.indices)} indices",
            )
            return
        indices: list[Affine] = []
        ok = True
        for i, idx in enumerate(st.target.indices):
            index = self.index(name, i, idx, dims, pos)
            if index is None or not index[1]:
                ok = False
            if index is not None:
                indices.append(index[0])
        own = frozenset(
            ix.name for i, ix in enumerate(st.target.indices) if i != pos and isinstance(ix, s.Name)
        )
        try:
            value = self.points.convert(st.value, f"the init of {name}", own)
        except UnresolvedError:
            return
        if ok:
            self.ctx.ir_inits[name] = ir.Init(
                ir.Access(name, tuple(indices), st.target.span), value, st.span
            )

    def index(
        self, name: str, i: int, idx: s.Expr, dims: tuple[ir.Dim, ...], pos: int
    ) -> tuple[Affine, bool] | None:
        """The index at position ``i`` and whether it is right; None: none (reported)."""
        var_rank = self.ctx.var_rank
        if i == pos:
            if isinstance(idx, s.Number) and idx.text == "0":
                return Affine.const(0), True
            self.ctx.error(
                idx.span,
                f"init sets the first iterate: index 0 of {dims[i].rank}",
                hint=f"write {name}[.., 0, ..]",
            )
            return Affine.const(0), False
        if not (isinstance(idx, s.Name) and idx.name in var_rank):
            self.ctx.error(idx.span, "init indices are rank variables (and 0 for the iterate)")
            return None
        if var_rank[idx.name] != dims[i].rank:
            self.ctx.error(
                idx.span,
                f"index '{idx.name}' (rank {var_rank[idx.name]}) is at position "
                f"{i + 1} of {name}, which has rank {dims[i].rank}",
            )
            return Affine.var(idx.name), False
        return Affine.var(idx.name), True


class Roles:
    """Inputs are not assigned, outputs are, intermediates are used; iteratives have inits."""

    # Above this many unassigned outputs, a name matches one only up to case (difflib's
    # fuzzy matching of every tensor against every output would take quadratic time).
    FUZZY_OUTPUTS = 50

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._outs: list[str] | None = None
        self._lowered: dict[str, str] = {}
        self._misspelled: dict[str, str] | None = None

    def check(self) -> None:
        ctx = self.ctx
        read = {a.tensor for e in ctx.einsums.values() for a in e.reads}
        for name, info in ctx.tensors.items():
            assigned = name in ctx.assignments
            if info.role is ir.Role.INPUT and assigned:
                st = ctx.assignments[name]
                ctx.error(
                    st.target.tensor.span,
                    f"'{name}' is an input and cannot be assigned",
                    hint="declare it with 'tensor' or 'output' instead, or rename the result",
                    notes=[("declared as input here", info.span)],
                )
            if info.role is ir.Role.OUTPUT and not assigned:
                self.report_unassigned_output(info, read)
            if info.role is ir.Role.INTERMEDIATE and not assigned and info.decl is not None:
                self.unassigned_intermediate(info, read)
            if assigned:
                self.check_assigned(info, read)
        if not ctx.program.statements:
            ctx.error(
                Span(ctx.file, 1, 1, 1, 2),
                "the file has no statements",
                hint="a cascade declares its ranks, inputs and output, and the Einsums that "
                "compute the output: see the examples folder",
            )
        elif not any(i.role is ir.Role.OUTPUT for i in ctx.tensors.values()):
            first = ctx.program.statements[0].span
            ctx.error(
                first,
                "the cascade declares no output",
                hint="declare the result: output NAME[RANKS] : dtype",
            )

    def unassigned_intermediate(self, info: TensorInfo, read: set[str]) -> None:
        name = info.name
        if name in read:
            self.ctx.error(
                info.span,
                f"tensor '{name}' is read but never assigned",
                hint=f"assign it ({name}[...] = ...) or declare it as an input",
            )
        elif name not in self.ctx.inits:
            self.ctx.warning(info.span, f"tensor '{name}' is declared but never used")

    def check_assigned(self, info: TensorInfo, read: set[str]) -> None:
        ctx = self.ctx
        name = info.name
        dims = info.dims
        if dims is not None and any(d.iterative for d in dims) and name not in ctx.inits:
            st = ctx.assignments[name]
            pos = next(i for i, d in enumerate(dims) if d.iterative)
            shown = ", ".join("0" if i == pos else d.rank.lower() for i, d in enumerate(dims))
            ctx.error(
                st.target.span,
                f"iterative tensor '{name}' has no init",
                hint=f"set its first iterate: init {name}[{shown}] = ...",
            )
        unused = info.role is None and name not in read
        if unused and name not in ctx.inits and not self.similar_output(name):
            ctx.warning(
                ctx.assignments[name].target.span,
                f"tensor '{name}' is assigned but never used",
                hint="declare it as an output to keep it",
            )

    def similar_output(self, name: str) -> str | None:
        outs = self._outs
        if outs is None:
            outs = [
                n
                for n, i in self.ctx.tensors.items()
                if i.role is ir.Role.OUTPUT and n not in self.ctx.assignments
            ]
            self._outs = outs
            for o in reversed(outs):
                self._lowered[o.lower()] = o
        lowered = self._lowered.get(name.lower())
        if lowered is not None or len(outs) > self.FUZZY_OUTPUTS:
            return lowered
        close = difflib.get_close_matches(name, outs, n=1, cutoff=0.6)
        return close[0] if close else None

    def misspelled(self, read: set[str]) -> dict[str, str]:
        """Unassigned output → the first unused tensor whose name is close to it."""
        if self._misspelled is None:
            found: dict[str, str] = {}
            for cand in self.ctx.assignments:
                if cand in read or self.ctx.tensors[cand].role is not None:
                    continue
                out = self.similar_output(cand)
                if out is not None:
                    found.setdefault(out, cand)
            self._misspelled = found
        return self._misspelled

    def report_unassigned_output(self, info: TensorInfo, read: set[str]) -> None:
        # A misspelled left-hand side leaves the output unassigned; blame the misspelling.
        cand = self.misspelled(read).get(info.name)
        if cand is not None:
            st = self.ctx.assignments[cand]
            self.ctx.error(
                st.target.tensor.span,
                f"tensor '{cand}' is assigned but never used, and output '{info.name}' "
                "is never assigned",
                hint=f"did you mean {info.name}?",
                notes=[(f"output '{info.name}' declared here", info.span)],
            )
            return
        self.ctx.error(
            info.span,
            f"output '{info.name}' is never assigned",
            hint=f"add an Einsum {info.name}[...] = ...",
        )
