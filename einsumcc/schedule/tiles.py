"""Classifying a loop's tiles at compile time: full, partial or empty.

A filter condition is affine: with the loop variable written in terms of the tile index
``t`` (``m = t*BLOCK + u`` for a streamed rank, ``m1 = t`` for an iterated one) it reads
``a*t + G <= 0`` where ``G`` depends on the other variables.  Over one program's box of
those variables ``G`` ranges in ``[Gmin, Gmax]`` (an affine function takes its extremes at
the corners), so the condition holds on the whole tile iff ``a*t + Gmax <= 0`` and fails on
the whole tile iff ``a*t + Gmin > 0``: both are half-lines of ``t``.  Intersecting them gives,
per program and in closed form, the range of tiles that are *full* (no mask code is emitted
for them), the range where the filtered node is *non-empty*, and partial tiles in between.
The boundary of a streamed rank whose extent is not a multiple of the tile is one more
condition, ``m < M``.

An empty tile (every point of the filtered node removed, so it holds its fill) is skipped
only when that provably leaves every loop-carried value unchanged.  The proof is an abstract
evaluation of the loop body over constants, "unchanged" values and "finite" values: for
``-inf`` scores under a running max, ``exp(-inf - RM) = 0`` and ``exp(RM - RM) = 1`` hold once
``RM`` is finite, which it is after the first tile when every row keeps at least one point
(the filter holds at the first point of the streamed rank).  Empty tiles before the first
non-empty one are evaluated unless the same proof holds from the initial values: that is
what makes a row that is empty everywhere give the oracle's result, NaN included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import sympy

from einsumcc.ir.bind import BINARY, UNARY, eval_constant
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
    Role,
    VarRef,
    var_symbol,
)
from einsumcc.schedule.contraction import product
from einsumcc.schedule.nodes import Node, NodeKind, NodeProgram, ReadKind
from einsumcc.schedule.schedule import (
    AxisRole,
    ConditionSite,
    Kernel,
    Loop,
    Schedule,
    TileClasses,
)

T = sympy.Symbol("$t", integer=True)  # the tile index of a loop (no rank variable has a "$")


def lane_symbol(var: str) -> sympy.Symbol:
    """The in-tile offset of a streamed variable: ``m = t*BLOCK + u_m``."""
    return sympy.Symbol(f"u.{var}", integer=True, nonnegative=True)


def index_symbol(var: str) -> sympy.Symbol:
    """A batch variable's index in one program."""
    return sympy.Symbol(f"idx.{var}", integer=True, nonnegative=True)


def lo_symbol(var: str) -> sympy.Symbol:
    return sympy.Symbol(f"lo.{var}", integer=True)


def hi_symbol(var: str) -> sympy.Symbol:
    return sympy.Symbol(f"hi.{var}", integer=True)


def as_le_zero(c: Condition) -> list[sympy.Expr]:
    """An integer condition as expressions that must be <= 0 ([] for ``==``/``!=``)."""
    lhs, rhs = c.lhs, c.rhs
    if c.op == "<=":
        return [lhs - rhs]
    if c.op == "<":
        return [lhs - rhs + 1]
    if c.op == ">=":
        return [rhs - lhs]
    if c.op == ">":
        return [rhs - lhs + 1]
    return []


def _extent(kernel: Kernel, rank: str, extents: Mapping[str, int | None]) -> sympy.Expr:
    n = extents.get(rank)
    return sympy.Integer(n) if n is not None else sympy.Symbol(rank, integer=True, positive=True)


def _known(expr: sympy.Expr, extents: Mapping[str, int | None]) -> sympy.Expr:
    subs = {
        s: extents[str(s)]
        for s in expr.free_symbols
        if str(s) in extents and extents[str(s)] is not None and s.is_positive
    }
    return sympy.expand(
        expr.xreplace({k: sympy.Integer(v) for k, v in subs.items() if v is not None})
    )


@dataclass(frozen=True)
class HalfLine:
    """``t < value`` (upper) or ``t >= value`` (lower)."""

    upper: bool
    value: sympy.Expr


