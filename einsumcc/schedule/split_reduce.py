"""Split reductions: run the reductions over a streamed rank as ``C`` partial reductions and a
combine (split-K), for cascades that stream a rank without a recurrence.

A multi-pass cascade (three-pass attention, ``GM = max{m} QK``, ``SD = sum{m} SN``,
``AV = sum{m} A * V``) with few queries streams the keys in a handful of programs, once per
pass.  Every reduction over ``m`` uses an associative and commutative operator, so it can be
regrouped without a proof: ``split M -> C, MR`` (``m = c*MR + mr``) and::

    PGM[c, p] = max{mr} QK[c, mr, p]          # one program per run c
    GM[p]     = max{c} PGM[c, p]              # the combine

:func:`split_reductions` rewrites the cascade so: intermediates indexed by ``M`` are indexed by
``(C, MR)``, inputs are read at ``c*MR + mr``, ``m`` used as a value becomes ``c*MR + mr``, and
every reduction over ``m`` becomes a partial reduction over ``mr`` (its own Einsum, indexed by
``c``) combined by the same operator over ``c``.  A filter of a reduction moves to its partial
reduction, whose fill must then be the operator's identity (a run with no surviving point
contributes nothing; no point at all leaves the identity, the fill).  Refused, with the reason:
outputs indexed by ``M``, a recurrence over ``M``, a tensor indexed by ``M`` read off the point
``m`` (``QK[m + 1, p]``), a filtered Einsum whose body is more than one reduction.
"""

from __future__ import annotations

import dataclasses

import sympy

from einsumcc.analysis.merging import IDENTITY
from einsumcc.derive.symbolic import substitute_affine, substitute_condition, to_ir
from einsumcc.ir.affine import Affine
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.consteval import fold_constant
from einsumcc.ir.nodes import (
    Access,
    Condition,
    Dim,
    DType,
    Einsum,
    Expr,
    Rank,
    Reduce,
    Role,
    Split,
    Tensor,
    VarRef,
    children,
    free_variables,
    walk,
    with_children,
)
from einsumcc.schedule.split_kv import SplitError, fresh_name


def reduction_problem(c: Cascade, rank: str) -> str | None:
    """Why the reductions over ``rank`` cannot be split (None: they can)."""
    var = c.rank(rank).var
    for s in c.splits:
        if rank in (s.parent, *s.children):
            return (
                f"{rank} is part of the declared split {s.parent} -> {', '.join(s.children)} "
                "(a recurrence over its chunks is split by split-KV; plain reductions over "
                "declared chunks are not split)"
            )
    if not any(
        isinstance(n, Reduce) and var in n.variables for e in c.einsums for n in walk(e.body)
    ):
        return f"nothing reduces over {rank}"
    for t in c.tensors:
        if rank in t.ranks and t.role is Role.OUTPUT:
            return f"output {t.name} is indexed by {rank}"
        if rank in t.ranks and t.is_iterative:
            return f"{t.name} is a recurrence indexed by {rank}"
    for e in c.einsums:
        for a in e.reads:
            t = c.tensor(a.tensor)
            if t.role is Role.INPUT:
                continue
            for d, ix in zip(t.dims, a.affine_indices, strict=True):
                if d.rank == rank and not ix.is_var_plus(var, 0):
                    return f"{e.name} reads {a.tensor} at {ix.render()}, not at {var}"
        if e.filtered and _reduces(e, var) and not isinstance(e.body, Reduce):
            return f"{e.name} is filtered and its body is more than one reduction over {var}"
        if e.filtered and _reduces(e, var):
            assert isinstance(e.body, Reduce)
            fill = _fill(c, c.tensor(e.name))
            identity = float(IDENTITY[e.body.op])
            if fill != identity:
                return (
                    f"{e.name} is filtered with the fill {fill}, not the identity of "
                    f"{e.body.op} ({identity}): a run with no surviving point "
                    "would contribute it"
                )
    return None


def _reduces(e: Einsum, var: str) -> bool:
    return any(isinstance(n, Reduce) and var in n.variables for n in walk(e.body))


def _fill(c: Cascade, t: Tensor) -> float | None:
    try:
        return fold_constant(t.fill, {}, {p.name: p.value for p in c.params})
    except (KeyError, ArithmeticError, ValueError):
        return None


def split_reductions(c: Cascade, rank: str, runs: int | None, name: str = "C") -> Cascade:
    """``c`` with every reduction over ``rank`` split into ``runs`` partial reductions."""
    problem = reduction_problem(c, rank)
    if problem is not None:
        raise SplitError(problem)
    return _Rewrite(c, rank, runs, name).cascade()


