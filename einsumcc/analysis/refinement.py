"""Is a cascade invariant under refining the split of its streamed rank?

``split M -> M1, M0`` cuts the keys into ``M1`` chunks of ``M0``; a recurrence over ``m1``
folds one chunk per iterate into its state (FuseMax's one-pass attention: the running max
``RM``, denominator ``RD`` and numerator ``RNV``).  A backend may want smaller chunks than the
cascade declares (a 256-key chunk makes a 64-query tile of scores too large for registers).
Refining ``M0`` changes the cascade, so it is allowed only when the result provably does not
depend on the chunk size: when folding chunk ``A`` and then chunk ``B`` leaves the state that
folding their union ``A + B`` in one iterate leaves, for every state.

:func:`refinement` proves this symbolically (sympy), on one point of every other rank:

* every value that does not depend on the recurrence's state and depends on the keys at all is
  a function of the key index ``m = m1*M0 + m0`` alone (*key-local*: ``BQK[m1, m0, p]``,
  ``K[e, m1*M0 + m0]``); it becomes one real symbol per key, so chunks are lists of keys;
* one iterate of the recurrence is evaluated on sympy values: reductions over ``m0`` are
  ``Add``/``Max``/``Min``/``Mul`` over the chunk's keys, reads of ``RM[m1]`` the current state,
  reads of ``RM[m1 + 1]`` the new one;
* for chunk sizes (1, 1), (2, 1) and (1, 2), with symbolic state and with the ``init``
  state (``-inf`` included: ``exp(-inf - a)`` is 0, ``-inf + inf`` would be NaN and fail),
  ``fold(fold(S, A), B) - fold(S, A + B)`` must simplify to 0 for every state tensor.

Everything else must not see the chunks: no output is indexed by ``M1`` or ``M0``, the state is
read after the recurrence only as its last iterate (``RNV[M1]``) or its ``init``, per-chunk
values are read only inside the recurrence, and key-local tensors hold finite values (a ``-inf``
fill could leave a refined chunk with no kept key: ``exp(-inf - -inf)`` is NaN where the
declared chunk had a kept key).  The identity is exact in real arithmetic; in floating point
the refined cascade rounds differently (as any change of tile does).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import sympy

from einsumcc.derive.symbolic import sympy_binary, sympy_call
from einsumcc.ir.affine import Affine
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.consteval import fold_constant
from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Const,
    Einsum,
    Expr,
    ExtentRef,
    Neg,
    Reduce,
    Split,
    VarRef,
    accesses,
    children,
    extent_symbol,
    var_symbol,
)

CHUNK_PAIRS = ((1, 1), (2, 1), (1, 2))


@dataclass(frozen=True)
class Refinement:
    """The verdict on refining ``split``: ``proved``, and why (or why not), in words."""

    split: Split
    proved: bool
    reason: str
    state: tuple[str, ...] = ()

    @property
    def outer(self) -> str:
        return self.split.children[0]

    @property
    def inner(self) -> str:
        return self.split.children[-1]


class NotInvariantError(Exception):
    """The proof fails: the message says where."""


def refinement(c: Cascade, split: Split) -> Refinement:
    """Whether every output of ``c`` is invariant under refining ``split``'s inner part."""
    if len(split.children) != 2:
        return Refinement(split, False, "only a split into two parts is refined")
    try:
        state = ChunkStructure(c, split).check()
        for na, nb in CHUNK_PAIRS:
            _check_fold(c, split, state, na, nb)
    except NotInvariantError as e:
        return Refinement(split, False, str(e))
    outer = split.children[0]
    return Refinement(
        split,
        True,
        f"the recurrence over {outer} ({', '.join(state)}) folds two chunks as it folds their "
        "union (checked symbolically for chunks of 1+1, 2+1 and 1+2 keys, and from the init)",
        state,
    )


# ---------------------------------------------------------------- structure


