"""The steady state: a loop's regular epochs are watched for a periodic state of the engine
(a *snapshot* of everything that can still influence the loop's body, relative to its
frontier and epoch); when one repeats, the engine jumps over the whole periods that remain,
moving every resource's state and adding the period's counters exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from einsumcc_sim.program import SimLoop
from einsumcc_sim.state import Carry, Coords, Period

if TYPE_CHECKING:
    from einsumcc_sim.engine import Engine


def label(lp: SimLoop) -> str:
    names = "x".join(v.upper() for v in lp.vars)
    return f"{lp.kind} loop over {names}" if names else f"{lp.kind}"


@dataclass
class Base:
    """A snapshot's epoch, frontier and counters, and the loop's run (a jump's start)."""

    e: int
    F: int
    counters: dict[str, float]
    run: Carry


class Watch:
    """The search for a periodic steady state in a loop's regular epochs: snapshots at a
    stride that doubles every 32 looks, at most 256 looks, compared with the earlier ones;
    when one repeats, the engine jumps over the periods that remain."""

    def __init__(self, reg_lo: int, reg_hi: int) -> None:
        self.reg_lo, self.reg_hi = reg_lo, reg_hi
        self.history: dict[Any, tuple[int, int, dict[str, float]]] = {}
        self.checks = 0
        self.stride = 1

    def due(self, e: int) -> bool:
        return (
            self.reg_lo <= e < self.reg_hi
            and self.reg_hi - e > 2
            and self.checks < 256
            and (e - self.reg_lo) % self.stride == 0
        )

    def look(self, eng: Engine, lp: SimLoop, coords: Coords, e: int, run: Carry) -> int:
        """Take a snapshot at epoch ``e`` if one is due; the epochs jumped over (0: none)."""
        if not self.due(e):
            return 0
        snap = snapshot(eng, lp, coords, e)
        self.checks += 1
        if self.checks % 32 == 0:
            self.stride *= 2  # a long transient: look less often
        if snap is None:
            return 0
        key, F = snap
        seen = self.history.get(key)
        if seen is not None:
            e0, F0, c0 = seen
            period, dt = e - e0, F - F0
            q = (self.reg_hi - e) // period
            if q > 0 and dt >= 0:
                jump(eng, lp, coords, q, period, dt, Base(e0, F0, c0, run))
                eng.periods.append(Period(label(lp), F0, F, period, q))
                self.history.clear()
                self.checks = 256
                return q * period
        self.history[key] = (e, F, dict(eng.c.values))
        return 0


def _rel(pre: Coords, pos: int, e: int) -> Coords:
    if len(pre) > pos and pre[pos] >= 0:
        return (*pre[:pos], pre[pos] - e, *pre[pos + 1 :])
    return pre


def _rel_carry(c: Carry, lp: SimLoop, pos: int, e: int) -> tuple[Any, ...]:
    """A carried run relative to epoch ``e`` of ``lp``: inside ``lp``, its coordinate at
    ``lp``'s position counts from ``e`` and its ranges of ``lp``'s variables (which follow
    from that coordinate) are left out."""
    if id(c.loop) not in lp.sub_loops or len(c.coords) <= pos:
        return (c.coords, tuple(sorted(c.ranges.items())), c.axes)
    mine = set(lp.vars)
    co = (*c.coords[:pos], c.coords[pos] - e, *c.coords[pos + 1 :])
    rg = tuple(sorted((v, r) for v, r in c.ranges.items() if v not in mine))
    axes = tuple((v, -1, -1, t) if v in mine else (v, lo, n, t) for v, lo, n, t in c.axes)
    return (co, rg, axes)


def _shift_carry(c: Carry, lp: SimLoop, pos: int, shift: int, outer: Carry) -> Carry:
    """``c`` moved ``shift`` epochs of ``lp`` (whose run is ``outer``) later."""
    if id(c.loop) not in lp.sub_loops or len(c.coords) <= pos:
        return c
    it = c.coords[pos] + shift
    co = (*c.coords[:pos], it, *c.coords[pos + 1 :])
    now = outer.sub(it)
    rg = dict(c.ranges)
    for v in lp.vars:
        rg[v] = now[v]
    axes = tuple(
        (v, now[v][0], now[v][1], t) if v in lp.vars else (v, lo, n, t) for v, lo, n, t in c.axes
    )
    return Carry(c.loop, co, rg, c.trips, axes)


def snapshot(eng: Engine, lp: SimLoop, coords: Coords, e: int) -> tuple[Any, int] | None:
    """The state that can still influence ``lp``'s body, relative to its frontier and
    to epoch ``e`` (None: no frontier yet); forgets what can no longer matter."""
    F = eng.frontier(lp)
    if F is None:
        return None
    pos = len(coords)
    mine = {lf.id for lf in lp.leaves}
    items: list[Any] = []
    for a in sorted(lp.arrays):
        items.extend(eng.arrays[a].items(a, F))
    if lp.dram and eng.p.timing != "scalesim":
        items.extend(eng.channel.items(F))
    items.extend(eng.sync.items(F))
    for ck, runs in eng.carries.items():
        for c, off in runs:
            items.append(("c", ck, off, c.trips, *_rel_carry(c, lp, pos, e)))
    floor = min(eng.last_starts(), default=0)
    eng.loads.forget(F)
    items.extend(eng.records.items(F, floor, mine, pos, e))
    inner = lp.xfer_ids
    # a tile that this loop's variables do not index is reused from the iteration that
    # fetched it, however long ago: past the pipeline's depth, only that it was fetched
    # before matters, not when (its records carry the times)
    depth = max(lp.stages, default=0) + 2

    def rel(x: int, pre: tuple[Any, ...]) -> tuple[Any, ...]:
        if x not in inner:
            return pre
        out = _rel(pre, pos, e)
        if len(out) > pos and out[pos] < -depth and not eng.facts.indexed(x, pos):
            return (*out[:pos], "old", *out[pos + 1 :])
        return out

    items.extend(eng.loads.items(F, inner, rel))
    items.extend(eng.writes.items(F, coords, pos, rel))
    items.extend(eng.dram.items(F, pos, inner, lambda pre: _rel(pre, pos, e)))
    return frozenset(items), F


def jump(
    eng: Engine, lp: SimLoop, coords: Coords, q: int, period: int, dt: int, base: Base
) -> None:
    """Jump over ``q`` periods of ``period`` epochs and ``dt`` cycles each."""
    F = eng.frontier(lp)
    assert F is not None
    shift_t, shift_c = q * dt, q * period
    pos = len(coords)
    for a in lp.arrays:
        eng.arrays[a].shift(shift_t)
    if lp.dram and eng.p.timing != "scalesim":
        # the jumped span carries the period's average load of the channel: the channel
        # cycles reserved in a period (whole cycles per transfer, as reserved)
        moved = eng.c.values.get("channel.dram_cycles", 0.0) - base.counters.get(
            "channel.dram_cycles", 0.0
        )
        load = moved / dt if dt else 0.0
        floor = min(eng.last_starts(), default=F)
        eng.channel.shift(F, shift_t, load, floor)
    eng.sync.shift(F, shift_t)
    for ck, runs in list(eng.carries.items()):
        eng.carries[ck] = [(_shift_carry(c, lp, pos, shift_c, base.run), off) for c, off in runs]

    def sc(pre: Coords) -> Coords:
        if len(pre) > pos and pre[pos] >= 0:
            return (*pre[:pos], pre[pos] + shift_c, *pre[pos + 1 :])
        return pre

    inner = lp.xfer_ids

    def sx(x: int, pre: Coords) -> Coords:
        return sc(pre) if x in inner else pre

    eng.records.shift(F, shift_t, {lf.id for lf in lp.leaves}, pos, sc)
    eng.loads.shift(F, shift_t, sx)
    eng.writes.shift(F, shift_t, sx)
    eng.dram.shift(F, shift_t, pos, inner, sc)
    for name, v in list(eng.c.values.items()):
        eng.c.values[name] = v + q * (v - base.counters.get(name, 0.0))
    eng.makespan += shift_t