@dataclass(frozen=True)
class Linear:
    """One ``a*t + G <= 0`` with ``G`` in ``[gmin, gmax]`` for a program."""

    a: sympy.Expr
    gmin: sympy.Expr
    gmax: sympy.Expr

    @property
    def full(self) -> HalfLine:
        if self.a.is_positive:
            return HalfLine(True, sympy.floor(-self.gmax / self.a) + 1)
        return HalfLine(False, sympy.ceiling(self.gmax / -self.a))

    @property
    def nonempty(self) -> HalfLine:
        if self.a.is_positive:
            return HalfLine(True, sympy.floor(-self.gmin / self.a) + 1)
        return HalfLine(False, sympy.ceiling(self.gmin / -self.a))


def linearize(
    expr: sympy.Expr, kernel: Kernel, loop: Loop, extents: Mapping[str, int | None]
) -> Linear | None:
    """``expr <= 0`` as a function of the tile index, or None when it cannot be classified."""
    ax = kernel.axis(loop.var)
    x = var_symbol(loop.var)
    if ax.role is AxisRole.STREAM:
        expr = expr.xreplace({x: ax.block * T + lane_symbol(loop.var)})
    else:
        expr = expr.xreplace({x: T})
    expr = _known(sympy.expand(expr), extents)
    a = sympy.expand(expr.coeff(T, 1))
    if a == 0 or not (a.is_positive or a.is_negative):
        return None
    rest = sympy.expand(expr - a * T)
    gmin: sympy.Expr = sympy.Integer(0)
    gmax: sympy.Expr = sympy.Integer(0)
    const = rest
    for sym in sorted(rest.free_symbols, key=str):
        name = str(sym)
        if name.startswith("u."):
            lo, hi = sympy.Integer(0), sympy.Integer(ax.block - 1)
        else:
            if not any(v.var == name for v in kernel.axes):
                continue  # an extent
            v = kernel.axis(name)
            if v.role is AxisRole.GRID and v.lanes:
                lo, hi = lo_symbol(name), hi_symbol(name)
            elif v.role is AxisRole.GRID:
                lo = hi = index_symbol(name)
            elif not v.lanes:
                lo = hi = sympy.Integer(0)
            else:
                lo, hi = sympy.Integer(0), _extent(kernel, v.rank, extents) - 1
        coeff = sympy.expand(rest.coeff(sym, 1))
        if coeff.free_symbols & {s for s in rest.free_symbols if not s.is_positive}:
            return None  # not affine
        if coeff.is_nonnegative:
            gmin, gmax = gmin + coeff * lo, gmax + coeff * hi
        elif coeff.is_nonpositive:
            gmin, gmax = gmin + coeff * hi, gmax + coeff * lo
        else:
            return None
        const = const - coeff * sym
    const = sympy.expand(const)
    if any(not s.is_positive for s in const.free_symbols):
        return None
    return Linear(a, sympy.expand(gmin + const), sympy.expand(gmax + const))


def loop_count(kernel: Kernel, loop: Loop, extents: Mapping[str, int | None]) -> sympy.Expr:
    ax = kernel.axis(loop.var)
    n = _extent(kernel, ax.rank, extents)
    if ax.role is AxisRole.STREAM:
        return sympy.ceiling(n / ax.block)
    return n


@dataclass(frozen=True)
class Segments:
    """Per-program loop bounds: partial ``[start, full_lo)``, full ``[full_lo, full_hi)``,
    partial ``[full_hi, end)``; ``count`` iterations in all.  Expressions of extents and of
    the per-program symbols ``lo_v``/``hi_v`` (tiled grid variables) and ``v`` (batch)."""

    count: sympy.Expr
    start: sympy.Expr
    full_lo: sympy.Expr
    full_hi: sympy.Expr
    end: sympy.Expr


