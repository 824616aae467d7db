"""The abstract values of the empty-tile proof: intervals with a NaN flag, two tags.

A value :class:`Iv` stands for every float in ``[lo, hi]`` (bounds may be infinite), NaN too
when ``nan``.  Two tags make the proof relational where intervals alone cannot:

* ``old``: the value *is* the unchanged previous value of that loop-carried tensor (the proof
  that a trailing empty tile leaves the state as it was);
* ``tainted``: the value may differ between a run that evaluated the leading empty tiles and
  one that skipped them (the proof that the first tile with a point resets what the empty
  ones left behind).  A constant is never tainted.

Floats are those of the kernels (f32): ``exp(x)`` is exactly 0 for ``x <= -104``, which is
what makes a finite fill such as ``-1e30`` as good as ``-inf`` under a running max.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

INF = math.inf
EXP_UNDERFLOW = -104.0  # f32 exp (and exp2 of x*log2(e)) is exactly 0 below this


@dataclass(frozen=True)
class Iv:
    lo: float = -INF
    hi: float = INF
    nan: bool = True
    old: str = ""
    tainted: bool = False

    @property
    def const(self) -> bool:
        return self.lo == self.hi and not self.nan

    @property
    def finite(self) -> bool:
        return not self.nan and self.lo > -INF and self.hi < INF

    def is_(self, c: float) -> bool:
        return self.const and self.lo == c

    def clean(self) -> Iv:
        return Iv(self.lo, self.hi, self.nan)

    def __str__(self) -> str:
        return f"[{self.lo:g}, {self.hi:g}]" + (" or NaN" if self.nan else "")


TOP = Iv()


def const(v: float) -> Iv:
    if math.isnan(v):
        return Iv(INF, -INF, True)  # NaN only
    return Iv(v, v, False)


def span(lo: float, hi: float, nan: bool = False, tainted: bool = False) -> Iv:
    return Iv(lo, hi, nan, "", tainted)


def join(a: Iv, b: Iv) -> Iv:
    """Either value (a fill or a computed point, say): the hull of both ranges."""
    if a == b:
        return a
    lo, hi = min(a.lo, b.lo), max(a.hi, b.hi)
    return Iv(lo, hi, a.nan or b.nan, "", a.tainted or b.tainted)


def runs(a: Iv, b: Iv) -> Iv:
    """The value in one of two runs: tainted unless both runs hold the same constant."""
    if a == b and a.const:
        return a
    return replace(join(a, b), tainted=True)


def _hull(vals: Sequence[float], nan: bool, tainted: bool) -> Iv:
    if any(math.isnan(v) for v in vals):
        nan = True
        vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return Iv(-INF, INF, True, "", tainted)
    r = Iv(min(vals), max(vals), nan, "", tainted)
    return r.clean() if r.const and not tainted else r


def _corners(fn: Callable[[float, float], float], a: Iv, b: Iv) -> list[float]:
    out = []
    for x in (a.lo, a.hi):
        for y in (b.lo, b.hi):
            try:
                out.append(fn(x, y))
            except (OverflowError, ZeroDivisionError):
                out.append(math.nan)
    return out


def add(a: Iv, b: Iv) -> Iv:
    if b.is_(0.0):
        return a
    if a.is_(0.0):
        return b
    return _hull(_corners(lambda x, y: x + y, a, b), a.nan or b.nan, a.tainted or b.tainted)


def neg(a: Iv) -> Iv:
    return Iv(-a.hi, -a.lo, a.nan, "", a.tainted)


def sub(a: Iv, b: Iv) -> Iv:
    if b.is_(0.0):
        return a
    if a.old and a.old == b.old and a.finite:
        return const(0.0)
    return add(a, neg(b))


def mul(a: Iv, b: Iv) -> Iv:
    for x, y in ((a, b), (b, a)):
        if x.is_(1.0):
            return y
        if x.is_(0.0) and y.finite:
            return const(0.0)
    vals = _corners(lambda x, y: 0.0 if x == 0 or y == 0 else x * y, a, b)
    nan = a.nan or b.nan
    for x, y in ((a, b), (b, a)):
        if x.lo <= 0 <= x.hi and (math.isinf(y.lo) or math.isinf(y.hi)):
            nan = True  # 0 * inf
    return _hull(vals, nan, a.tainted or b.tainted)


def div(a: Iv, b: Iv) -> Iv:
    if b.is_(1.0):
        return a
    if b.nan or b.lo <= 0 <= b.hi:
        return Iv(-INF, INF, True, "", a.tainted or b.tainted)
    if a.is_(0.0):
        return const(0.0)
    a_inf = math.isinf(a.lo) or math.isinf(a.hi)
    nan = a.nan or (a_inf and (math.isinf(b.lo) or math.isinf(b.hi)))
    return _hull(_corners(lambda x, y: x / y, a, b), nan, a.tainted or b.tainted)


def binary(op: str, a: Iv, b: Iv) -> Iv:
    rule = {"+": add, "-": sub, "*": mul, "/": div}.get(op)
    if rule is None:
        return Iv(-INF, INF, True, "", a.tainted or b.tainted)
    return rule(a, b)


def _exp(x: float) -> float:
    if x <= EXP_UNDERFLOW:
        return 0.0
    try:
        return math.exp(x)
    except OverflowError:
        return INF


def _monotone(fn: Callable[[float], float], a: Iv) -> Iv:
    r = _hull([fn(a.lo), fn(a.hi)], a.nan, a.tainted)
    if r.const and not a.nan:
        return r.clean()  # every value of a gives the same result: the runs agree
    return r


def _tanh(x: float) -> float:
    return math.tanh(x)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + _exp(-x)) if x > -700 else 0.0


def _rsqrt(x: float) -> float:
    return 1 / math.sqrt(x)


def unary(fn: str, a: Iv) -> Iv:
    if fn == "exp":
        return _monotone(_exp, a)
    if fn == "tanh":
        return _monotone(_tanh, a)
    if fn == "sigmoid":
        return _monotone(_sigmoid, a)
    if fn == "relu":
        return _monotone(lambda x: max(x, 0.0), a)
    if fn == "abs":
        lo = 0.0 if a.lo <= 0 <= a.hi else min(abs(a.lo), abs(a.hi))
        return Iv(lo, max(abs(a.lo), abs(a.hi)), a.nan, "", a.tainted)
    if fn in ("log", "sqrt", "rsqrt") and a.lo > 0:
        f: Callable[[float], float] = {"log": math.log, "sqrt": math.sqrt, "rsqrt": _rsqrt}[fn]
        vals = [f(a.lo) if a.lo < INF else f(1e308), f(a.hi) if a.hi < INF else f(1e308)]
        if a.hi == INF:
            vals.append(INF if fn != "rsqrt" else 0.0)
        return _hull(vals, a.nan, a.tainted)
    return Iv(-INF, INF, True, "", a.tainted)


def extreme(fn: str, a: Iv, b: Iv) -> Iv:
    """``max``/``min`` of two values (NaN propagates, as in the kernels)."""
    big = fn == "max"
    ident = -INF if big else INF
    if a.is_(ident):
        return b
    if b.is_(ident):
        return a
    if a.old and a.old == b.old:
        return a
    for x, y in ((a, b), (b, a)):
        # y dominates x: the result is y whatever x is (NaN aside)
        if not x.nan and (x.hi <= y.lo if big else x.lo >= y.hi):
            return y
    f = max if big else min
    return Iv(f(a.lo, b.lo), f(a.hi, b.hi), a.nan or b.nan, "", a.tainted or b.tainted)


def reduce_value(op: str, body: Iv, count: float) -> Iv:
    """``op`` over ``count`` points (at least one) of values in ``body``."""
    if op in ("max", "min"):
        return body if not body.old else Iv(body.lo, body.hi, body.nan, "", body.tainted)
    if op == "sum":
        if body.is_(0.0):
            return body
        lo = body.lo * count if body.lo < 0 else body.lo
        hi = body.hi * count if body.hi > 0 else body.hi
        return Iv(lo, hi, body.nan, "", body.tainted)
    if op == "prod" and (body.is_(0.0) or body.is_(1.0)):
        return body
    if op == "prod" and body.lo >= 0 and body.hi <= 1:
        return Iv(0.0, 1.0, body.nan, "", body.tainted)
    return Iv(-INF, INF, True, "", body.tainted)