class ChunkStructure:
    """Which tensors are state, per-chunk or key-local, and whether the rest sees no chunk."""

    def __init__(self, c: Cascade, split: Split) -> None:
        self.c = c
        self.outer, self.inner = split.children
        self.o = c.rank(self.outer).var
        self.i = c.rank(self.inner).var
        self.split = split
        self.key_local: dict[str, bool] = {}

    def check(self) -> tuple[str, ...]:
        c = self.c
        state = tuple(e.name for e in c.einsums if e.iterative_variable == self.o)
        if not state:
            raise NotInvariantError(f"no recurrence iterates over {self.outer}")
        for t in c.outputs:
            if {self.outer, self.inner} & set(t.ranks):
                raise NotInvariantError(f"output {t.name} is indexed by the chunks")
        fold = self.fold_tensors(frozenset(state))
        for e in c.einsums:
            if e.name in fold:
                continue  # evaluated by the symbolic fold
            if any(a.tensor in fold for a in e.reads):
                self.check_reader(e, frozenset(state), fold)
            elif {self.o, self.i} & set(e.variables):
                self.check_key_local_einsum(e)
        return state

    def fold_tensors(self, state: frozenset[str]) -> frozenset[str]:
        """What one iterate computes: the state, per-chunk values (indexed by the outer part,
        not the inner), and whatever reads them at a chunk point."""
        out = set(state)
        for e in self.c.einsums:
            lhs = e.lhs_variables
            if self.o in lhs and self.i not in lhs:
                out.add(e.name)
        changed = True
        while changed:
            changed = False
            for e in self.c.einsums:
                if e.name in out or self.o not in e.lhs_variables:
                    continue
                if any(a.tensor in out for a in e.reads):
                    out.add(e.name)
                    changed = True
        return frozenset(out)

    def check_reader(self, e: Einsum, state: frozenset[str], fold: frozenset[str]) -> None:
        """An Einsum after the recurrence reads the state's last iterate or its init only."""
        if {self.o, self.i} & set(e.variables):
            raise NotInvariantError(f"{e.name} depends on the recurrence and walks the chunks")
        for a in e.reads:
            if a.tensor in state:
                t = self.c.tensor(a.tensor)
                pos = t.iterative_position
                assert pos is not None
                ix = a.affine_indices[pos]
                if not (ix.is_int(0) or ix == Affine.extent(self.outer)):
                    raise NotInvariantError(
                        f"{e.name} reads {a.tensor} at {ix.render()}, not its last iterate"
                    )
            elif a.tensor in fold:
                raise NotInvariantError(f"{e.name} reads the per-chunk {a.tensor}")

    def check_key_local_einsum(self, e: Einsum) -> None:
        lhs = set(e.lhs_variables)
        if (self.o in lhs) != (self.i in lhs):
            raise NotInvariantError(
                f"{e.name} is indexed by one part of the split: it depends on the chunking"
            )
        if self.o not in lhs and not {self.o, self.i} <= set(e.reduced_variables):
            raise NotInvariantError(f"{e.name} reduces over one part of the split only")
        self.check_key_local(e)

    def key_local_tensor(self, name: str) -> bool:
        """``name`` is an input without the chunk ranks, or computed key-locally."""
        if name not in self.key_local:
            producer = self.c.producer(name)
            if producer is None:
                self.key_local[name] = not (
                    {self.outer, self.inner} & set(self.c.tensor(name).ranks)
                )
            else:
                self.key_local[name] = True  # a cycle through views cannot happen; set first
                self.check_key_local(producer)
        return self.key_local[name]

    def check_key_local(self, e: Einsum) -> None:
        """``e`` depends on the chunk variables through ``m1*M0 + m0`` only, and is finite."""
        for expr in (e.body, *e.mask):
            self.check_key_local_expr(expr, e.name)
        for cond in e.where:
            for side in (cond.affine_lhs, cond.affine_rhs):
                self.check_index(side, e.name)
        if e.filtered:
            fill = _constant(self.c, self.c.tensor(e.name).fill)
            if fill is None or not math.isfinite(fill):
                raise NotInvariantError(
                    f"{e.name} is filtered with a fill that is not a finite constant: a "
                    "smaller run of keys (a refined chunk, one split) may keep no key where "
                    "the whole kept one: exp(-inf - -inf) is NaN"
                )

    def check_key_local_expr(self, expr: Expr, where: str) -> None:
        self.check_index_values(expr, where)
        for a in accesses(expr):
            self.check_access(a, where)

    def check_index_values(self, expr: Expr, where: str) -> None:
        """Rank variables and extents used as values (``p - (m1*M0 + m0)``): every largest
        integer subexpression that uses the chunks must be a function of the key index."""
        chunk_vars, chunk_extents = {self.o, self.i}, {self.outer, self.inner}
        integer = _integer_affine(expr)
        if integer is not None:
            if integer.variables & chunk_vars or integer.extents & chunk_extents:
                self.check_index(integer, where)
            return
        if isinstance(expr, VarRef) and expr.var in chunk_vars:
            raise NotInvariantError(f"{where} uses {expr.var} as a value")
        if isinstance(expr, ExtentRef) and expr.rank in chunk_extents:
            raise NotInvariantError(f"{where} uses the extent {expr.rank} as a value")
        if isinstance(expr, Access):
            return
        for kid in children(expr):
            self.check_index_values(kid, where)

    def check_access(self, a: Access, where: str) -> None:
        t = self.c.tensor(a.tensor)
        chunked = [k for k, d in enumerate(t.dims) if d.rank in (self.outer, self.inner)]
        if chunked:
            for k in chunked:
                want = self.o if t.dims[k].rank == self.outer else self.i
                if not a.affine_indices[k].is_var_plus(want, 0) or t.dims[k].iterative:
                    raise NotInvariantError(f"{where} reads {a.tensor} off its chunk point")
            if not self.key_local_tensor(a.tensor):
                raise NotInvariantError(f"{where} reads {a.tensor}, which depends on the chunking")
            for k, ix in enumerate(a.affine_indices):
                if k not in chunked:
                    self.check_index(ix, where)
            return
        for ix in a.affine_indices:
            self.check_index(ix, where)
        if self.c.producer(a.tensor) is not None and not self.key_local_tensor(a.tensor):
            raise NotInvariantError(f"{where} reads {a.tensor}, which depends on the chunking")

    def check_index(self, ix: Affine, where: str) -> None:
        """An index or filter side: the chunk variables appear as ``m1*M0 + m0`` only."""
        assert isinstance(ix, Affine)
        if not ({self.o, self.i} & ix.variables or {self.outer, self.inner} & ix.extents):
            return
        m = sympy.Symbol("m_refined_key", integer=True)
        o, i = var_symbol(self.o), var_symbol(self.i)
        big_o, big_i = extent_symbol(self.outer), extent_symbol(self.inner)
        parent = extent_symbol(self.split.parent)
        e = ix.sympy.subs(i, m - o * big_i).subs(big_o, parent / big_i)
        e = sympy.expand(e)
        if e.free_symbols & {o, i, big_o, big_i}:
            raise NotInvariantError(
                f"{where} uses {ix.render()}: not a function of {self.split.parent}'s index "
                f"{self.o}*{self.inner} + {self.i} alone"
            )


