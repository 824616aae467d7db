"""Ranges of the values a cascade computes, for the empty-tile proof.

``Bounds.tensor(T)`` is an interval holding every value of ``T``, from interval arithmetic on
its Einsum (inputs bounded by their dtype: ``f16`` by its largest finite value, other floats
by the assumption ``|x| <= 2**32`` documented in docs/triton.md; rank variables by their
extents).  Two facts about filters and softmax make the ranges tight enough to prove that a
fill is dominated:

* a ``max``/``min`` over a filtered tensor whose every row keeps a point (see
  :meth:`Bounds.rows_nonempty`) ranges over the surviving values only, not over the fill;
* ``sum{r} exp(X - G)`` with ``G = max{r} X`` is at least 1 (the arg-max term) and at most the
  number of terms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import sympy

from einsumcc.ir.bind import eval_constant
from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Condition,
    Const,
    Expr,
    ExtentRef,
    Neg,
    ParamRef,
    VarRef,
    var_symbol,
)
from einsumcc.schedule import intervals as iv
from einsumcc.schedule.intervals import Iv
from einsumcc.schedule.nodes import Node, NodeKind, NodeProgram, ReadKind

INPUT_BOUND = 2.0**32  # assumed magnitude of f32/bf16/f64 inputs (f16 is bounded by its format)
UNKNOWN_EXTENT = 2**31


def le_zero(c: Condition) -> list[sympy.Expr]:
    lhs, rhs = c.lhs, c.rhs
    forms = {
        "<=": [lhs - rhs],
        "<": [lhs - rhs + 1],
        ">=": [rhs - lhs],
        ">": [rhs - lhs + 1],
    }
    return forms.get(c.op, [])


class Bounds:
    def __init__(
        self,
        prog: NodeProgram,
        extents: Mapping[str, int | None],
        override: Mapping[str, Iv] | None = None,
        checked: tuple[str, frozenset[str]] | None = None,
    ) -> None:
        self.prog = prog
        self.c = prog.cascade
        self.extents = extents
        # (filtered node, row variables): a run-time check found a point in every such row
        self.checked = checked
        # tensors whose range is given: a filtered tensor at its kept or its removed points
        self._memo: dict[str, Iv] = dict(override or {})
        self._params = {p.name: p.value for p in self.c.params}

    # ------------------------------------------------------------ scalars
    def constant(self, e: Expr) -> float | None:
        known = {k: v for k, v in self.extents.items() if v is not None}
        try:
            return eval_constant(e, known, self._params)
        except (KeyError, RecursionError, ZeroDivisionError):
            return None

    def extent(self, rank: str) -> int:
        n = self.extents.get(rank)
        return n if n is not None else UNKNOWN_EXTENT

    def count(self, variables: tuple[str, ...]) -> float:
        return float(math.prod(self.extent(self.c.var_ranks[v]) for v in variables))

    def fill(self, n: Node) -> float | None:
        if not n.top:
            return None
        return self.constant(self.c.tensor(n.key).fill)

    # ------------------------------------------------------------ tensors
    def tensor(self, name: str) -> Iv:
        if name not in self._memo:
            self._memo[name] = iv.TOP  # a cycle (recurrence) stays unknown
            self._memo[name] = self._compute(name)
        return self._memo[name]

    def _compute(self, name: str) -> Iv:
        n = self.prog.producer(name)
        if n is None:
            dt = self.c.tensor(name).dtype
            b = dt.max_finite if dt.value == "f16" or not dt.is_float else INPUT_BOUND
            return iv.span(max(-b, dt.min_value), b)
        if n.recurrence is not None or n.kind is NodeKind.SURVIVE:
            return iv.TOP
        value = self.points(n)
        fill = self.fill(n)
        if n.filtered:
            return iv.join(value, iv.const(fill)) if fill is not None else iv.TOP
        return value

    def points(self, n: Node) -> Iv:
        """The values of ``n`` where its filter keeps a point (the whole node if none)."""
        if n.kind is NodeKind.MAP:
            return self.expr(n.body)
        return self.reduction(n)

    def reduction(self, n: Node) -> Iv:
        op = n.op or "sum"
        lemma = self._softmax_sum(n)
        if lemma is not None:
            return lemma
        body = self.expr(n.body)
        if op in ("max", "min") and isinstance(n.body, Access):
            body = self.kept_extreme(op, n.body.tensor, set(n.variables), body)
        if n.mask:
            return iv.TOP  # points of its own removed: possibly the identity
        return iv.reduce_value(op, body, self.count(n.reduced))

    def guarded_source(self, tensor: str) -> Node | None:
        """The one filtered node that ``tensor`` is (or reads point for point through
        pointwise nodes): ``QK`` for ``T[m, p] = QK[m, p] + B[m, p]``."""
        n = self.prog.producer(tensor)
        if n is None:
            return None
        if n.filtered:
            return n if n.kind is not NodeKind.SURVIVE else None
        if n.kind is not NodeKind.MAP:
            return None
        found = None
        for a in n.reads:
            g = self.guarded_source(a.tensor)
            if g is None:
                continue
            if found is not None and g.key != found.key:
                return None
            if self.prog.read_kind(a, n) is not ReadKind.DIRECT:
                return None
            found = g
        return found

    def kept(self, tensor: str) -> tuple[Node, Bounds] | None:
        """The filtered source of ``tensor`` and the bounds at the points it keeps."""
        g = self.guarded_source(tensor)
        if g is None:
            return None
        return g, Bounds(self.prog, self.extents, {g.key: self.points(g)}, self.checked)

    def kept_extreme(self, op: str, tensor: str, keep: set[str], whole: Iv) -> Iv:
        """``max`` (``min``) over rows of ``tensor`` that each keep a point of its filtered
        source: at least (at most) the smallest (largest) kept value."""
        k = self.kept(tensor)
        if k is None or not self.rows_nonempty(k[0], keep):
            return whole
        kept = k[1].tensor(tensor)
        if kept.nan:
            return whole
        if op == "max":
            return Iv(max(whole.lo, kept.lo), whole.hi, whole.nan)
        return Iv(whole.lo, min(whole.hi, kept.hi), whole.nan)

    def _softmax_sum(self, n: Node) -> Iv | None:
        """``sum{r} exp(X - G)`` with ``G = max{r} X``: in ``[1, count]``."""
        if n.op != "sum" or n.mask:
            return None
        body = n.body
        if isinstance(body, Access):
            p = self.prog.producer(body.tensor)
            if p is None or p.kind is not NodeKind.MAP or p.filtered:
                return None
            body = p.body
        if not (isinstance(body, Call) and body.fn == "exp"):
            return None
        d = body.args[0]
        if not (isinstance(d, Binary) and d.op == "-"):
            return None
        x, g = d.lhs, d.rhs
        if not (isinstance(x, Access) and isinstance(g, Access)):
            return None
        gn = self.prog.producer(g.tensor)
        if gn is None or gn.kind is not NodeKind.REDUCE or gn.op != "max" or gn.mask:
            return None
        if not (isinstance(gn.body, Access) and gn.body.tensor == x.tensor):
            return None
        if set(gn.reduced) != set(n.reduced):
            return None
        if self.prog.producer(x.tensor) is None:
            return None
        k = self.kept(x.tensor)
        if k is not None and not self.rows_nonempty(k[0], set(gn.variables)):
            return None
        kept = k[1].tensor(x.tensor) if k is not None else self.tensor(x.tensor)
        if not kept.finite:
            return None
        return iv.span(1.0, self.count(n.reduced))

    def expr(self, e: Expr) -> Iv:
        if isinstance(e, Const):
            return iv.const(float(e.value))
        if isinstance(e, ParamRef | ExtentRef):
            v = self.constant(e)
            return iv.const(v) if v is not None else iv.span(1.0, float(UNKNOWN_EXTENT))
        if isinstance(e, VarRef):
            return iv.span(0.0, float(self.extent(self.c.var_ranks[e.var]) - 1))
        if isinstance(e, Access):
            return self.tensor(e.tensor)
        if isinstance(e, Neg):
            return iv.neg(self.expr(e.operand))
        if isinstance(e, Binary):
            return iv.binary(e.op, self.expr(e.lhs), self.expr(e.rhs))
        if isinstance(e, Call):
            args = [self.expr(a) for a in e.args]
            if len(args) == 1:
                return iv.unary(e.fn, args[0])
            if e.fn in ("max", "min"):
                return iv.extreme(e.fn, args[0], args[1])
        return iv.TOP

    # ------------------------------------------------------------ filters
    def rows_nonempty(self, f: Node, keep: set[str]) -> bool:
        """Every point of the ``keep`` variables keeps a point of ``f``'s filter.

        The other variables enter every condition through one linear form ``L`` (``m``, or
        ``m1*M0 + m0`` for a split) that covers ``[0, Lmax]``; each condition bounds ``L``
        from below or above, and a row keeps a point iff no lower bound exceeds an upper one
        anywhere in the box of the ``keep`` variables."""
        if self.checked is not None and f.key == self.checked[0] and keep <= self.checked[1]:
            return True  # the kernel checks it at run time before it skips a tile
        forms = [e for c in f.conditions for e in (le_zero(c) or [None])]
        if any(e is None for e in forms) or f.data:
            return False  # data conditions may remove every point of a row
        others = sorted({v for c in f.conditions for v in c.variables} - keep)
        if not others:
            return self._holds(forms, keep)
        lin = self._common_form(forms, others)
        if lin is None:
            return False
        form, lmax = lin
        ell = sympy.Symbol("$L", integer=True)
        maybe = [self._substitute(e, form, others, ell) for e in forms]
        sub = [e for e in maybe if e is not None]
        if len(sub) != len(maybe):
            return False
        # one variable L: a row keeps a point iff every lower bound <= every upper bound
        lower: list[sympy.Expr] = [sympy.Integer(0)]
        upper: list[sympy.Expr] = [lmax]
        plain: list[sympy.Expr] = []
        for e in sub:
            a = e.coeff(ell, 1)
            if a == 0:
                plain.append(e)
            elif a in (1, -1):
                bound = sympy.expand(-(e - a * ell) / a)
                (upper if a == 1 else lower).append(bound)
            else:
                return False
        pairs = [lo - hi for lo in lower for hi in upper]
        return self._holds(plain + pairs, keep)

    def _common_form(
        self, forms: list[sympy.Expr], others: list[str]
    ) -> tuple[sympy.Expr, sympy.Expr] | None:
        """The linear form of ``others`` every condition uses, and its largest value."""
        syms = [var_symbol(v) for v in others]
        form: sympy.Expr | None = None
        for e in forms:
            part = sympy.expand(sum(sympy.expand(e).coeff(s, 1) * s for s in syms))
            if part == 0:
                continue
            if form is None:
                form = part
            elif sympy.simplify(part - form) != 0 and sympy.simplify(part + form) != 0:
                return None
        if form is None:
            return None
        coeffs: list[tuple[int, sympy.Expr, bool]] = []
        for s, v in zip(syms, others, strict=True):
            a_val = _int(sympy.expand(form.coeff(s, 1)), self.extents)
            if a_val is None:
                return None
            n = _known(sympy.Symbol(self.c.var_ranks[v], integer=True, positive=True), self.extents)
            coeffs.append((abs(a_val), n, a_val > 0))
        if len({pos for _, _, pos in coeffs}) != 1:
            return None
        coeffs.sort(key=lambda x: x[0])
        reach: sympy.Expr = sympy.Integer(0)
        for a, n, _ in coeffs:
            gap = sympy.expand(a - reach - 1)
            if not gap.is_nonpositive:
                return None  # gaps: not every value of L is reachable
            reach = sympy.expand(reach + a * (n - 1))
        if not coeffs[0][2]:
            form = -form
        return form, reach

    def _substitute(
        self, e: sympy.Expr, form: sympy.Expr, others: list[str], ell: sympy.Symbol
    ) -> sympy.Expr | None:
        syms = [var_symbol(v) for v in others]
        e = sympy.expand(e)
        part = sympy.expand(sum(e.coeff(s, 1) * s for s in syms))
        rest = sympy.expand(e - part)
        if part == 0:
            return rest
        if sympy.simplify(part - form) == 0:
            return sympy.expand(rest + ell)
        if sympy.simplify(part + form) == 0:
            return sympy.expand(rest - ell)
        return None

    def _holds(self, conds: list[sympy.Expr], keep: set[str]) -> bool:
        """Every ``cond <= 0`` for every value of the ``keep`` variables."""
        for e in conds:
            e = _known(sympy.expand(e), self.extents)
            worst: sympy.Expr = e
            for sym in sorted(e.free_symbols, key=str):
                if str(sym) not in keep:
                    continue
                coeff = sympy.expand(e.coeff(sym, 1))
                hi = _known(
                    sympy.Symbol(self.c.var_ranks[str(sym)], integer=True, positive=True) - 1,
                    self.extents,
                )
                if coeff.is_nonnegative:
                    worst = worst.xreplace({sym: hi})
                elif coeff.is_nonpositive:
                    worst = worst.xreplace({sym: 0})
                else:
                    return False
            if sympy.simplify(_known(worst, self.extents)).is_nonpositive is not True:
                return False
        return True


def _known(expr: sympy.Expr, extents: Mapping[str, int | None]) -> sympy.Expr:
    subs = {
        s: sympy.Integer(v)
        for s in expr.free_symbols
        if s.is_positive and (v := extents.get(str(s))) is not None
    }
    return sympy.expand(expr.xreplace(subs))


def _int(a: sympy.Expr, extents: Mapping[str, int | None]) -> int | None:
    a = _known(a, extents)
    return int(a) if a.is_Integer else None
