"""Split-KV: run a recurrence over chunks as ``C`` independent splits, then merge.

A one-pass cascade folds the keys chunk by chunk (``split M -> M1, M0``, the recurrence over
``m1``).  With few queries (decode) its grid has a handful of programs, each streaming every
key.  :func:`split_stream` rewrites the cascade so that the chunks are cut into ``C`` runs
(``split M -> C, M1, M0``): every tensor indexed by ``M1`` gains a ``C`` index, every run
starts from the ``init``, and the derived merge (:func:`einsumcc.analysis.merging.merge`)
combines the runs' final states before anything reads them::

    RM[c, m1 + 1, p] = max(RM[c, m1, p], LM[c, m1, p])          # one run per c
    ...
    GRM[p]     = max{c} RM[c, M1, p]                             # the derived merge
    GRNV[f, p] = sum{c} exp(RM[c, M1, p] - GRM[p]) * RNV[f, c, M1, p]
    AV[f, p]   = GRNV[f, p] / GRD[p]                             # was RNV[f, M1, p] / RD[M1, p]

Every run starts from the merge's identity; an init that is not the identity (a sink's logit)
is merged as one more run.  The key index ``m1*M0 + m0`` becomes ``(c*M1 + m1)*M0 + m0``
wherever it is used (indices, filters, values), so each run sees its own keys.  The result is
a cascade like ``examples/attention_decode.ein``, compiled by the same backend as a
hand-written one: a kernel over ``(c, query tiles)`` that keeps only each run's final state,
and a small one merging them.
"""

from __future__ import annotations

import dataclasses

import sympy

from einsumcc.analysis.merging import IDENTITY, Merge
from einsumcc.derive.symbolic import to_ir
from einsumcc.ir.affine import Affine
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Condition,
    Const,
    Dim,
    Einsum,
    Expr,
    ExtentRef,
    Init,
    Rank,
    Reduce,
    Role,
    Split,
    Tensor,
    VarRef,
    children,
    extent_symbol,
    var_symbol,
    with_children,
)


def _is_number(e: Expr, value: float) -> bool:
    return isinstance(e, Const) and e.value == value


def _combine(op: str, a: Expr, b: Expr) -> Expr:
    """``op`` of two values: ``max(a, b)``, ``a + b``, ..."""
    if op in ("max", "min"):
        return Call(op, (a, b))
    return Binary("+" if op == "sum" else "*", a, b)


class SplitError(Exception):
    """The cascade cannot be split as asked: the message says why."""


def fresh_name(taken: set[str], stem: str) -> str:
    """``stem``, or ``stem2``, ``stem3``, ... : the first not in ``taken`` (case-insensitive)."""
    low = {t.lower() for t in taken}
    name, k = stem, 1
    while name.lower() in low:
        k += 1
        name = f"{stem}{k}"
    return name


def split_stream(c: Cascade, m: Merge, runs: int | None, name: str = "C") -> Cascade:
    """``c`` with ``m.split``'s outer part cut into ``runs`` independent runs, merged after.

    ``runs`` None keeps the count a run-time extent (``C`` then must be given as a dim).
    """
    if not m.proved:
        raise SplitError(m.reason)
    return _Rewrite(c, m, runs, name).cascade()