def _integer_affine(e: Expr) -> Affine | None:
    """``e`` as an exact affine expression, when built of rank variables, extents, integers,
    ``+``, ``-`` and ``*`` only."""
    if isinstance(e, VarRef):
        return Affine.var(e.var)
    if isinstance(e, ExtentRef):
        return Affine.extent(e.rank)
    if isinstance(e, Const):
        return Affine.const(e.value) if isinstance(e.value, int) else None
    if isinstance(e, Neg):
        inner = _integer_affine(e.operand)
        return None if inner is None else -inner
    if isinstance(e, Binary) and e.op in ("+", "-", "*"):
        lhs, rhs = _integer_affine(e.lhs), _integer_affine(e.rhs)
        if lhs is None or rhs is None:
            return None
        return lhs + rhs if e.op == "+" else lhs - rhs if e.op == "-" else lhs * rhs
    return None


# ---------------------------------------------------------------- the symbolic fold


class KeySymbols:
    """Real symbols for the state, the per-key values and the constants, shared by folds."""

    def __init__(self) -> None:
        self.table: dict[object, sympy.Symbol] = {}

    def get(self, key: object, stem: str) -> sympy.Symbol:
        if key not in self.table:
            self.table[key] = sympy.Symbol(f"{stem}{len(self.table)}", real=True)
        return self.table[key]


