"""The engine's mutable state, one small class per simulated resource.

* :class:`ArrayState`: one PE array (its last two ops, when it last issued, its profile);
* :class:`DramChannel`: the DRAM channel (its DMA queues and the reserved bandwidth);
* :class:`DramContents`: what has been written to DRAM, and when;
* :class:`LoadSlots`: the global buffer's double-buffered slots of loaded tiles;
* :class:`WriteSlots`: the buffer's staging slots of results leaving for DRAM;
* :class:`OpRecords`: when the ops of every loop iteration were done;
* :class:`GroupSync`: the barriers of sequential and tile-serial groups.

Each can list what it holds relative to a frontier (a snapshot's items: the engine compares
them to find a periodic steady state), forget what can no longer delay anything, and move
its times and loop coordinates over a jump of whole periods (``shift``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from einsumcc_sim.program import SimLoop

NEG = -(1 << 62)

Coords = tuple[int, ...]
# a snapshot's view of a transfer's loop coordinates: (transfer id, coordinates) -> relative
Rel = Callable[[int, tuple[Any, ...]], tuple[Any, ...]]
# coordinates relative to the snapshot's epoch, and moved over a jump
Relative = Callable[[Coords], Coords]
# a transfer's coordinates moved over a jump: (transfer id, coordinates) -> moved ones
Shift = Callable[[int, Coords], Coords]


@dataclass
class Counters:
    values: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, v: float) -> None:
        self.values[key] = self.values.get(key, 0.0) + v


@dataclass
class Event:
    array: str
    name: str
    start: int
    end: int


@dataclass
class Period:
    loop: str
    start: int
    end: int
    epochs: int
    repeats: int


@dataclass
class Carry:
    """A run of a loop: its coordinates, the ranges it was entered with, and its axes
    (variable, first value, extent, tile; several for a product loop, outer first).  A
    pipelined loop keeps its runs with instances still to issue: they issue in the first
    epochs of the loop's next run (the pipeline continues), or are flushed before anything
    else."""

    loop: SimLoop
    coords: tuple[int, ...]
    ranges: dict[str, tuple[int, int]]
    trips: int
    axes: tuple[tuple[str, int, int, int], ...]

    def sub(self, it: int) -> dict[str, tuple[int, int]]:
        """The ranges for iteration ``it`` of the run."""
        out = dict(self.ranges)
        for v, lo, n, tile in reversed(self.axes):
            count = max(1, -(-n // tile))
            k = it % count
            it //= count
            out[v] = (lo + k * tile, min(tile, n - k * tile))
        return out


@dataclass
class Rec:
    end: int
    start: int = 0
    tpl: Any = None


@dataclass
class ArrayState:
    """One PE array: its last two ops (start, template), when it last issued one, and (in
    exact mode) the per-cycle busy profile of every op."""

    ops: deque[tuple[int, Any]] = field(default_factory=lambda: deque(maxlen=2))
    last_start: int | None = None
    profiles: list[tuple[int, np.ndarray]] = field(default_factory=list)

    def items(self, name: str, F: int) -> Iterator[tuple[Any, ...]]:
        for s0, t0 in self.ops:
            yield ("a", name, s0 - F, t0.s)

    def shift(self, shift_t: int) -> None:
        self.ops = deque(((s0 + shift_t, t0) for s0, t0 in self.ops), maxlen=2)
        assert self.last_start is not None
        self.last_start += shift_t


@dataclass
class DramChannel:
    """The DRAM channel.  Every transfer stream is a DMA queue: its transfers go in order,
    one after another (``qfree``: when each queue is free); the queues share the channel's
    bandwidth (``busy``: reserved spans (start, end, fraction of the channel taken))."""

    qfree: dict[int, int] = field(default_factory=dict)
    free: int = 0  # the latest end of any transfer
    busy: list[tuple[int, int, float]] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)  # exact mode: every transfer

    def reserve(self, ready: int, cycles: int, floor: int) -> tuple[int, int]:
        """Channel time for a transfer of ``cycles`` ready at ``ready``.  Transfers move in
        bursts: one takes whatever channel capacity is left from ``ready`` on, around the
        transfers reserved before it (a jump over a steady state leaves its average load);
        spans that end before ``floor`` are dropped.  Returns the transfer's first and last
        cycle + 1."""
        busy = [seg for seg in self.busy if seg[1] > floor]
        if not cycles:
            self.busy = busy
            return ready, ready
        fill = _Fill(ready, float(cycles))
        for seg in busy:
            fill.around(seg)
        first, t = fill.finish()
        self.busy = _merged(fill.out)
        return first, t

    def issue(self, xid: int, start: int, cycles: int, floor: int) -> tuple[int, int]:
        """Reserve a transfer of queue ``xid`` ready at ``start``: its first and end cycle."""
        start, end = self.reserve(start, cycles, floor)
        self.qfree[xid] = end
        self.free = max(self.free, end)
        return start, end

    def items(self, F: int) -> Iterator[tuple[Any, ...]]:
        yield ("d", max(self.free - F, 0))
        yield ("q", tuple(sorted((k, v - F) for k, v in self.qfree.items() if v > F)))
        yield ("D", tuple((max(a, F) - F, b - F, round(u, 9)) for a, b, u in self.busy if b > F))

    def shift(self, F: int, shift_t: int, load: float, floor: int) -> None:
        """Move the channel over a jump: the jumped span carries the period's average
        ``load`` (so that a saturated channel stays saturated); what is reserved before the
        frontier stays (another array may still reach it)."""
        self.free = max(self.free, F) + shift_t
        self.qfree = {k: v + shift_t for k, v in self.qfree.items() if v > F}
        head = [(a, min(b, F), u) for a, b, u in self.busy if b > floor and a < F]
        tail = [(max(a, F) + shift_t, b + shift_t, u) for a, b, u in self.busy if b > F]
        span = [(F, F + shift_t, min(1.0, load))] if shift_t and load > 1e-12 else []
        self.busy = head + span + tail


class _Fill:
    """A transfer's cycles placed around the reserved spans, in order."""

    def __init__(self, ready: int, cycles: float) -> None:
        self.t = ready
        self.left = cycles
        self.first: int | None = None
        self.out: list[tuple[int, int, float]] = []

    def around(self, seg: tuple[int, int, float]) -> None:
        a, b, u = seg
        if b <= self.t or self.left <= 0:
            self.out.append(seg)
            return
        if a > self.t:  # a free gap [t, a)
            self.take_gap(a)
            if self.left <= 0:
                self.out.append(seg)
                return
        lo = max(a, self.t)
        if lo > a:
            self.out.append((a, lo, u))
        self.share(lo, b, u)

    def take_gap(self, a: int) -> None:
        if self.first is None:
            self.first = self.t
        take = min(self.left, float(a - self.t))
        end = self.t + math.ceil(take)
        self.out.append((self.t, end, 1.0))
        self.left -= take
        self.t = end

    def share(self, lo: int, b: int, u: float) -> None:
        """What is left of the channel in [lo, b), of which ``u`` is taken."""
        room = (1.0 - u) * (b - lo)
        if room <= 1e-9:
            self.out.append((lo, b, u))
            self.t = b
            return
        if self.first is None:
            self.first = lo
        if room >= self.left:
            span = math.ceil(self.left / (1.0 - u))
            stop = min(b, lo + span)
            self.out.append((lo, stop, min(1.0, u + self.left / (stop - lo))))
            if stop < b:
                self.out.append((stop, b, u))
            self.left = 0.0
            self.t = stop
        else:
            self.out.append((lo, b, 1.0))
            self.left -= room
            self.t = b

    def finish(self) -> tuple[int, int]:
        if self.left > 0:
            if self.first is None:
                self.first = self.t
            end = self.t + math.ceil(self.left)
            self.out.append((self.t, end, 1.0))
            self.t = end
        assert self.first is not None
        return self.first, self.t