def segments(kernel: Kernel, loop: Loop, extents: Mapping[str, int | None]) -> Segments:
    tiles = loop.tiles
    n = loop_count(kernel, loop, extents)
    lower_full: list[sympy.Expr] = []
    upper_full: list[sympy.Expr] = []
    lower_ne: list[sympy.Expr] = []
    upper_ne: list[sympy.Expr] = []
    exprs: list[tuple[str | None, sympy.Expr]] = []
    for site in tiles.classified:
        exprs.extend((site.node, e) for e in as_le_zero(site.condition))
    if tiles.boundary:
        ax = kernel.axis(loop.var)
        exprs.append((None, var_symbol(loop.var) - _extent(kernel, ax.rank, extents) + 1))
    for node, e in exprs:
        lin = linearize(e, kernel, loop, extents)
        assert lin is not None, e
        full = lin.full
        (upper_full if full.upper else lower_full).append(full.value)
        if node is not None and node == tiles.filtered:
            ne = lin.nonempty
            (upper_ne if ne.upper else lower_ne).append(ne.value)
    a = sympy.Max(0, *lower_ne) if lower_ne else sympy.Integer(0)
    d = sympy.Min(n, *upper_ne) if upper_ne else n
    start = a if tiles.skip_leading else sympy.Integer(0)
    end = d if tiles.skip_trailing else n
    b = sympy.Max(start, *lower_full) if lower_full else start
    c = sympy.Min(end, *upper_full) if upper_full else end
    full_lo = sympy.Min(b, end)
    full_hi = sympy.Max(full_lo, c)
    return Segments(n, start, full_lo, full_hi, end)


# ---------------------------------------------------------------- classification


def classify_loops(s: Schedule) -> Schedule:
    """``s`` with every loop's :class:`TileClasses` filled in."""
    prog = s.program
    assert prog is not None
    extents = dict(s.extents)
    kernels = []
    for k in s.kernels:
        loops = tuple(replace(lp, tiles=classify(prog, k, lp, extents)) for lp in k.loops)
        kernels.append(replace(k, loops=loops))
    return replace(s, kernels=tuple(kernels))


def classify(
    prog: NodeProgram, kernel: Kernel, loop: Loop, extents: Mapping[str, int | None]
) -> TileClasses:
    classified: list[ConditionSite] = []
    masked: list[ConditionSite] = []
    for key in loop.nodes:
        n = prog.node(key)
        for c in n.conditions:
            site = ConditionSite(key, c)
            forms = as_le_zero(c)
            ok = bool(forms) and loop.var in c.variables
            if ok:
                ok = all(linearize(e, kernel, loop, extents) is not None for e in forms)
            (classified if ok else masked).append(site)
    ax = kernel.axis(loop.var)
    boundary = ax.role is AxisRole.STREAM and (ax.extent is None or ax.extent % ax.block != 0)
    filtered_nodes = list(dict.fromkeys(site.node for site in classified))
    tiles = TileClasses(tuple(classified), tuple(masked), boundary)
    if len(filtered_nodes) != 1:
        if filtered_nodes:
            tiles = replace(
                tiles,
                proof="several nodes are filtered along the loop: empty tiles are evaluated",
            )
        return tiles
    f = prog.node(filtered_nodes[0])
    # a SURVIVE node's tiles are empty exactly when its statement's are
    target = f.statement if f.kind is NodeKind.SURVIVE else f.key
    prover = _Prover(prog, kernel, loop, extents, target)
    lead, lead_why = prover.identity("leading")
    trail, trail_why = prover.identity("trailing")
    proof = f"leading empty tiles of {target}: {lead_why}; trailing: {trail_why}"
    return replace(tiles, filtered=f.key, skip_leading=lead, skip_trailing=trail, proof=proof)


# ---------------------------------------------------------------- the identity proof


@dataclass(frozen=True)
class _V:
    """An abstract value: a constant, the unchanged old value of a tensor, finite, unknown."""

    kind: str  # const | old | finite | top
    value: float = 0.0
    tensor: str = ""
    finite: bool = False

    @property
    def is_finite(self) -> bool:
        if self.kind == "const":
            return math.isfinite(self.value)
        return self.kind == "finite" or (self.kind == "old" and self.finite)


TOP = _V("top")
FINITE = _V("finite")


def _const(v: float) -> _V:
    return _V("const", float(v))


def _is(v: _V, c: float) -> bool:
    return v.kind == "const" and (v.value == c or (math.isnan(c) and math.isnan(v.value)))