class _Rewrite:
    def __init__(self, c: Cascade, m: Merge, runs: int | None, name: str) -> None:
        self.c, self.m = c, m
        self.outer = m.split.children[0]
        self.o = c.rank(self.outer).var
        taken = {r.name for r in c.ranks} | {t.name for t in c.tensors} | {p.name for p in c.params}
        self.name = fresh_name(taken, name)
        self.cv = self.name.lower()
        self.runs = runs
        self.state = tuple(cb.state for cb in m.combines)
        self.merged: dict[str, str] = {}
        for s in self.state:
            self.merged[s] = fresh_name(taken | set(self.merged.values()), f"G{s}")
        for t in c.tensors:
            if self.outer in t.ranks and t.role is not Role.INTERMEDIATE:
                raise SplitError(f"{t.role.value} {t.name} is indexed by the chunks {self.outer}")
            if t.name in self.state and len(set(t.ranks)) != len(t.ranks):
                raise SplitError(f"the state {t.name} repeats a rank")
        # the key's global chunk index and count, in the rewritten ranks
        self.chunk = Affine.var(self.cv) * Affine.extent(self.outer) + Affine.var(self.o)
        count = Affine.extent(self.name) * Affine.extent(self.outer)
        self.subs = {
            var_symbol(self.o): self.chunk.sympy,
            extent_symbol(self.outer): count.sympy,
        }

    # ------------------------------------------------------------ declarations

    def cascade(self) -> Cascade:
        c = self.c
        ranks: list[Rank] = []
        for r in c.ranks:
            if r.name == self.outer:
                ranks.append(Rank(self.name, self.runs, r.span))
                ext = r.affine_extent
                per_run = None if ext is None else ext / Affine.extent(self.name)
                ranks.append(Rank(r.name, per_run, r.span))
            else:
                ranks.append(r)
        splits = tuple(
            Split(s.parent, (self.name, *s.children), s.span) if s == self.m.split else s
            for s in c.splits
        )
        tensors = [self.tensor(t) for t in c.tensors]
        inits = tuple(self.init(i) for i in c.inits)
        einsums: list[Einsum] = []
        merged_done = False
        for e in c.einsums:
            if not merged_done and self.reads_final_state(e):
                einsums.extend(self.merge_einsums())
                tensors.extend(self.merge_tensors())
                merged_done = True
            einsums.append(self.einsum(e))
        if not merged_done:
            raise SplitError("nothing reads the recurrence's final state")
        return dataclasses.replace(
            c,
            ranks=tuple(ranks),
            splits=splits,
            tensors=tuple(tensors),
            inits=inits,
            einsums=tuple(einsums),
        )

    def tensor(self, t: Tensor) -> Tensor:
        pos = self.position(t)
        if pos is None:
            return t
        dims = (*t.dims[:pos], Dim(self.name), *t.dims[pos:])
        return dataclasses.replace(t, dims=dims)

    def position(self, t: Tensor) -> int | None:
        for k, d in enumerate(t.dims):
            if d.rank == self.outer:
                return k
        return None

    def init(self, i: Init) -> Init:
        target = self.access(i.target, state_reader=False)
        if self.m.seeded and i.target.tensor in self.state:
            op = self.m.combine(i.target.tensor).op
            return Init(target, to_ir(sympy.sympify(IDENTITY[op]), {}))
        return dataclasses.replace(i, target=target)

    def init_value(self, state: str) -> Expr:
        """The init of ``state`` as a value at the merge's indices (its target's variables)."""
        (i,) = self.c.inits_of(state)
        t = self.c.tensor(state)
        for d, ix in zip(t.dims, i.target.affine_indices, strict=True):
            if not d.iterative and not ix.is_var_plus(self.c.rank(d.rank).var, 0):
                raise SplitError(f"the init of {state} is not indexed by rank variables")
        return self.expr(i.value, reader=True)

    # ------------------------------------------------------------ the merge

    def merge_tensors(self) -> list[Tensor]:
        out = []
        for s in self.state:
            t = self.c.tensor(s)
            dims = tuple(d for d in t.dims if not d.iterative)
            role = Role.INTERMEDIATE
            out.append(dataclasses.replace(t, name=self.merged[s], dims=dims, role=role))
        return out

    def final_read(self, state: str) -> Access:
        """``X[.., c, M1, ..]``: a run's final state, indexed by rank variables."""
        t = self.c.tensor(state)
        ix: list[Affine] = []
        for d in t.dims:
            if d.iterative:
                ix += [Affine.var(self.cv), Affine.extent(self.outer)]
            else:
                ix.append(Affine.var(self.c.rank(d.rank).var))
        return Access(state, ix)

    def merged_read(self, state: str) -> Access:
        t = self.c.tensor(state)
        ix = [Affine.var(self.c.rank(d.rank).var) for d in t.dims if not d.iterative]
        return Access(self.merged[state], ix)

    def merge_einsums(self) -> list[Einsum]:
        old = dict(self.m.old)
        new = dict(self.m.new)
        out = []
        for cb in self.m.combines:
            final = self.final_read(cb.state)
            body: Expr
            if cb.factor is None:
                body = Reduce(cb.op, (self.cv,), final)
                if self.m.seeded:
                    body = _combine(cb.op, body, self.init_value(cb.state))
            else:
                atoms: dict[sympy.Symbol, Expr] = {}
                for s in self.state:
                    atoms[old[s]] = self.final_read(s)
                    atoms[new[s]] = self.merged_read(s)
                factor = to_ir(cb.factor, atoms)
                body = Reduce("sum", (self.cv,), Binary("*", factor, final))
                init = self.init_value(cb.state) if self.m.seeded else Const(0)
                if not _is_number(init, 0):
                    for s in self.state:
                        atoms[old[s]] = self.init_value(s)
                    seed = to_ir(cb.factor, atoms)
                    if not _is_number(init, 1):
                        seed = Binary("*", seed, init)
                    body = Binary("+", body, seed)
            out.append(Einsum(self.merged_read(cb.state), body))
        return out

    def reads_final_state(self, e: Einsum) -> bool:
        if e.name in self.state:
            return False
        return any(a.tensor in self.state and self.is_final(a) for a in e.reads)

    def is_final(self, a: Access) -> bool:
        pos = self.c.tensor(a.tensor).iterative_position
        return pos is not None and a.affine_indices[pos] == Affine.extent(self.outer)

    # ------------------------------------------------------------ statements

    def einsum(self, e: Einsum) -> Einsum:
        reader = e.name not in self.state and self.o not in e.variables
        return Einsum(
            self.access(e.output, state_reader=False),
            self.expr(e.body, reader),
            tuple(self.condition(w) for w in e.where),
            e.span,
            tuple(self.expr(x, reader) for x in e.mask),
        )

    def access(self, a: Access, state_reader: bool) -> Access:
        t = self.c.tensor(a.tensor)
        pos = self.position(t)
        if pos is None:
            return Access(a.tensor, [self.affine(ix) for ix in a.affine_indices], a.span)
        if state_reader and a.tensor in self.state and self.is_final(a):
            return self.merged_read_at(a)
        if state_reader and self.m.seeded and a.tensor in self.state:
            raise SplitError(f"{a.tensor}'s init is read after the recurrence")
        ix = list(a.affine_indices)
        if state_reader:  # the init, read after the recurrence: every run starts from it
            ix.insert(pos, Affine.const(0))
        else:
            ix.insert(pos, Affine.var(self.cv))
        return Access(a.tensor, ix, a.span)

    def merged_read_at(self, a: Access) -> Access:
        t = self.c.tensor(a.tensor)
        ix = [ix for d, ix in zip(t.dims, a.affine_indices, strict=True) if not d.iterative]
        return Access(self.merged[a.tensor], ix, a.span)

    def affine(self, ix: Affine) -> Affine:
        if self.o not in ix.variables and self.outer not in ix.extents:
            return ix
        return Affine.from_sympy(sympy.expand(ix.sympy.subs(self.subs, simultaneous=True)))

    def condition(self, w: Condition) -> Condition:
        return Condition(self.affine(w.affine_lhs), w.op, self.affine(w.affine_rhs), w.span)

    def expr(self, x: Expr, reader: bool) -> Expr:
        if isinstance(x, Access):
            return self.access(x, state_reader=reader)
        if isinstance(x, VarRef) and x.var == self.o:
            return to_ir(self.chunk.sympy, {})
        if isinstance(x, ExtentRef) and x.rank == self.outer:
            return Binary("*", ExtentRef(self.name), ExtentRef(self.outer))
        if isinstance(x, Reduce) and self.o in x.variables:
            body = self.expr(x.body, reader)
            return Reduce(x.op, tuple(sorted((*x.variables, self.cv))), body, x.span)
        kids = children(x)
        return with_children(x, tuple(self.expr(k, reader) for k in kids)) if kids else x