def _merged(spans: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    merged: list[tuple[int, int, float]] = []
    for a, b, u in sorted(spans):
        if b <= a:
            continue
        if merged and a == merged[-1][1] and abs(u - merged[-1][2]) < 1e-12:
            merged[-1] = (merged[-1][0], b, u)
        else:
            merged.append((a, b, u))
    return merged


@dataclass
class DramContents:
    """What has been written to DRAM: (tensor, depth, coordinates of the first ``depth``
    loops) -> the latest write's end, and the write stream that wrote it."""

    written: dict[tuple[str, int, Coords], int] = field(default_factory=dict)
    writer: dict[tuple[str, int, Coords], int] = field(default_factory=dict)

    def record(self, tensor: str, xid: int, coords: Coords, end: int) -> None:
        for d in range(len(coords) + 1):
            key = (tensor, d, coords[:d])
            self.written[key] = max(self.written.get(key, NEG), end)
            self.writer[key] = xid

    def items(self, F: int, pos: int, inner: frozenset[int], rel: Relative) -> Iterator[Any]:
        """Forget the writes that ended before the frontier; list the others."""
        self.written = {k: w for k, w in self.written.items() if w > F}
        self.writer = {k: v for k, v in self.writer.items() if k in self.written}
        for (t, d, pre), w in self.written.items():
            inside = d > pos and self.writer.get((t, d, pre)) in inner
            yield ("w", t, d, rel(pre) if inside else pre, w - F)

    def shift(self, F: int, shift_t: int, pos: int, inner: frozenset[int], sc: Relative) -> None:
        written, writer = {}, {}
        for (t, d, pre), w in self.written.items():
            if w <= F:
                continue
            xid = self.writer.get((t, d, pre), -1)
            key = (t, d, sc(pre) if d > pos and xid in inner else pre)
            written[key] = w + shift_t
            writer[key] = xid
        self.written, self.writer = written, writer


@dataclass
class LoadSlots:
    """The buffer's slots of loaded tiles.  ``end``: load instance (stream, coordinates) ->
    when it arrived; ``release``: -> when its last consumer was done with it (double
    buffering: a load waits for the slot of the tile two loads back); ``owner``: a reused
    tile's coordinates -> the instance that fetched it; ``last``: stream -> (reuse key,
    owner) of its latest load; ``history``: stream -> its last two loads."""

    end: dict[tuple[int, Coords], int] = field(default_factory=dict)
    release: dict[tuple[int, Coords], int] = field(default_factory=dict)
    owner: dict[tuple[int, Coords], Coords] = field(default_factory=dict)
    last: dict[int, tuple[Coords, Coords]] = field(default_factory=dict)
    history: dict[int, deque[Coords]] = field(default_factory=dict)

    def released(self, xid: int, prefix: Coords, done: int) -> None:
        key = (xid, self.owner.get((xid, prefix), prefix))
        self.release[key] = max(self.release.get(key, NEG), done)

    def forget(self, F: int) -> None:
        self.end = {k: t for k, t in self.end.items() if t > F}
        self.release = {k: t for k, t in self.release.items() if t > F}
        live = {(x, h) for x, hs in self.history.items() for h in hs}
        self.owner = {k: o for k, o in self.owner.items() if (k[0], o) in live}

    def items(self, F: int, inner: frozenset[int], rel: Rel) -> Iterator[Any]:
        for (xid, pre), end in self.end.items():
            yield ("x", xid, rel(xid, pre), end - F)
        for (xid, pre), end in self.release.items():
            yield ("y", xid, rel(xid, pre), end - F)
        # (the reuse keys and slots of transfers outside the loop do not change while it runs)
        for xid in inner:
            kl = self.last.get(xid)
            if kl is not None:
                yield ("k", xid, rel(xid, kl[0]), rel(xid, kl[1]))
            hist = self.history.get(xid)
            if hist:
                yield ("h", xid, tuple(rel(xid, h) for h in hist))

    def shift(self, F: int, shift_t: int, sx: Shift) -> None:
        self.end = {(x, sx(x, p)): t + shift_t for (x, p), t in self.end.items() if t > F}
        self.release = {(x, sx(x, p)): t + shift_t for (x, p), t in self.release.items() if t > F}
        self.owner = {(x, sx(x, p)): sx(x, o) for (x, p), o in self.owner.items()}
        self.last = {x: (sx(x, k), sx(x, o)) for x, (k, o) in self.last.items()}
        self.history = {
            x: deque((sx(x, h) for h in hs), maxlen=2) for x, hs in self.history.items()
        }


@dataclass
class WriteSlots:
    """Results leave through a double-buffered staging slot: the producer starts a new tile
    of a write stream only when the write two tiles back has left for DRAM.  ``tile``:
    stream -> the tile being filled; ``ends``: stream -> ends of its last two writes."""

    tile: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    ends: dict[int, deque[int]] = field(default_factory=dict)

    def wait(self, xid: int, tile: Coords) -> int | None:
        """When the op filling ``tile`` of stream ``xid`` may start (None: at once)."""
        if self.tile.get(xid) == tile:
            return None
        self.tile[xid] = tile
        ends = self.ends.get(xid)
        if ends is not None and len(ends) == 2:
            return ends[0]
        return None

    def items(self, F: int, coords: Coords, pos: int, rel: Rel) -> Iterator[Any]:
        # a write that ended before the frontier holds nothing up any more; the tile being
        # filled matters only as the one the next op continues (of another run of this
        # loop: none)
        for xid, ends in self.ends.items():
            tile = self.tile[xid]
            here = rel(xid, tile) if tuple(tile[:pos]) == coords[:pos] else "other"
            yield ("W", xid, tuple(max(t - F, 0) for t in ends), here)

    def shift(self, F: int, shift_t: int, sx: Shift) -> None:
        self.ends = {
            x: deque((t + shift_t if t > F else t for t in ends), maxlen=2)
            for x, ends in self.ends.items()
        }
        self.tile = {x: sx(x, tile) for x, tile in self.tile.items()}


@dataclass
class OpRecords:
    """(leaf id, depth, coordinates of its first ``depth`` loops) -> when the ops of that
    iteration were done; the full-depth record also keeps the op's start and template."""

    records: dict[tuple[int, int, Coords], Rec] = field(default_factory=dict)

    def get(self, lid: int, depth: int, prefix: Coords) -> Rec | None:
        return self.records.get((lid, depth, prefix))

    def record(self, lid: int, coords: Coords, start: int, done: int, tpl: Any) -> None:
        records = self.records
        for d in range(len(coords) + 1):
            key = (lid, d, coords[:d])
            rec = records.get(key)
            if rec is None:
                records[key] = Rec(done)
            elif done > rec.end:
                rec.end = done
        full = records[(lid, len(coords), coords)]
        full.start, full.tpl = start, tpl

    def items(
        self, F: int, floor: int, mine: set[int], pos: int, e: int
    ) -> Iterator[tuple[Any, ...]]:
        """Forget what ended before the frontier (it cannot delay anything any more: every
        future op starts at or after it); list the rest."""
        self.records = {k: r for k, r in self.records.items() if r.end > min(F, floor)}
        for (lid, d, pre), rec in self.records.items():
            if rec.end <= F:
                continue
            rpre = pre
            if lid in mine and d > pos:
                rpre = (*pre[:pos], pre[pos] - e, *pre[pos + 1 :])
            yield ("r", lid, d, rpre, rec.end - F, rec.start - F if rec.tpl is not None else 0)

    def shift(self, F: int, shift_t: int, mine: set[int], pos: int, sc: Relative) -> None:
        recs = {}
        for (lid, d, pre), rec in self.records.items():
            if rec.end > F:
                rec = Rec(rec.end + shift_t, rec.start + shift_t, rec.tpl)
                if lid in mine and d > pos:
                    pre = sc(pre)
            recs[(lid, d, pre)] = rec
        self.records = recs


@dataclass
class GroupSync:
    """``barrier``: group -> when its next op may start (sequential and tile-serial groups);
    ``epoch_done``: tile-serial group -> the latest done so far."""

    barrier: dict[int, int] = field(default_factory=dict)
    epoch_done: dict[int, int] = field(default_factory=dict)

    def items(self, F: int) -> Iterator[tuple[Any, ...]]:
        for g, b in self.barrier.items():
            if b > F:
                yield ("b", g, b - F)
        for g, b in self.epoch_done.items():
            if b > F:
                yield ("B", g, b - F)

    def shift(self, F: int, shift_t: int) -> None:
        for table in (self.barrier, self.epoch_done):
            for g in table:
                if table[g] > F:
                    table[g] += shift_t