class _Prover:
    def __init__(
        self,
        prog: NodeProgram,
        kernel: Kernel,
        loop: Loop,
        extents: Mapping[str, int | None],
        filtered: str,
    ) -> None:
        self.prog = prog
        self.c = prog.cascade
        self.kernel = kernel
        self.loop = loop
        self.extents = extents
        self.filtered = filtered  # the statement (tensor) whose tiles are empty
        self.in_loop = set(loop.nodes)

    # ------------------------------------------------------------ facts
    def constant(self, e: Expr) -> float | None:
        known = {k: v for k, v in self.extents.items() if v is not None}
        try:
            return eval_constant(e, known, {p.name: p.value for p in self.c.params})
        except (KeyError, RecursionError):
            return None

    def finite_safe(self, e: Expr) -> bool:
        """``e`` is finite wherever its reads are (no exp, log, division or overflow)."""
        if isinstance(e, Const):
            return math.isfinite(float(e.value))
        if isinstance(e, ParamRef):
            v = self.constant(e)
            return v is not None and math.isfinite(v)
        if isinstance(e, ExtentRef | VarRef):
            return True
        if isinstance(e, Access):
            return e.tensor in {t.name for t in self.c.inputs}
        if isinstance(e, Neg):
            return self.finite_safe(e.operand)
        if isinstance(e, Binary):
            return e.op in "+-*" and self.finite_safe(e.lhs) and self.finite_safe(e.rhs)
        if isinstance(e, Call):
            return e.fn in {"max", "min", "abs", "relu", "tanh", "sigmoid"} and all(
                self.finite_safe(a) for a in e.args
            )
        return False

    def rows_nonempty(self, f: Node, keep: set[str]) -> bool:
        """Every point of ``keep`` has a surviving point of ``f``: the one with every other
        variable at 0 (the first point of the streamed rank)."""
        for c in f.conditions:
            for e in as_le_zero(c) or [None]:
                if e is None:
                    return False
                e = e.xreplace({var_symbol(v): 0 for v in c.variables if v not in keep})
                e = _known(sympy.expand(e), self.extents)
                worst: sympy.Expr = e
                for sym in sorted(e.free_symbols, key=str):
                    if str(sym) not in keep:
                        continue
                    coeff = sympy.expand(e.coeff(sym, 1))
                    rank = self.c.var_ranks[str(sym)]
                    hi = _extent(self.kernel, rank, self.extents) - 1
                    if coeff.is_nonnegative:
                        worst = worst.xreplace({sym: hi})
                    elif coeff.is_nonpositive:
                        worst = worst.xreplace({sym: 0})
                    else:
                        return False
                if sympy.simplify(worst).is_nonpositive is not True:
                    return False
        return True

    def filtered_finite(self, f: Node) -> bool:
        return f.kind is not NodeKind.SURVIVE and self.finite_safe(f.body)

    def finite_done(self, n: Node) -> bool:
        """A max over the loop of the filtered tensor: finite once every row has a point."""
        if n.kind is not NodeKind.REDUCE or n.op not in ("max", "min") or n.mask:
            return False
        if not isinstance(n.body, Access):
            return False
        src = self.prog.producer(n.body.tensor)
        if src is None or src.key != self.filtered:
            return False
        if self.prog.read_kind(n.body, n) is not ReadKind.DIRECT:
            return False
        return self.filtered_finite(src) and self.rows_nonempty(src, set(n.variables))

    def finite_state(self, n: Node) -> bool:
        """``T[x + 1] = max(T[x], Y)`` with ``Y`` the filtered tensor or a max over it."""
        if not (isinstance(n.body, Call) and n.body.fn == "max"):
            return False
        args = n.body.args
        own = [
            a
            for a in args
            if isinstance(a, Access)
            and a.tensor == n.key
            and self.prog.read_kind(a, n) is ReadKind.CARRIED
        ]
        other = [a for a in args if a not in own]
        if len(own) != 1 or len(other) != 1 or not isinstance(other[0], Access):
            return False
        y = self.prog.producer(other[0].tensor)
        if y is None:
            return False
        keep = set(n.variables) - {self.loop.var}
        if y.key == self.filtered:
            return self.filtered_finite(y) and self.rows_nonempty(y, keep)
        if (
            y.kind is NodeKind.REDUCE
            and y.op == "max"
            and not y.mask
            and isinstance(y.body, Access)
        ):
            src = self.prog.producer(y.body.tensor)
            return (
                src is not None
                and src.key == self.filtered
                and self.filtered_finite(src)
                and self.rows_nonempty(src, keep)
            )
        return False

    # ------------------------------------------------------------ abstract evaluation
    def identity(self, side: str) -> tuple[bool, str]:
        if self.loop.stores:
            return False, "evaluated (the loop writes " + ", ".join(self.loop.stores) + ")"
        env: dict[str, _V] = {}
        old: dict[str, _V] = {}
        for key in self.loop.carried:
            n = self.prog.node(key)
            if side == "leading":
                inits = self.c.inits_of(key)
                v = self.constant(inits[0].value) if inits else None
                old[key] = _const(v) if v is not None else TOP
            else:
                old[key] = _V("old", tensor=key, finite=self.finite_state(n))
        for key in self.loop.nodes:
            n = self.prog.node(key)
            value = self.node(n, env, old)
            if key in self.loop.accumulators:
                ident = {"sum": 0.0, "max": -math.inf, "min": math.inf, "prod": 1.0}.get(
                    n.op or "", 0.0
                )
                if n.kind is NodeKind.SURVIVE:
                    ident = 0.0
                if not _is(value, ident):
                    return False, f"evaluated ({key} would change there)"
            env[key] = value
        for key in self.loop.carried:
            new = env[key]
            before = old[key]
            same = (
                (new.kind == "old" and new.tensor == key)
                if side == "trailing"
                else (before.kind == "const" and _is(new, before.value))
            )
            if not same:
                return False, f"evaluated ({key} would change there)"
        names = ", ".join(self.loop.carried + self.loop.accumulators) or "nothing"
        return True, f"skipped (they leave {names} unchanged)"

    def node(self, n: Node, env: dict[str, _V], old: dict[str, _V]) -> _V:
        if n.statement == self.filtered and n.kind is NodeKind.SURVIVE:
            return _const(0.0)
        if n.key == self.filtered:
            fill = self.fill(n)
            if n.guard or n.survive is not None:
                return _const(fill) if fill is not None else TOP
            # a reduction whose own points are all removed contributes its identity
            return _const(
                {"sum": 0.0, "max": -math.inf, "min": math.inf, "prod": 1.0}[n.op or "sum"]
            )
        if n.kind is NodeKind.SURVIVE:
            return TOP
        if n.kind is NodeKind.MAP:
            value = self.expr(n.body, n, env, old)
        else:
            value = self.reduce(n, env, old)
        if n.guard or n.survive is not None:
            fill = self.fill(n)
            return value if fill is not None and _is(value, fill) else TOP
        return value

    def fill(self, n: Node) -> float | None:
        if not n.top:
            return None
        return self.constant(self.c.tensor(n.key).fill)

    def reduce(self, n: Node, env: dict[str, _V], old: dict[str, _V]) -> _V:
        if n.op == "sum":
            prod = product(n.body, frozenset(n.reduced))
            factors = [self.expr(f.expr, n, env, old) for f in prod.inner + prod.outer]
            if any(_is(f, 0.0) for f in factors) and all(
                f.is_finite for f in factors if not _is(f, 0.0)
            ):
                return _const(0.0)
        body = self.expr(n.body, n, env, old)
        if n.mask:
            ident = {"sum": 0.0, "max": -math.inf, "min": math.inf, "prod": 1.0}[n.op or "sum"]
            return body if _is(body, ident) else TOP
        if body.kind == "const":
            if n.op in ("max", "min"):
                return body
            if n.op == "sum" and body.value == 0.0:
                return body
            if n.op == "prod" and body.value in (0.0, 1.0):
                return body
            return TOP
        if body.kind == "old" and n.op in ("max", "min"):
            return body
        return TOP

    def read(self, a: Access, reader: Node, env: dict[str, _V], old: dict[str, _V]) -> _V:
        p = self.prog.producer(a.tensor)
        if p is None:
            t = self.c.tensor(a.tensor)
            return FINITE if t.role is Role.INPUT else TOP
        if p.key in self.in_loop:
            kind = self.prog.read_kind(a, reader)
            if kind is ReadKind.CARRIED:
                return old.get(p.key, TOP)
            if kind is ReadKind.INIT:
                inits = self.c.inits_of(p.key)
                v = self.constant(inits[0].value) if inits else None
                return _const(v) if v is not None else TOP
            return env.get(p.key, TOP)
        # a value computed before this loop
        return FINITE if self.finite_done(p) else TOP

    def expr(self, e: Expr, reader: Node, env: dict[str, _V], old: dict[str, _V]) -> _V:
        if isinstance(e, Const):
            return _const(float(e.value))
        if isinstance(e, ParamRef | ExtentRef):
            v = self.constant(e)
            return _const(v) if v is not None else FINITE
        if isinstance(e, VarRef):
            return FINITE
        if isinstance(e, Access):
            return self.read(e, reader, env, old)
        if isinstance(e, Neg):
            x = self.expr(e.operand, reader, env, old)
            if x.kind == "const":
                return _const(-x.value)
            return FINITE if x.kind == "finite" else TOP
        if isinstance(e, Binary):
            return _binary(
                e.op, self.expr(e.lhs, reader, env, old), self.expr(e.rhs, reader, env, old)
            )
        if isinstance(e, Call):
            args = [self.expr(a, reader, env, old) for a in e.args]
            if all(a.kind == "const" for a in args):
                fn = UNARY.get(e.fn)
                import numpy as np

                with np.errstate(all="ignore"):
                    if fn is not None:
                        return _const(float(fn(np.float64(args[0].value))))
                    return _const(
                        float(BINARY[e.fn](np.float64(args[0].value), np.float64(args[1].value)))
                    )
            if e.fn in ("max", "min") and len(args) == 2:
                ident = -math.inf if e.fn == "max" else math.inf
                a, b = args
                if _is(a, ident):
                    return b
                if _is(b, ident):
                    return a
                if a.kind == "old" and b.kind == "old" and a.tensor == b.tensor:
                    return a
            return TOP
        return TOP


