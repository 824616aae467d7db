"""The derived cascade as `.ein` text: the planned recurrences, with a comment per block.

Every statistic that a rewrite turned into a recurrence runs over the *iterate* variable:
the rank's own variable (``RM[m + 1, p]``, one element per step), or its outer tile when the
rank is split (an existing ``split`` or ``--tile M0=64``), with the inner variables reduced
in a local Einsum per tile (``LM[m1, p] = max{m0} ...``).  Einsums that need no finished
statistic are copied; the others are rewritten to read the recurrences' last iterates, and
what no output needs any more is dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy

from einsumcc.derive import rewrites as rw
from einsumcc.derive.plan import Planner
from einsumcc.derive.symbolic import (
    NotRewritableError,
    Symbolic,
    substitute,
    substitute_condition,
    to_ir,
)
from einsumcc.ir.affine import Affine
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.dump import render_access, render_einsum, render_expr
from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Condition,
    Const,
    Dim,
    Einsum,
    Expr,
    Reduce,
    Tensor,
    VarRef,
    accesses,
    children,
    free_variables,
    with_children,
)


@dataclass(frozen=True)
class Tiling:
    """How the rank is walked: ``x`` is the iterate variable, ``inner`` the variables reduced
    per iterate, ``subst`` rewrites the rank's variable into them (``m -> m1*M0 + m0``)."""

    rank: str
    x: str
    x_rank: str
    inner: tuple[str, ...]
    subst: Mapping[str, Affine]
    new_ranks: tuple[str, ...] = ()  # `rank` lines to add
    new_splits: tuple[str, ...] = ()  # `split` lines to add


def tiling(cascade: Cascade, rank: str, tile: tuple[str, int] | None) -> Tiling:
    var = cascade.rank(rank).var
    split = cascade.split_of(rank)
    if split is not None:
        if tile is not None:
            from einsumcc.diagnostics import EinError

            raise EinError.plain(
                f"--tile {tile[0]}={tile[1]}: {rank} is already split into "
                f"{', '.join(split.children)}",
                hint="drop --tile: the recurrences run over the split's outer rank",
            )
        kids = split.children
        return Tiling(
            rank,
            kids[0].lower(),
            kids[0],
            tuple(k.lower() for k in kids[1:]),
            {var: split.index_affine},
        )
    walk = _implicit_walk(cascade, rank)
    if walk is not None:
        order, index = walk
        if tile is not None:
            from einsumcc.diagnostics import EinError

            raise EinError.plain(
                f"--tile {tile[0]}={tile[1]}: {rank} is already walked through "
                f"{', '.join(order)} (an index {index.render()})",
                hint="drop --tile: the recurrences run over the outer variable",
            )
        parts = [cascade.var_ranks[v] for v in order]
        split_line = (f"split {rank} -> {', '.join(parts)}",)
        return Tiling(rank, order[0], parts[0], order[1:], {var: index}, (), split_line)
    if tile is None:
        return Tiling(rank, var, rank, (), {})
    inner, size = tile
    outer = inner[:-1] + "1" if inner.endswith("0") else inner + "T"
    taken = {r.name for r in cascade.ranks} | {r.var for r in cascade.ranks}
    for name in (inner, outer):
        if name in taken or name.lower() in taken:
            from einsumcc.diagnostics import EinError

            raise EinError.plain(
                f"--tile {inner}={size}: {name} is already a rank of {cascade.name}"
            )
    index = Affine.var(outer.lower()) * Affine.extent(inner) + Affine.var(inner.lower())
    lines = (f"rank {inner} = {size}", f"rank {outer} = {rank} / {inner}")
    split_line = (f"split {rank} -> {outer}, {inner}",)
    return Tiling(rank, outer.lower(), outer, (inner.lower(),), {var: index}, lines, split_line)


def retile_candidates(c: Cascade, t: Tiling) -> dict[str, int]:
    """Intermediates that hold the rank at a position written with its bare variable and
    read only at that variable: they are stored by tiles (``QK[m1, m0, p]``)."""
    if not t.subst:
        return {}
    (var,) = t.subst
    rank = c.var_ranks[var]
    out: dict[str, int] = {}
    for e in c.einsums:
        x = c.tensor(e.name)
        if x.role.value != "tensor" or x.is_iterative:
            continue
        pos = [i for i, d in enumerate(x.dims) if d.rank == rank]
        if len(pos) != 1 or not e.output.affine_indices[pos[0]].is_var_plus(var, 0):
            continue
        reads = [a for r in c.einsums for a in accesses(r.body) if a.tensor == e.name]
        if all(a.affine_indices[pos[0]].is_var_plus(var, 0) for a in reads):
            out[e.name] = pos[0]
    return out


