"""Can a recurrence over chunks run as independent splits whose final states are merged?

Split-KV (flash-decoding) runs the recurrence over ``M1`` (``split M -> M1, M0``) on ``C``
disjoint runs of chunks in parallel, each from the ``init`` state, and then merges the ``C``
final states into the state that one run over every chunk would leave.  The merge is not in
the cascade: it is derived here from the recurrence, then proved.

**Deriving it.**  One iterate of the recurrence is read as a function of the old state
``X[m1]``, the new state ``X[m1 + 1]`` (a symbol: later state tensors may read it) and the
chunk's reductions over ``m0`` (opaque symbols, noting which states they read).  Each state
tensor must be one of

* a *monoid* state: ``X' = op(X, g)`` with ``op`` in max, min, +, * and ``g`` reading no state
  (the running max ``RM' = max(RM, LM)``).  Its splits merge as ``op{c} X[c, M1]``;
* a *rescaled* state: ``S' = a * S + b``, linear in its old value, where the factor ``a``
  reads only monoid states (old and new) and ``b`` reads no old state and only monoid new
  states (``RD' = RD * exp(RM - RM') + sum{m0} exp(BQK - RM')``).  Its splits merge as
  ``sum{c} a(X := X[c, M1], X' := merged X) * S[c, M1]``: every split's sum is rescaled to the
  merged monoid state, as the recurrence rescales its running sum to the new max.

**Proving it.**  On the symbolic fold of :mod:`einsumcc.analysis.refinement` (reductions over
``m0`` as sums/maxima over symbolic keys), for runs of chunks ``[1] [1]``, ``[2] [1]``,
``[1, 1] [1]``, ``[1] [2, 1]`` and ``[1] [1] [1]`` (keys per chunk): merging the splits'
final states, each folded from the ``init``, must equal folding every chunk in order from the
``init``.  The ``init`` must be constant; the rest of the cascade must read the state only as
its last iterate, as for refinement (the same structural checks, filters with an infinite fill
refused: a split whose keys are all filtered out would hold ``exp(-inf - -inf)``).

Every run starts from the merge's identity (``-inf`` for a max, 0 for a sum or a rescaled
state).  When the ``init`` is not the identity (a learned sink's logit seeding the running
max, a count from 1), the init is merged as one more run: the proof then folds from a symbolic
init (any data) or the constant one.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from einsumcc.analysis.refinement import (
    ChunkFold,
    ChunkStructure,
    KeySymbols,
    NotInvariantError,
    init_state,
    is_zero,
)
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import Access, Reduce, Split

RUNS = (((1,), (1,)), ((2,), (1,)), ((1, 1), (1,)), ((1,), (2, 1)), ((1,), (1,), (1,)))
MONOIDS = ("max", "min", "sum", "prod")
# the state a run starts from: the identity of its merge
IDENTITY = {"max": -sympy.oo, "min": sympy.oo, "sum": 0, "prod": 1, "rescale": 0}


@dataclass(frozen=True)
class Combine:
    """How the splits' final values of one state tensor merge.

    ``op`` is a monoid (``max``, ``min``, ``sum``, ``prod``: ``op{c} X[c, M1]``) or
    ``rescale`` (``sum{c} factor * S[c, M1]``).  ``factor`` is a sympy expression in
    :attr:`Merge.old` symbols (a split's final monoid states) and :attr:`Merge.new` symbols
    (the merged monoid states).
    """

    state: str
    op: str
    factor: sympy.Expr | None = None


@dataclass(frozen=True)
class Merge:
    """The verdict on running ``split``'s outer part as independent splits."""

    split: Split
    proved: bool
    reason: str
    combines: tuple[Combine, ...] = ()
    old: tuple[tuple[str, sympy.Symbol], ...] = ()
    new: tuple[tuple[str, sympy.Symbol], ...] = ()
    # the init is not the merge's identity (a sink's logit, a count from 1): runs start from
    # the identity and the init is merged as one more run
    seeded: bool = False

    def combine(self, state: str) -> Combine:
        return next(cb for cb in self.combines if cb.state == state)


def merge(c: Cascade, split: Split) -> Merge:
    """The merge of independent runs of the recurrence over ``split``'s outer part."""
    if len(split.children) != 2:
        return Merge(split, False, "only a split into two parts is run as splits")
    try:
        st = ChunkStructure(c, split)
        state = st.check()
        for name in state:
            if len(c.inits_of(name)) != 1:
                raise NotInvariantError(f"{name} has {len(c.inits_of(name))} inits, not one")
        upd = _Update(st, state)
        combines = tuple(upd.classify(name) for name in state)
        order = _order(combines)
        identity = {cb.state: sympy.sympify(IDENTITY[cb.op]) for cb in combines}
        init = init_state(c, state)
        seeded = init is None or any(init[n] != identity[n] for n in state)
        if init is None:  # read from data: any value
            init = {n: sympy.Symbol(f"{n}_init", real=True) for n in state}
        for runs in RUNS:
            _check_runs(st, state, (init, identity, seeded), upd, order, runs)
    except NotInvariantError as e:
        return Merge(split, False, str(e))
    start = "the identity, the init merged as one more run" if seeded else "the init"
    return Merge(
        split,
        True,
        f"the splits' final {', '.join(state)} merge into the state of one run "
        "(derived from the recurrence; checked symbolically for runs of 1-3 splits of 1-2 "
        f"chunks from {start})",
        order,
        tuple(upd.old_symbols.items()),
        tuple(upd.new_symbols.items()),
        seeded,
    )


def _order(combines: tuple[Combine, ...]) -> tuple[Combine, ...]:
    """Monoid states first: rescaled ones read their merged values."""
    return tuple(cb for cb in combines if cb.op != "rescale") + tuple(
        cb for cb in combines if cb.op == "rescale"
    )


class _Update(ChunkFold):
    """One iterate as a function of symbols: old and new state, opaque chunk reductions."""

    def __init__(self, st: ChunkStructure, state: tuple[str, ...]) -> None:
        self.old_symbols = {n: sympy.Symbol(f"{n}_old", real=True) for n in state}
        self.new_symbols = {n: sympy.Symbol(f"{n}_new", real=True) for n in state}
        super().__init__(st, state, dict(self.old_symbols), range(1), KeySymbols())
        self.reads: dict[sympy.Symbol, frozenset[str]] = {}  # opaque symbol -> states it reads
        self.monoids: set[str] = set()

    def access(self, a: Access, key: int | None) -> sympy.Expr:
        t = self.c.tensor(a.tensor)
        pos = t.iterative_position
        if (
            a.tensor in self.state
            and pos is not None
            and a.affine_indices[pos].is_var_plus(self.st.o, 1)
        ):
            return self.new_symbols[a.tensor]
        return super().access(a, key)

    def reduce(self, e: Reduce, key: int | None) -> sympy.Expr:
        sym = self.symbols.get(("reduction", e), "r")
        if sym not in self.reads:
            self.reads[sym] = self._state_reads(self.value(e.body, 0))
        return sym

    def _state_reads(self, v: sympy.Expr) -> frozenset[str]:
        out = set()
        for name in self.state:
            if v.has(self.old_symbols[name], self.new_symbols[name]):
                out.add(name)
        for sym, names in self.reads.items():
            if v.has(sym):
                out |= names
        return frozenset(out)

    def classify(self, name: str) -> Combine:
        v = self.value(self.c.einsum(name).body, None)
        old = self.old_symbols[name]
        monoid = self._monoid(v, old)
        if monoid is not None:
            self.monoids.add(name)
            return Combine(name, monoid)
        return self._rescaled(name, v, old)

    def _monoid(self, v: sympy.Expr, old: sympy.Expr) -> str | None:
        kinds = ((sympy.Max, "max"), (sympy.Min, "min"), (sympy.Add, "sum"), (sympy.Mul, "prod"))
        for kind, op in kinds:
            if isinstance(v, kind) and old in v.args:
                rest = [a for a in v.args if a != old]
                if not any(self._state_reads(a) for a in rest):
                    return op
        return None

    def _rescaled(self, name: str, v: sympy.Expr, old: sympy.Expr) -> Combine:
        v = sympy.expand(v)
        factor = sympy.simplify(sympy.diff(v, old))
        rest = sympy.expand(v - factor * old)
        monoid_syms = {self.old_symbols[n] for n in self.monoids} | {
            self.new_symbols[n] for n in self.monoids
        }
        all_state = set(self.old_symbols.values()) | set(self.new_symbols.values())
        opaque = set(self.reads)
        if factor == 0 or (factor.free_symbols & (all_state | opaque)) - monoid_syms:
            raise NotInvariantError(
                f"{name}'s update is not op({name}, chunk) nor {name} * a + b with a factor of "
                f"monoid states only (max, min, sums of the chunk): {name}' = {v}"
            )
        if factor.free_symbols - monoid_syms:
            raise NotInvariantError(f"{name}'s rescaling factor {factor} reads the chunk")
        old_reads = {self.old_symbols[n] for n in self.state}
        if rest.free_symbols & old_reads or self._state_reads(rest) - self.monoids:
            raise NotInvariantError(
                f"{name}' = {v}: its chunk term reads the old state or states that are not monoids"
            )
        return Combine(name, "rescale", factor)


def _fold_runs(
    st: ChunkStructure,
    state: tuple[str, ...],
    start: dict[str, sympy.Expr],
    chunks: list[range],
    symbols: KeySymbols,
) -> dict[str, sympy.Expr]:
    s = start
    for keys in chunks:
        s = ChunkFold(st, state, s, keys, symbols).new_state()
    return s


def _merged(
    finals: list[dict[str, sympy.Expr]], upd: _Update, order: tuple[Combine, ...]
) -> dict[str, sympy.Expr]:
    out: dict[str, sympy.Expr] = {}
    for cb in order:
        values = [f[cb.state] for f in finals]
        if cb.op == "max":
            out[cb.state] = sympy.Max(*values)
        elif cb.op == "min":
            out[cb.state] = sympy.Min(*values)
        elif cb.op == "sum":
            out[cb.state] = sympy.Add(*values)
        elif cb.op == "prod":
            out[cb.state] = sympy.Mul(*values)
        else:
            assert cb.factor is not None
            terms = []
            for f in finals:
                subs = {upd.old_symbols[n]: f[n] for n in upd.monoids}
                subs |= {upd.new_symbols[n]: out[n] for n in upd.monoids}
                terms.append(cb.factor.subs(subs, simultaneous=True) * f[cb.state])
            out[cb.state] = sympy.Add(*terms)
    return out


def _check_runs(
    st: ChunkStructure,
    state: tuple[str, ...],
    starts: tuple[dict[str, sympy.Expr], dict[str, sympy.Expr], bool],
    upd: _Update,
    order: tuple[Combine, ...],
    runs: tuple[tuple[int, ...], ...],
) -> None:
    """One run over every chunk from the init equals the merge of the runs, each from the
    identity (from the init when it is the identity), and of the init when it is not."""
    init, identity, seeded = starts
    symbols = KeySymbols()
    split_chunks: list[list[range]] = []
    first = 0
    for run in runs:
        chunks = []
        for n in run:
            chunks.append(range(first, first + n))
            first += n
        split_chunks.append(chunks)
    whole = _fold_runs(st, state, init, [k for run in split_chunks for k in run], symbols)
    finals = [_fold_runs(st, state, identity, run, symbols) for run in split_chunks]
    got = _merged([init, *finals] if seeded else finals, upd, order)
    for name in state:
        if not is_zero(got[name] - whole[name]):
            shape = " ".join("[" + ", ".join(map(str, r)) + "]" for r in runs)
            raise NotInvariantError(
                f"merging splits of {shape} keys per chunk leaves {name} = {got[name]}, one "
                f"run {whole[name]}"
            )