def _binary(op: str, a: _V, b: _V) -> _V:
    if a.kind == "const" and b.kind == "const":
        return _fold(op, a.value, b.value)
    rule = _BINARY_RULES.get(op)
    return rule(a, b) if rule is not None else TOP


def _fold(op: str, a: float, b: float) -> _V:
    import numpy as np

    with np.errstate(all="ignore"):
        fa, fb = np.float64(a), np.float64(b)
        r = {"+": fa + fb, "-": fa - fb, "*": fa * fb, "/": fa / fb}[op]
    return _const(float(r))


def _finite_or_top(a: _V, b: _V) -> _V:
    return FINITE if a.is_finite and b.is_finite else TOP


def _add(a: _V, b: _V) -> _V:
    if _is(a, 0.0):
        return b
    if _is(b, 0.0):
        return a
    for x, y in ((a, b), (b, a)):
        if x.kind == "const" and math.isinf(x.value) and y.is_finite:
            return x
    return _finite_or_top(a, b)


def _sub(a: _V, b: _V) -> _V:
    if _is(b, 0.0):
        return a
    if a.kind == "old" and b.kind == "old" and a.tensor == b.tensor and a.finite:
        return _const(0.0)
    if a.kind == "const" and math.isinf(a.value) and b.is_finite:
        return a
    if b.kind == "const" and math.isinf(b.value) and a.is_finite:
        return _const(-b.value)
    return _finite_or_top(a, b)


def _mul(a: _V, b: _V) -> _V:
    for x, y in ((a, b), (b, a)):
        if _is(x, 1.0):
            return y
        if _is(x, 0.0) and y.is_finite:
            return _const(0.0)
    return _finite_or_top(a, b)


def _div(a: _V, b: _V) -> _V:
    return a if _is(b, 1.0) else TOP


_BINARY_RULES = {"+": _add, "-": _sub, "*": _mul, "/": _div}