def _retile_reads(e: Expr, retiled: Mapping[str, int], t: Tiling) -> Expr:
    if isinstance(e, Access) and e.tensor in retiled:
        pos = retiled[e.tensor]
        (var,) = t.subst
        if e.affine_indices[pos] == t.subst[var]:
            kids = [Affine.var(t.x), *(Affine.var(v) for v in t.inner)]
            idx = [*e.affine_indices[:pos], *kids, *e.affine_indices[pos + 1 :]]
            return Access(e.tensor, idx, e.span)
        return e
    kids_ = children(e)
    return with_children(e, tuple(_retile_reads(k, retiled, t) for k in kids_)) if kids_ else e


def _implicit_walk(cascade: Cascade, rank: str) -> tuple[tuple[str, ...], Affine] | None:
    """How an index walks all of ``rank`` through several variables without a ``split``
    (``A[n*J + j]``): the variables, outermost first, and the index."""
    from einsumcc.analysis import passes

    walks = getattr(passes, "implicit_walks", None)
    found = walks(cascade, rank) if walks is not None else []
    return found[0] if found else None


@dataclass
class Block:
    comment: str
    lines: list[str] = field(default_factory=list)


class Emitter:
    """Writes the derived cascade (module docstring)."""

    def __init__(self, sym: Symbolic, plan: Planner, t: Tiling) -> None:
        self.sym, self.plan, self.t, self.c = sym, plan, t, sym.c
        self.taken = {x.name for x in self.c.tensors} | {p.name for p in self.c.params}
        self.taken |= {r.name for r in self.c.ranks}
        self.decls: dict[str, str] = {}
        self.inits: list[str] = []
        self.blocks: list[Block] = []
        self.retiled = retile_candidates(self.c, t)
        self.atoms = {s: self.tile(ir) for s, ir in sym.atoms.items()}
        self.order = {r.var: i for i, r in enumerate(self.c.ranks)}
        self.names: dict[sympy.Symbol, tuple[str, tuple[str, ...]]] = {}  # final → tensor, free
        self.plain_names: dict[sympy.Symbol, Expr] = {}  # finals of full reductions
        self.einsums: dict[str, tuple[str, Einsum | None]] = {}  # tensor → (text, einsum)
        self.reads: dict[str, set[str]] = {}

    # ------------------------------------------------------------ helpers
    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}{k}"
        self.taken.add(name)
        return name

    def free(
        self,
        *exprs: sympy.Expr,
        where: tuple[Condition, ...] = (),
        reduced: tuple[str, ...] = (),
    ) -> tuple[str, ...]:
        """The variables a per-point value of a statistic keeps (its output's)."""
        out: set[str] = set()
        for e in exprs:
            for s in e.free_symbols:
                if s in self.atoms:
                    out |= free_variables(self.atoms[s])
        for c in where:
            out |= c.variables
        out -= self.sym.family | {self.t.x, *self.t.inner, *reduced}
        return tuple(sorted(out, key=lambda v: self.order.get(v, 99)))

    def dims(self, free: tuple[str, ...], iterative: bool) -> str:
        ranks = [self.c.var_ranks[v] for v in free]
        head = f"{self.t.x_rank}+1" if iterative else self.t.x_rank
        return ", ".join([head, *ranks])

    def acc(self, name: str, first: Affine, free: tuple[str, ...]) -> Access:
        return Access(name, [first, *(Affine.var(v) for v in free)])

    def at(self, name: str, free: tuple[str, ...], step: int = 0) -> Access:
        return self.acc(name, Affine.var(self.t.x) + step if step else Affine.var(self.t.x), free)

    def last(self, name: str, free: tuple[str, ...]) -> Access:
        return self.acc(name, Affine.extent(self.t.x_rank), free)

    def ir(
        self,
        expr: sympy.Expr,
        extra: Mapping[sympy.Symbol, Expr] | None = None,
        tiled: bool = True,
    ) -> Expr:
        """``expr`` in the IR: atoms in the tiled variables (recurrences) or as written."""
        atoms = {**(self.atoms if tiled else self.sym.atoms), **(extra or {})}
        for s, (name, free) in self.names.items():
            atoms[s] = self.last(name, free)
        atoms.update(self.plain_names)
        return to_ir(expr, atoms)

    def tile(self, e: Expr) -> Expr:
        """``e`` in the tiled variables: ``m -> m1*M0 + m0``, and a re-tiled tensor read at
        ``[m1, m0]`` (module :func:`retile_candidates`)."""
        if not self.t.subst:
            return e
        return _retile_reads(substitute(e, self.t.subst), self.retiled, self.t)

    def tiled_lhs(self, out: Access) -> Access:
        """The left side in the tiled variables: re-tiled, or written through the split."""
        if not self.t.subst:
            return out
        (var,) = self.t.subst
        pos = self.retiled.get(out.tensor)
        idx: list[Affine] = []
        for i, ix in enumerate(out.affine_indices):
            if i == pos:
                idx.extend([Affine.var(self.t.x), *(Affine.var(v) for v in self.t.inner)])
            elif ix.is_var_plus(var, 0) and ix.variables == {var}:
                idx.append(self.t.subst[var])
            else:
                idx.append(ix)
        return Access(out.tensor, idx)

    def tiled_tensor(self, x: Tensor) -> Tensor:
        pos = self.retiled.get(x.name)
        if pos is None:
            return x
        kids = (Dim(self.t.x_rank), *(Dim(self.rank_of(v)) for v in self.t.inner))
        return dataclasses.replace(x, dims=x.dims[:pos] + kids + x.dims[pos + 1 :])

    def conds(self, where: tuple[Condition, ...]) -> tuple[Condition, ...]:
        return tuple(substitute_condition(c, self.t.subst) for c in where)

    def reduced(self, variables: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for v in variables:
            parts = [self.t.x, *self.t.inner] if v in self.t.subst else [v]
            out.extend(p for p in parts if p not in out)
        return tuple(v for v in out if v != self.t.x)

    def declare(self, name: str, free: tuple[str, ...], iterative: bool, fill: str = "") -> None:
        self.decls[name] = f"tensor {name}[{self.dims(free, iterative)}] : f32" + (
            f" = {fill}" if fill else ""
        )

    def init(self, name: str, free: tuple[str, ...], value: Expr) -> None:
        target = self.acc(name, Affine.const(0), free)
        self.inits.append(f"init {render_access(target)} = {render_expr(value)}")

    def add(
        self,
        block: Block,
        lhs: Access,
        body: Expr,
        where: tuple[Condition, ...] = (),
        mask: tuple[Expr, ...] = (),
    ) -> None:
        e = Einsum(lhs, body, where)
        if mask:  # v2: the data-dependent part of a filter, kept as written
            e = dataclasses.replace(e, mask=mask)  # type: ignore[call-arg,unused-ignore]
        text = render_einsum(e)
        block.lines.append(text)
        self.einsums[lhs.tensor] = (text, e)
        self.reads[lhs.tensor] = {a.tensor for a in e.reads}

    def local(
        self,
        block: Block,
        base: str,
        body: Expr,
        op: str,
        free: tuple[str, ...],
        where: tuple[Condition, ...],
        fill: str,
        variables: tuple[str, ...] = (),
    ) -> Expr:
        """The per-iterate value: ``body`` itself, or a local Einsum reducing the statistic's
        other variables (the tile's, and those of other ranks it reduces) and carrying the
        filter."""
        reduced = self.reduced(variables) if variables else self.t.inner
        used = free_variables(body) | {v for c in where for v in c.variables}
        inner = sorted(v for v in reduced if v in used)
        if not inner and not where:
            return body
        name = self.fresh(base)
        self.declare(name, free, False, fill)
        self.add(
            block, self.at(name, free), Reduce(op, tuple(inner), body) if inner else body, where
        )
        return self.at(name, free)

    # ------------------------------------------------------------ recurrences
    def running_max(self, rm: rw.RunningMax) -> None:
        free = self.free(rm.body, where=rm.where, reduced=rm.variables)
        base = rm.origin or "M"
        name = self.fresh(f"R{base}")
        block = Block(
            f"running {rm.op} of {rm.origin or 'a statistic'} over {self.t.rank}: a "
            f"recurrence over {self.t.x}"
            + (f", started at the sink {rm.init}" if rm.init not in (sympy.oo, -sympy.oo) else "")
        )
        self.declare(name, free, True)
        self.init(name, free, self.ir(rm.init))
        fill = "-inf" if rm.op == "max" else "inf"
        local = self.local(
            block,
            f"L{base}",
            self.ir(rm.body),
            rm.op,
            free,
            self.conds(rm.where),
            fill,
            rm.variables,
        )
        self.add(block, self.at(name, free, 1), Call(rm.op, (self.at(name, free), local)))
        self.names[rm.final] = (name, free)
        self.blocks.append(block)

    def correction(self, rm: rw.RunningMax, rate: sympy.Expr = 1) -> str:
        """``exp(rate * (R_old - R_new))``: what a sum kept under ``R`` is multiplied by."""
        name, free = self.names[rm.final]
        key = f"C:{name}:{sympy.srepr(rate)}"
        if key not in self.einsums:
            cname = self.fresh(f"C{rm.origin or 'M'}")
            block = Block(f"correction factor exp(R_old - R_new) of {name}")
            self.declare(cname, free, False)
            step: Expr = Binary("-", self.at(name, free), self.at(name, free, 1))
            if rate != 1:
                step = Binary("*", self.ir(rate), step)
            self.add(block, self.at(cname, free), Call("exp", (step,)))
            self.einsums[key] = (cname, None)
            self.blocks.append(block)
        return self.einsums[key][0]

    def accumulator(self, a: rw.Accumulator) -> None:
        extra = [a.exponent] if a.exponent is not None else []
        free = self.free(a.body, *extra, where=a.where, reduced=a.variables)
        if a.ref is not None:
            ref_free = self.names[a.ref.final][1]
            free = tuple(sorted(set(free) | set(ref_free), key=lambda v: self.order.get(v, 99)))
        base = a.origin or "S"
        name = self.fresh(f"R{base}")
        what = (
            "running sum"
            if a.ref is None
            else (
                f"running sum under the running max {self.names[a.ref.final][0]}, corrected by "
                "exp(R_old - R_new)"
            )
        )
        names = sorted({x.rewrite for x in self.plan.applied if x.target == a.origin})
        by = f" [{', '.join(names)}]" if names else ""
        block = Block(f"{what}: {a.origin or 'a sum'} over {self.t.rank}{by}")
        self.declare(name, free, True)
        self.init(name, free, Const(0))
        body = self.ir(a.body)
        if a.ref is not None and a.exponent is not None:
            rname, rfree = self.names[a.ref.final]
            r_new = sympy.Symbol("R_new#", real=True)
            expo = self.ir(a.exponent - a.rate * r_new, {r_new: self.at(rname, rfree, 1)})
            body = (
                Binary("*", body, Call("exp", (expo,)))
                if body != Const(1)
                else Call("exp", (expo,))
            )
        local = self.local(
            block, f"L{base}", body, "sum", free, self.conds(a.where), "", a.variables
        )
        prev: Expr = self.at(name, free)
        if a.ref is not None:
            cname = self.correction(a.ref, a.rate)
            prev = Binary("*", prev, self.at(cname, self.names[a.ref.final][1]))
        self.add(block, self.at(name, free, 1), Binary("+", prev, local))
        self.names[a.final] = (name, free)
        self.blocks.append(block)

    def moments(self, mo: rw.Moments) -> None:
        free = self.free(mo.body, reduced=mo.variables)
        base = mo.origin or "MU"
        block = Block(
            f"moments of {mo.origin or 'a mean'} over {self.t.rank}: running mean and "
            "centered second moment (Chan et al.'s parallel form)"
        )
        mean, m2 = self.fresh(f"R{base}"), self.fresh(f"R{base}_M2")
        for n in (mean, m2):
            self.declare(n, free, True)
            self.init(n, free, Const(0))
        t = self.ir(mo.body)
        inner = tuple(sorted(v for v in self.reduced(mo.variables) if v in free_variables(t)))
        x: Expr = VarRef(self.t.x)
        local_mean: Expr = t
        local_m2: Expr | None = None
        if inner:
            tile = self.tile_count(inner)
            lmean = self.fresh(f"L{base}")
            self.declare(lmean, free, False)
            self.add(block, self.at(lmean, free), Binary("/", Reduce("sum", inner, t), tile))
            local_mean = self.at(lmean, free)
            dev = Binary("-", t, local_mean)
            lm2 = self.fresh(f"L{base}_M2")
            self.declare(lm2, free, False)
            self.add(block, self.at(lm2, free), Reduce("sum", inner, Binary("*", dev, dev)))
            local_m2 = self.at(lm2, free)
        d = Binary("-", local_mean, self.at(mean, free))  # the tile's mean minus the running one
        step = Binary("+", x, Const(1))
        self.add(
            block, self.at(mean, free, 1), Binary("+", self.at(mean, free), Binary("/", d, step))
        )
        grow: Expr = Binary("*", Binary("*", d, d), x)
        if inner:
            grow = Binary("*", grow, self.tile_count(inner))
        rhs: Expr = self.at(m2, free)
        if local_m2 is not None:
            rhs = Binary("+", rhs, local_m2)
        self.add(block, self.at(m2, free, 1), Binary("+", rhs, Binary("/", grow, step)))
        self.names[mo.mean] = (mean, free)
        self.names[mo.m2] = (m2, free)
        self.blocks.append(block)

    def tile_count(self, inner: tuple[str, ...]) -> Expr:
        from einsumcc.ir.nodes import ExtentRef

        out: Expr = ExtentRef(self.rank_of(inner[0]))
        for v in inner[1:]:
            out = Binary("*", out, ExtentRef(self.rank_of(v)))
        return out

    def rank_of(self, var: str) -> str:
        if var in self.c.var_ranks:
            return self.c.var_ranks[var]
        return next(line.split()[1] for line in self.t.new_ranks if line.split()[1].lower() == var)

    def plain(self, sym_: sympy.Symbol) -> None:
        st = self.plan.plain[sym_]
        body = self.ir(self.plan.resolve(st.body))
        free = self.free(st.body, where=st.where, reduced=st.variables)
        name = self.fresh(st.origin or "P")
        why = self.plan.why_not.get(st.origin or str(st.symbol))
        if why:
            self.plan.why_not[name] = why
        block = Block(
            f"no rewrite applies to {st.origin or st.symbol}: "
            f"{self.plan.why_not.get(st.origin or str(st.symbol), '')}; a full reduction"
        )
        variables = tuple(sorted({*self.reduced(st.variables), self.t.x}))
        lhs = Access(name, [Affine.var(v) for v in free])
        self.decls[name] = f"tensor {name}[{', '.join(self.c.var_ranks[v] for v in free)}] : f32"
        self.add(block, lhs, Reduce(st.op, variables, body), self.conds(st.where))
        self.plain_names[self.plan.finals[sym_]] = lhs
        self.blocks.append(block)

    # ------------------------------------------------------------ original Einsums
    def rewrite(self, e: Einsum) -> tuple[Expr, tuple[Condition, ...]]:
        """``e`` with every full reduction replaced by the statistic's finished value."""
        if getattr(e, "mask", ()):
            # a data-dependent filter restricts its reductions too: kept as written
            return self.tile(e.body), self.conds(e.where)

        try:
            whole = self.sym.convert(e.body, e.where, e.name)
            body = self.ir(self.plan.resolve(whole))
        except NotRewritableError:
            body = None
        if body is None or self.sym.blocked(self.plan.resolve(whole)):
            body = self.tile(self.walk(e))
        lhs_vars = set(e.lhs_variables)
        where = e.where
        if not lhs_vars & self.sym.family:
            where = tuple(c for c in e.where if not c.variables & self.sym.family)
        return body, self.conds(where)

    def walk(self, e: Einsum) -> Expr:
        """``e``'s body with each full reduction replaced, the rest kept as written."""

        def walk(x: Expr) -> Expr:
            if (
                isinstance(x, Reduce)
                and self.sym.expr_depends(x)
                and not (free_variables(x) & self.sym.family)
                and free_variables(x.body) & self.sym.family
            ):
                try:
                    s = self.sym.convert(x, e.where, e.name)
                    return self.ir(self.plan.resolve(s), tiled=False)
                except NotRewritableError:
                    return x
            kids = children(x)
            return with_children(x, tuple(walk(k) for k in kids)) if kids else x

        return walk(e.body)
