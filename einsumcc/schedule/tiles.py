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

from collections.abc import Mapping
from dataclasses import dataclass, replace

import sympy

from einsumcc.ir.nodes import Access, Compare, Condition, Expr, Logic, var_symbol
from einsumcc.schedule.identity import Prover
from einsumcc.schedule.nodes import NodeKind, NodeProgram
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
    if not filtered_nodes:
        filtered_nodes = [k for k in loop.nodes if prog.node(k).data]
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
    prover = Prover(prog, kernel, loop, extents, target)
    lead, lead_why = prover.identity("leading")
    trail, trail_why = prover.identity("trailing")
    proof = f"leading empty tiles of {target}: {lead_why}; trailing: {trail_why}"
    tiles = replace(tiles, filtered=f.key, skip_leading=lead, skip_trailing=trail, proof=proof)
    if data_tile_test(prog, kernel, loop) is None or (lead and trail):
        return tiles
    checked = Prover(prog, kernel, loop, extents, target, checked=True)
    ok_lead, why_lead = checked.identity("leading")
    ok_trail, why_trail = checked.identity("trailing")
    if not (ok_lead and ok_trail):
        return replace(tiles, proof=f"{proof}; with every row checked: {why_lead}, {why_trail}")
    return replace(
        tiles,
        data_skip=True,
        proof=(
            f"{proof}; at run time, once every row is checked to keep a point: every empty "
            f"tile of {target} skipped (its data filter's tile test or the affine classes)"
        ),
    )


@dataclass(frozen=True)
class DataTileTest:
    """A comparison of a data filter between a key-side id (``SEGK[m]``: reads the loop
    variable) and a row-side id (``SEGQ[p]``: does not); a tile where the two ranges of ids
    cannot meet holds no point of the filter."""

    key: Access
    row: Access
    op: str  # the comparison as ``key op row``


FLIP = {"==": "==", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def data_tile_test(prog: NodeProgram, kernel: Kernel, loop: Loop) -> DataTileTest | None:
    """The loop's one data filter that a per-tile min/max test can decide empty, if any: a
    top-level conjunct ``A[..] op B[..]`` of inputs (``op`` not ``!=``), ``A`` read at the
    loop's variables and ``B`` at none of them."""
    keys = [k for k in loop.nodes if prog.node(k).data]
    if len(keys) != 1:
        return None
    n = prog.node(keys[0])
    if not n.top or n.survive is not None or n.kind is NodeKind.SURVIVE or n.mask:
        return None
    stream = {
        v.var for v in kernel.axes if v.var == loop.var or same_rank(prog, kernel, loop, v.var)
    }
    parts: list[Expr] = []
    for d in n.data:
        parts.extend(d.parts if isinstance(d, Logic) and d.op == "and" else (d,))
    for d in parts:
        if not (isinstance(d, Compare) and d.op in FLIP):
            continue
        sides = [d.lhs, d.rhs]
        if not all(isinstance(x, Access) and prog.producer(x.tensor) is None for x in sides):
            continue
        vars_ = [
            {str(s) for ix in x.indices for s in ix.free_symbols}
            if isinstance(x, Access)
            else set()
            for x in sides
        ]
        on = [bool(v & stream) for v in vars_]
        a, b = sides
        assert isinstance(a, Access)
        assert isinstance(b, Access)
        if on == [True, False]:
            return DataTileTest(a, b, d.op)
        if on == [False, True]:
            return DataTileTest(b, a, FLIP[d.op])
    return None


def same_rank(prog: NodeProgram, kernel: Kernel, loop: Loop, var: str) -> bool:
    """``var`` runs over the loop's rank or another part of its split (``m0`` for ``m1``)."""
    c = prog.cascade
    rank = kernel.axis(loop.var).rank
    r = c.var_ranks.get(var)
    if r is None:
        return False
    if r == rank:
        return True
    return any(
        rank in {sp.parent, *sp.children} and r in {sp.parent, *sp.children} for sp in c.splits
    )