class ChunkFold:
    """One iterate of the recurrence over the outer part, on sympy values: ``old`` state in,
    the keys of one chunk (integers naming per-key symbols), the new state out."""

    def __init__(
        self,
        st: ChunkStructure,
        state: tuple[str, ...],
        old: dict[str, sympy.Expr],
        keys: range,
        symbols: KeySymbols,
    ) -> None:
        self.st, self.c = st, st.c
        self.state = frozenset(state)
        self.dependent = st.fold_tensors(self.state)
        self.old, self.keys, self.symbols = old, keys, symbols
        self.cache: dict[tuple[str, int | None], sympy.Expr] = {}

    def new_state(self) -> dict[str, sympy.Expr]:
        return {name: self.tensor(name, None) for name in sorted(self.state)}

    def tensor(self, name: str, key: int | None) -> sympy.Expr:
        if (name, key) not in self.cache:
            e = self.c.einsum(name)
            if e.filtered:
                raise NotInvariantError(f"{name} is filtered inside the recurrence")
            self.cache[(name, key)] = self.value(e.body, key)
        return self.cache[(name, key)]

    def value(self, e: Expr, key: int | None) -> sympy.Expr:
        if isinstance(e, Reduce) and self.st.i in e.variables:
            return self.reduce(e, key)
        if not any(a.tensor in self.dependent for a in accesses(e)):
            return self.state_free(e, key)
        if isinstance(e, Access):
            return self.access(e, key)
        if isinstance(e, Neg):
            return -self.value(e.operand, key)
        if isinstance(e, Binary):
            return sympy_binary(e.op, self.value(e.lhs, key), self.value(e.rhs, key))
        if isinstance(e, Call):
            return sympy_call(e.fn, [self.value(a, key) for a in e.args])
        if isinstance(e, Reduce):
            return self.reduce(e, key)
        raise NotInvariantError(f"{type(e).__name__.lower()} of the recurrence's values")

    def reduce(self, e: Reduce, key: int | None) -> sympy.Expr:
        if e.variables != (self.st.i,) or key is not None:
            raise NotInvariantError(
                f"a {e.op} over {', '.join(e.variables)} inside the recurrence (only reductions "
                f"over {self.st.i} are folded)"
            )
        terms = [self.value(e.body, k) for k in self.keys]
        if e.op == "sum":
            return sympy.Add(*terms)
        if e.op == "prod":
            return sympy.Mul(*terms)
        return sympy.Max(*terms) if e.op == "max" else sympy.Min(*terms)

    def access(self, a: Access, key: int | None) -> sympy.Expr:
        t = self.c.tensor(a.tensor)
        o, i = self.st.o, self.st.i
        at: dict[str, Affine] = {}
        for d, ix in zip(t.dims, a.affine_indices, strict=True):
            var = self.c.rank(d.rank).var
            if d.iterative:
                at["iterate"] = ix
            elif not ix.is_var_plus(var, 0):
                raise NotInvariantError(f"the recurrence reads {a.tensor} at {ix.render()}")
            at[var] = ix
        if a.tensor in self.state:
            if i in at:
                raise NotInvariantError(f"the state {a.tensor} is indexed by {self.st.inner}")
            step = at.get("iterate")
            if step is not None and step.is_var_plus(o, 1):
                return self.tensor(a.tensor, None)
            if step is not None and step.is_var_plus(o, 0):
                return self.old[a.tensor]
            raise NotInvariantError(f"the recurrence reads {a.tensor} at another iterate")
        if o not in at:
            raise NotInvariantError(
                f"the recurrence reads {a.tensor}, computed from its last state"
            )
        if i in at:
            if key is None:
                raise NotInvariantError(f"{a.tensor} is read per key outside a reduction over {i}")
            return self.tensor(a.tensor, key)
        return self.tensor(a.tensor, None)

    def state_free(self, e: Expr, key: int | None) -> sympy.Expr:
        """A value that no state reaches: a number, a constant symbol or a per-key symbol."""
        if isinstance(e, Const):
            return _exact(e.value)
        self.st.check_key_local_expr(e, "the recurrence")
        keyed = any(
            {self.st.outer, self.st.inner} & set(self.c.tensor(a.tensor).ranks)
            or {self.st.o, self.st.i} & a.variables
            for a in accesses(e)
        )
        if not keyed:
            return self.symbols.get(("const", e), "c")
        if key is None:
            raise NotInvariantError("the recurrence reads a key's value outside a reduction")
        return self.symbols.get(("key", e, key), "x")


