"""The catalog of rewrites.  Each is a small function with its precondition in its docstring;
each returns what it built and the identity it relies on, checked with sympy (a certificate).

The rewrites work on :class:`~einsumcc.derive.symbolic.Symbolic` expressions: a statistic is
a symbol, an expression *streams* when it varies along the rank, and it is *blocked* when it
needs a finished statistic.  A pass can be removed when no statistic's body is blocked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy

from einsumcc.derive.symbolic import Stat, Symbolic
from einsumcc.ir.nodes import Condition


@dataclass(frozen=True)
class Certificate:
    """An identity a rewrite relies on, and whether sympy proved it."""

    identity: str
    holds: bool

    def __str__(self) -> str:
        return f"{'proved' if self.holds else 'NOT PROVED'}: {self.identity}"


def prove(lhs: sympy.Expr, rhs: sympy.Expr, text: str = "") -> Certificate:
    """``lhs == rhs`` for all values of the symbols, checked with sympy."""
    diff = sympy.expand(sympy.powsimp(lhs - rhs, combine="exp"), power_exp=True)
    holds = diff == 0 or sympy.simplify(diff) == 0
    text = text or f"{sympy.sstr(lhs)} == {sympy.sstr(rhs)}"
    return Certificate(re.sub(r"#\d+", "", text), bool(holds))


@dataclass(frozen=True)
class RunningMax:
    """A max (or min) over the rank computed as a recurrence from ``init``."""

    op: str
    body: sympy.Expr
    variables: tuple[str, ...]
    where: tuple[Condition, ...]
    init: sympy.Expr
    origin: str
    final: sympy.Symbol = field(compare=False, hash=False)


@dataclass(frozen=True)
class Accumulator:
    """A running sum of ``body * exp(exponent - R)``; with a reference running max ``ref``,
    the sum is kept scaled by ``exp(-R)`` and corrected by ``exp(R_old - R_new)`` (FuseMax
    Cascade 5); without one it is a plain running sum."""

    body: sympy.Expr
    exponent: sympy.Expr | None
    ref: RunningMax | None
    variables: tuple[str, ...]
    where: tuple[Condition, ...]
    origin: str
    final: sympy.Symbol = field(compare=False, hash=False)
    rate: sympy.Expr = 1  # exp(exponent - rate * R): a temperature


@dataclass(frozen=True)
class Moments:
    """A mean and a centered second moment computed together (Chan et al.'s parallel form)."""

    body: sympy.Expr
    variables: tuple[str, ...]
    count: sympy.Expr
    origin: str
    mean: sympy.Symbol = field(compare=False, hash=False)
    m2: sympy.Symbol = field(compare=False, hash=False)


@dataclass(frozen=True)
class Term:
    """``coef * (sum over the fiber of the accumulator)``; ``acc`` None: a count."""

    coef: sympy.Expr
    acc: Accumulator | None


@dataclass(frozen=True)
class SumTerm:
    """One term of a sum's body: ``coef * body * exp(mixed)``; ``mixed`` needs a statistic."""

    coef: sympy.Expr
    body: sympy.Expr
    mixed: sympy.Expr | None


def division_deferral(sym: Symbolic, stat: Stat) -> tuple[list[SumTerm], Certificate] | None:
    """Linearity of the sum over a linear combination (FuseMax §III-C Cascade 2, §IV-D).

    Precondition: ``stat`` is a sum whose body expands into terms ``c_i * h_i`` where ``c_i``
    does not vary along the rank (it may hold finished statistics: a divisor ``1 / SD``, a
    mean) and ``h_i`` varies along it without needing a finished statistic, except through
    one factor ``exp(s + d)`` (left to :func:`running_max`).  Then
    ``sum_m sum_i c_i h_i(m) = sum_i c_i sum_m h_i(m)``: the division is deferred past the sum.
    """
    if stat.op != "sum":
        return None
    expanded = sympy.expand(stat.body, deep=False, power_exp=False, log=False)
    out: list[SumTerm] = []
    for term in sympy.Add.make_args(expanded):
        term = sympy.powsimp(term, combine="exp", deep=False)
        coef, body = sympy.Integer(1), sympy.Integer(1)
        mixed: sympy.Expr | None = None
        for f in sympy.Mul.make_args(term):
            if not sym.streams(f):
                coef *= f
            elif not sym.blocked(f):
                body *= f
            elif isinstance(f, sympy.exp) and mixed is None:
                mixed = f.args[0]
            else:
                return None
        out.append(SumTerm(coef, body, mixed))
    rebuilt = sum(
        (s.coef * s.body * (sympy.exp(s.mixed) if s.mixed is not None else 1) for s in out),
        sympy.Integer(0),
    )
    cert = prove(stat.body, rebuilt, "sum_m body(m) == sum_i c_i * sum_m h_i(m) (linearity)")
    return out, cert


def max_like(sym: Symbolic, x: sympy.Expr) -> tuple[Stat, sympy.Expr] | None:
    """``(G, c)`` when ``x`` is a finished max ``G`` of a streaming body (``c = -oo``) or
    ``max(G, c)`` with ``c`` a constant (a sink logit)."""
    if x in sym.stats:
        g = sym.stats[x]
        if g.op == "max" and not sym.blocked(g.body):
            return g, -sympy.oo
        return None
    if not isinstance(x, sympy.Max):
        return None
    found = [a for a in x.args if a in sym.stats]
    rest = [a for a in x.args if a not in sym.stats]
    if len(found) != 1 or any(sym.streams(r) or sym.blocked(r) for r in rest):
        return None
    inner = max_like(sym, found[0])
    if inner is None:
        return None
    return inner[0], sympy.Max(*rest)


def sink_fold(sym: Symbolic, c: sympy.Expr) -> tuple[sympy.Expr, Certificate] | None:
    """Fold a sink logit into the running max's ``init``.

    Precondition: the subtracted max is ``max(G, c)`` with ``c`` a constant expression
    (numbers, params, extents: what an ``init`` may hold).  Then starting the running max at
    ``c`` ends it at ``max(G, c)``, because max is associative and commutative.
    """
    if any(s in sym.atoms and type(sym.atoms[s]).__name__ != "ParamRef" for s in c.free_symbols):
        return None
    a, b = sympy.symbols("a b", real=True)
    return c, prove(
        sympy.Max(sympy.Max(c, a), b),
        sympy.Max(sympy.Max(a, b), c),
        "max(max(c, a), b) == max(max(a, b), c) (the sink starts the running max)",
    )


def running_max(
    sym: Symbolic, arg: sympy.Expr
) -> tuple[sympy.Expr, Stat, sympy.Expr, sympy.Expr, list[Certificate], sympy.Expr] | None:
    """Running max with exp correction factors (FuseMax Cascade 5, FlashAttention-2).

    Precondition: ``arg = s + d`` where ``s`` varies along the rank and needs no finished
    statistic, and ``d`` does not vary along it and holds ``-X`` for ``X`` a finished max
    (``max{m} t(m)``, ``t`` streaming) or ``max(max{m} t(m), c)``.  Then, with ``R`` the
    running max of ``t`` (started at ``c``), ``exp(s + d) = exp(s - R) * exp(R + d)``, every
    partial sum kept under ``exp(-R)`` is corrected by ``exp(R_old - R_new)`` when ``R``
    grows, and at the end ``R = X``.  A constant rate ``c`` (``exp((x - G) / T)``) scales
    ``R`` and the correction: ``exp(s - cR)``, ``exp(c (R_old - R_new))``.  Returns
    ``(s, G, init, rest, certificates, c)`` with ``rest = d + cX``.
    """
    s_terms, d_terms = [], []
    for t in sympy.Add.make_args(sympy.expand(arg, deep=False, power_exp=False, log=False)):
        if sym.streams(t):
            if sym.blocked(t):
                return None
            s_terms.append(t)
        else:
            d_terms.append(t)
    s = sympy.Add(*s_terms)
    for t in d_terms:
        found = _scaled_max(sym, t)
        if found is None:
            continue
        g, c, rate, _ = found
        init: sympy.Expr = -sympy.oo
        certs: list[Certificate] = []
        if c != -sympy.oo:
            folded = sink_fold(sym, c)
            if folded is None:
                # X = max(G, c) with c not constant (an init is): the running max ends at G
                rest = sympy.Add(*d_terms) + rate * g.symbol
                return s, g, init, rest, _exp_identities(s, rate), rate
            init, cert = folded
            certs.append(cert)
        rest = sympy.Add(*d_terms) - t
        return s, g, init, rest, certs + _exp_identities(s, rate), rate
    return None


def _scaled_max(
    sym: Symbolic, t: sympy.Expr
) -> tuple[Stat, sympy.Expr, sympy.Expr, sympy.Expr] | None:
    """``(G, c, rate, X)`` when ``t = -rate * X``, ``X`` max-like (:func:`max_like`) and
    ``rate`` constant along the rank (a temperature: ``exp((x - G) / T)``)."""
    for x in sympy.Mul.make_args(t):
        found = max_like(sym, x)
        if found is None:
            continue
        rate = sympy.simplify(-t / x)
        if sym.streams(rate) or sym.blocked(rate) or rate == 0:
            continue
        return found[0], found[1], rate, x
    return None


def _exp_identities(s: sympy.Expr, rate: sympy.Expr = 1) -> list[Certificate]:
    """exp(s - R) exp(R - X) == exp(s - X) (the end), exp(s - R0) exp(R0 - R1) == exp(s - R1)
    (the correction factor); with a rate c, exp(s - cR) exp(c (R - X)) == exp(s - cX)."""
    r0, r1, x = sympy.symbols("R_old R_new X", real=True)
    return [
        prove(sympy.exp(s - rate * r1) * sympy.exp(rate * (r1 - x)), sympy.exp(s - rate * x)),
        prove(sympy.exp(s - rate * r0) * sympy.exp(rate * (r0 - r1)), sympy.exp(s - rate * r1)),
    ]


def moments(
    sym: Symbolic, stat: Stat
) -> tuple[Stat, sympy.Expr, sympy.Expr, list[Certificate]] | None:
    """Mean and centered second moment in one pass (Welford; Chan et al.'s parallel form).

    Precondition: ``stat`` is ``sum{m} q * (t(m) - mu)**2`` (as a polynomial) where
    ``mu = A / N``, ``A = sum{m} t(m)`` is a statistic over the same variables, ``N`` is the
    number of points of the fiber (no filter), ``t`` streams and ``q`` does not vary along
    the rank.  Then the pair (mean, M2) is a recurrence over tiles: with ``delta`` the
    difference of the tile's mean and the running mean, ``M2 += M2_tile + delta**2 n_a n_b / n``.
    Returns ``(A, N, q)``.
    """
    if stat.op != "sum" or stat.where or sym.masked(stat.body):
        return None
    for a in sorted(sym.stats_in(stat.body), key=str):
        mean = sym.stats[a]
        if mean.op != "sum" or mean.where or mean.variables != stat.variables:
            continue
        if sym.blocked(mean.body) or not sym.streams(mean.body):
            continue
        n = sym.count(stat.variables)
        mu = sympy.Dummy("mu")
        centered = stat.body.subs(a, n * mu)
        q = sympy.cancel(centered / (mean.body - mu) ** 2)
        if mu in q.free_symbols or sym.streams(q) or sym.stats_in(q):
            continue
        certs = [prove(centered, q * (mean.body - mu) ** 2, "body == q * (t - A/N)**2")]
        certs.append(_chan_identity())
        return mean, n, q, certs
    return None


def _chan_identity() -> Certificate:
    """Chan et al.: the M2 of two blocks from their means and M2s (checked on 2 + 3 points)."""
    xs = sympy.symbols("x0:5", real=True)
    a, b = xs[:2], xs[2:]

    def m2(vals: tuple[sympy.Symbol, ...]) -> sympy.Expr:
        mean = sum(vals, sympy.Integer(0)) / len(vals)
        return sum(((v - mean) ** 2 for v in vals), sympy.Integer(0))

    mean_a = sum(a, sympy.Integer(0)) / 2
    mean_b = sum(b, sympy.Integer(0)) / 3
    delta = mean_b - mean_a
    combined = m2(a) + m2(b) + delta**2 * 2 * 3 / 5
    return prove(m2(xs), combined, "M2(a ∪ b) == M2(a) + M2(b) + delta**2 * n_a * n_b / n")