class _Rewrite:
    def __init__(self, c: Cascade, rank: str, runs: int | None, name: str) -> None:
        self.c, self.rank, self.runs = c, rank, runs
        self.var = c.rank(rank).var
        self.taken = {r.name for r in c.ranks} | {t.name for t in c.tensors}
        self.taken |= {p.name for p in c.params}
        self.name = fresh_name(self.taken, name)
        self.taken.add(self.name)
        self.inner = fresh_name(self.taken, f"{rank}R")
        self.taken.add(self.inner)
        self.cv, self.iv = self.name.lower(), self.inner.lower()
        self.index = Affine.var(self.cv) * Affine.extent(self.inner) + Affine.var(self.iv)
        self.subs = {self.var: self.index}
        self.parts: list[tuple[Tensor, Einsum]] = []
        self._owner = ""

    def cascade(self) -> Cascade:
        c = self.c
        ranks: list[Rank] = []
        for r in c.ranks:
            ranks.append(r)
            if r.name == self.rank:
                ranks.append(Rank(self.name, self.runs, r.span))
                ranks.append(Rank(self.inner, Affine.extent(r.name) / Affine.extent(self.name)))
        splits = (*c.splits, Split(self.rank, (self.name, self.inner)))
        tensors = [self.tensor(t) for t in c.tensors]
        einsums: list[Einsum] = []
        for e in c.einsums:
            new = self.einsum(e)
            for t, part in self.parts:
                tensors.append(t)
                einsums.append(part)
            self.parts.clear()
            einsums.append(new)
        return dataclasses.replace(
            c, ranks=tuple(ranks), splits=splits, tensors=tuple(tensors), einsums=tuple(einsums)
        )

    def tensor(self, t: Tensor) -> Tensor:
        if self.rank not in t.ranks or t.role is Role.INPUT:
            return t
        dims: list[Dim] = []
        for d in t.dims:
            dims += [Dim(self.name), Dim(self.inner)] if d.rank == self.rank else [d]
        return dataclasses.replace(t, dims=tuple(dims))

    def einsum(self, e: Einsum) -> Einsum:
        self._owner = e.name
        if e.filtered and isinstance(e.body, Reduce) and self.var in e.body.variables:
            # the filter goes with the points: to the partial reduction
            part = self.partial(e.body, e.name, e.where, e.mask)
            return Einsum(self.access(e.output), part, (), e.span, ())
        return Einsum(
            self.access(e.output),
            self.expr(e.body),
            tuple(substitute_condition(w, self.subs) for w in e.where),
            e.span,
            tuple(self.expr(x) for x in e.mask),
        )

    def partial(
        self,
        r: Reduce,
        owner: str,
        where: tuple[Condition, ...] = (),
        mask: tuple[Expr, ...] = (),
    ) -> Expr:
        """``op{m, ..} body`` as ``op{c} PART[c, ..]`` with ``PART[c, ..] = op{mr, ..} body``."""
        inner_vars = tuple(sorted({*r.variables} - {self.var} | {self.iv}))
        body = self.expr(r.body)
        reduce = Reduce(r.op, inner_vars, body, r.span)
        free = set(free_variables(reduce))
        for w in where:
            free |= (w.affine_lhs.variables | w.affine_rhs.variables) - {self.var}
        for x in mask:
            free |= set(free_variables(x)) - {self.var}
        free -= set(inner_vars) | {self.cv}
        order = [v for v in self.c.einsum(owner).lhs_variables if v in free]
        order += sorted(free - set(order))
        var_ranks = self.c.var_ranks
        name = fresh_name(self.taken, f"P{owner}")
        self.taken.add(name)
        dims = (Dim(self.name), *(Dim(var_ranks[v]) for v in order))
        fill = to_ir(sympy.sympify(IDENTITY[r.op]), {})
        self.parts.append(
            (
                Tensor(name, Role.INTERMEDIATE, dims, DType.F32, fill),
                Einsum(
                    Access(name, [Affine.var(self.cv), *(Affine.var(v) for v in order)]),
                    reduce,
                    tuple(substitute_condition(w, self.subs) for w in where),
                    None,
                    tuple(self.expr(x) for x in mask),
                ),
            )
        )
        read = Access(name, [Affine.var(self.cv), *(Affine.var(v) for v in order)])
        return Reduce(r.op, (self.cv,), read, r.span)

    def access(self, a: Access) -> Access:
        t = self.c.tensor(a.tensor)
        if self.rank not in t.ranks or t.role is Role.INPUT:
            read = [substitute_affine(i, self.subs) for i in a.affine_indices]
            return Access(a.tensor, read, a.span)
        ix: list[Affine] = []
        for d, i in zip(t.dims, a.affine_indices, strict=True):
            ix += [Affine.var(self.cv), Affine.var(self.iv)] if d.rank == self.rank else [i]
        return Access(a.tensor, ix, a.span)

    def expr(self, x: Expr) -> Expr:
        if isinstance(x, Access):
            return self.access(x)
        if isinstance(x, VarRef) and x.var == self.var:
            return to_ir(self.index.sympy, {})
        if isinstance(x, Reduce) and self.var in x.variables:
            return self.partial(x, self._owner)
        kids = children(x)
        return with_children(x, tuple(self.expr(k) for k in kids)) if kids else x