def init_state(c: Cascade, state: tuple[str, ...]) -> dict[str, sympy.Expr] | None:
    """The init of every state tensor, when all are constants."""
    out: dict[str, sympy.Expr] = {}
    for name in state:
        inits = c.inits_of(name)
        v = _constant(c, inits[0].value) if len(inits) == 1 else None
        if v is None or math.isnan(v):
            return None
        out[name] = _exact(v)
    return out


def _exact(v: float) -> sympy.Expr:
    """A number as an exact sympy value (a rational, or +-oo)."""
    if math.isinf(v):
        return sympy.oo if v > 0 else -sympy.oo
    return sympy.nsimplify(v, rational=True)


def _constant(c: Cascade, e: Expr) -> float | None:
    """``e``'s value when it is a constant (``-1e30``, ``-inf``, a param), else None."""
    try:
        return fold_constant(e, {}, {p.name: p.value for p in c.params})
    except (KeyError, ArithmeticError, ValueError):
        return None


def is_zero(d: sympy.Expr) -> bool:
    if d == 0:
        return True
    if d.has(sympy.nan, sympy.zoo):
        return False
    d = sympy.powsimp(sympy.expand(d), combine="exp")
    return bool(d == 0 or sympy.simplify(d) == 0)


def _check_fold(c: Cascade, split: Split, state: tuple[str, ...], na: int, nb: int) -> None:
    st = ChunkStructure(c, split)
    symbols = KeySymbols()
    starts: list[tuple[str, dict[str, sympy.Expr]]] = [
        ("any state", {name: symbols.get(("state", name), "s") for name in state})
    ]
    init = init_state(c, state)
    if init is not None:
        starts.append(("the init", init))
    a, b, ab = range(na), range(na, na + nb), range(na + nb)
    for label, s0 in starts:
        twice = ChunkFold(st, state, ChunkFold(st, state, s0, a, symbols).new_state(), b, symbols)
        once = ChunkFold(st, state, s0, ab, symbols)
        got, want = twice.new_state(), once.new_state()
        for name in state:
            if not is_zero(got[name] - want[name]):
                raise NotInvariantError(
                    f"from {label}, folding chunks of {na} and {nb} keys leaves {name} = "
                    f"{got[name]}, folding their union {want[name]}"
                )


def refinable_splits(c: Cascade) -> Iterator[Refinement]:
    """The verdict for every split of ``c`` into two parts."""
    for s in c.splits:
        if len(s.children) == 2:
            yield refinement(c, s)
