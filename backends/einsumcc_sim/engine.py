"""The scheduler: walks the program's loop tree and times every op and transfer.

Each array and the DRAM channel issue their work in program order.  An op starts at the
earliest cycle at which (1) its PEs and ports are free of the previous ops on its array (the
templates' ``gap_after``), (2) every operand is there: in the PEs (``inplace``), through the
link from the other array (per column), or in the buffer (when its producer is done), (3) its
DRAM tiles are loaded, and (4) in a ``sequential`` group, every earlier op is done.  A load
waits for the DRAM channel and for its buffer slot (double buffering: the tile two loads back
must be consumed); a write waits for its producer.

Loops run epoch by epoch; a child with stage ``s`` runs iteration ``e - s`` in epoch ``e``
(software pipelining; loads run one stage ahead of their consumers).  In fast mode, at the
start of every regular epoch the engine takes a *snapshot* of everything that can still
influence the loop body (its arrays' last ops, the DRAM channel, live completion records and
transfer slots, with times relative to the body's frontier and loop coordinates relative to
the epoch).  When a snapshot repeats, the state is periodic: the engine jumps over as many
whole periods as remain, adding the period's cycles and counters exactly, and simulates the
tail.  ``--exact`` never jumps and uses the materialized templates.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from einsumcc.diagnostics import EinError
from einsumcc_sim.program import Leaf, Loop, Node, Program, Xfer, op_cycles, op_shape
from einsumcc_sim.template import Affine, Exact, OpShape, affine, exact

NEG = -(1 << 62)


@dataclass
class Rec:
    end: int
    start: int = 0
    tpl: Any = None


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
    """The instances of a pipelined loop run still to issue: they issue in the first epochs
    of the loop's next run (the pipeline continues), or are flushed before anything else."""

    loop: Loop
    coords: tuple[int, ...]
    ranges: dict[str, tuple[int, int]]
    trips: int
    lo: int
    n: int
    tile: int


class Engine:
    def __init__(self, prog: Program, exact_mode: bool = False, max_events: int = 20000) -> None:
        self.p = prog
        self.exact = exact_mode
        if exact_mode and prog.model.hop != 1:
            raise EinError.plain(
                f"--exact simulates the faithful cycle-level model, not --model {prog.model.name}",
                hint="use --model faithful with --exact",
            )
        self.link = prog.arch.link_latency if prog.model.link else 0
        self.arr: dict[str, deque[tuple[int, Any]]] = {"2d": deque(maxlen=2), "1d": deque(maxlen=2)}
        self.last_start: dict[str, int] = {}
        self.dram_free = 0  # the read queue: a load starts after the previous one ends
        self.write_free = 0  # the write queue, likewise
        self.busy: list[tuple[int, int]] = []  # the channel's reserved spans after the queues
        self.records: dict[tuple[int, int, tuple[int, ...]], Rec] = {}
        self.xrec: dict[tuple[int, tuple[int, ...]], int] = {}  # load instance -> end
        self.xrel: dict[tuple[int, tuple[int, ...]], int] = {}  # load instance -> release
        self.xinst: dict[tuple[int, tuple[int, ...]], tuple[int, ...]] = {}  # reuse -> owner
        self.xlast: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # key, owner
        self.xhist: dict[int, deque[tuple[int, ...]]] = {}
        self.written: dict[str, int] = {}
        self.barrier: dict[int, int] = {}
        self.epoch_done: dict[int, int] = {}  # tile-serial groups: the latest done so far
        self.carries: dict[int, list[tuple[Carry, int]]] = {}
        self.paired: dict[int, bool] = {}  # leaf id -> its partner issues in this epoch too
        self.lead: dict[int, tuple[int, int, Any]] = {}  # follower id -> leader (start, K, tpl)
        self.c = Counters()
        self.events: list[Event] = []
        self.max_events = max_events
        self.periods: list[Period] = []
        self.profiles: dict[str, list[tuple[int, np.ndarray]]] = {"2d": [], "1d": []}
        self.dram_spans: list[tuple[int, int]] = []
        self._shapes: dict[tuple[int, int, tuple[tuple[str, int], ...]], OpShape] = {}
        self.makespan = 0
        self._common: dict[tuple[int, int], int] = {}
        self._region_plan: dict[tuple[Any, str], list[tuple[tuple[tuple[str, int], ...], int]]] = {}
        self._partner_k: dict[int, int] = {}
        # called with (leaf, ranges, shape, template) for every op, in program order
        self.on_op: Any = None

    # ------------------------------------------------------------ helpers
    def tpl(self, shape: OpShape) -> Affine | Exact:
        return exact(shape) if self.exact else affine(shape)

    def common(self, a: Leaf, b: Leaf) -> int:
        key = (a.id, b.id)
        n = self._common.get(key)
        if n is None:
            n = 0
            for x, y in zip(a.loops, b.loops, strict=False):
                if x is not y:
                    break
                n += 1
            self._common[key] = n
        return n

    # ------------------------------------------------------------ the walk
    def run(self) -> None:
        self.node(self.p.root, (), {})
        self.flush_all()

    def node(self, n: Node, coords: tuple[int, ...], ranges: dict[str, tuple[int, int]]) -> None:
        if isinstance(n, Loop):
            self.loop(n, coords, ranges)
        elif isinstance(n, Leaf):
            self.leaf(n, coords, ranges)
        else:
            self.xfer(n, coords, ranges)

    def loop(self, lp: Loop, coords: tuple[int, ...], ranges: dict[str, tuple[int, int]]) -> None:
        if lp.var is None:
            lo, n, tile = 0, 1, 1
        else:
            lo, n = ranges.get(lp.var, (0, self.p.extent(lp.var)))
            tile = lp.tile
        trips = max(1, -(-n // tile))
        smin, smax = min(lp.stages, default=0), max(lp.stages, default=0)
        full = trips if n % tile == 0 else trips - 1
        here = Carry(lp, coords, ranges, trips, lo, n, tile)
        if lp.carry:
            runs = self.carries.pop(id(lp), [])
            runs.append((here, 0))
            end, reg_hi = trips, full
        else:
            runs = [(here, 0)]
            end, reg_hi = trips + smax, full + smin
        if lp.last_guard:
            reg_hi = min(reg_hi, trips - 1)
        reg_lo = smax
        history: dict[Any, tuple[int, int, dict[str, float]]] = {}
        e = 0
        checks = 0
        while e < end:
            if not self.exact and reg_lo <= e < reg_hi and reg_hi - e > 2 and checks < 64:
                snap = self.snapshot(lp, coords, e)
                checks += 1
                if snap is not None:
                    key, F = snap
                    seen = history.get(key)
                    if seen is not None:
                        e0, F0, c0 = seen
                        period, dt = e - e0, F - F0
                        q = (reg_hi - e) // period
                        if q > 0 and dt >= 0:
                            self.jump(lp, coords, e, q, period, dt, c0)
                            self.periods.append(Period(self.label(lp), F0, F, period, q))
                            e += q * period
                            history.clear()
                            checks = 64
                            continue
                    history[key] = (e, F, dict(self.c.values))
            self.epoch(lp, e, runs)
            e += 1
        if lp.carry:
            # the pipeline goes on in the loop's next run: keep the runs with instances left
            kept = [(c, off - trips) for c, off in runs if off - trips + c.trips > -smax]
            if kept:
                self.carries[id(lp)] = kept

    def epoch(self, lp: Loop, e: int, runs: list[tuple[Carry, int]]) -> None:
        """Issue epoch ``e`` of ``lp``'s pipeline: child ``i`` with stage ``s`` runs
        instance ``e - s`` of the stream of runs (``runs``: each run and the epoch, relative
        to this run, at which its first instance issued)."""
        todo: list[tuple[Node, Carry, int]] = []
        for i in lp.order:
            child, st = lp.children[i], lp.stages[i]
            it = e - st
            for run, off in reversed(runs):
                if off <= it < off + run.trips:
                    todo.append((child, run, it - off))
                    break
                if it >= off:
                    break
        if lp.serial:
            self.barrier[lp.group] = self.epoch_done.get(lp.group, 0)
        if lp.pairs:
            present = {id(ch) for ch, _, _ in todo}
            for ch, _, _ in todo:
                lf = _chain_leaf(ch)
                if lf is not None and lf.partner is not None:
                    pch = self.p_chain.get(lf.partner.id)
                    self.paired[lf.id] = pch is not None and id(pch) in present
        for child, run, it in todo:
            sub = run.ranges
            if lp.var is not None:
                sub = dict(run.ranges)
                sub[lp.var] = (run.lo + it * run.tile, min(run.tile, run.n - it * run.tile))
            self.node(child, run.coords if lp.kind == "root" else (*run.coords, it), sub)

    def flush(self, key: int) -> None:
        runs = self.carries.pop(key, None)
        if not runs:
            return
        lp = runs[0][0].loop
        smax = max(lp.stages, default=0)
        for e in range(smax):
            self.epoch(lp, e, runs)

    def flush_all(self) -> None:
        """Drain every pipeline, outer loops first (their runs go on in inner ones)."""
        while self.carries:
            key = min(self.carries, key=lambda k: self.carries[k][0][0].loop.depth)
            self.flush(key)

    def label(self, lp: Loop) -> str:
        return f"{lp.kind} loop over {lp.var.upper()}" if lp.var else f"{lp.kind}"

    @functools.cached_property
    def p_chain(self) -> dict[int, Node]:
        """Leaf id -> the child of a loop whose single-leaf chain it ends (paired ops)."""
        out: dict[int, Node] = {}
        stack: list[Node] = [self.p.root]
        while stack:
            n = stack.pop()
            if isinstance(n, Loop):
                for ch in n.children:
                    lf = _chain_leaf(ch)
                    if lf is not None and lf.partner is not None:
                        out.setdefault(lf.id, ch)
                    stack.append(ch)
        return out

    # ------------------------------------------------------------ ops
    def ext(self, leaf: Leaf, ranges: Mapping[str, tuple[int, int]]) -> dict[str, int]:
        out = {}
        for k in leaf.kernels:
            for v in k.space:
                out[v] = ranges[v][1] if v in ranges else self.p.extent(v)
        return out

    def shape(self, leaf: Leaf, ext: dict[str, int], paired: int = 0) -> OpShape:
        key = (leaf.id, paired, tuple(sorted(ext.items())))
        s = self._shapes.get(key)
        if s is None:
            s = op_shape(self.p, leaf, ext, paired)
            self._shapes[key] = s
        return s

    def partner_k(self, leaf: Leaf) -> int:
        k = self._partner_k.get(leaf.id)
        if k is None:
            assert leaf.partner is not None
            arr = self.p.arch.array(leaf.partner.array)
            k = max(1, op_cycles(arr, leaf.partner.kernel))
            self._partner_k[leaf.id] = k
        return k

    def leaf(self, leaf: Leaf, coords: tuple[int, ...], ranges: dict[str, tuple[int, int]]) -> None:
        for v in leaf.guard:
            lo, n = ranges.get(v, (0, self.p.extent(v)))
            if lo + n < self.p.extent(v):
                return  # an at_last op: only at the last iteration of its loop over v
        if self.carries:
            for key, runs in list(self.carries.items()):
                if runs[0][0].loop not in leaf.loops:
                    self.flush(key)
        ext = self.ext(leaf, ranges)
        paired = leaf.partner is not None and self.paired.get(leaf.id, False)
        shape = self.shape(leaf, ext, self.partner_k(leaf) if paired else 0)
        t = self.tpl(shape)
        link = self.link
        start = 0
        arr = self.arr[leaf.array]
        follow = self.lead.pop(leaf.id, None) if paired and not leaf.leads else None
        for s0, t0 in arr:
            if follow is not None and s0 == follow[0] and t0 is follow[2]:
                start = max(start, s0 + follow[1])  # one step of the leader, then alternate
                continue
            start = max(start, s0, s0 + t0.gap_after(t))
        if leaf.mode in ("sequential", "tile-serial"):
            start = max(start, self.barrier.get(leaf.group, 0))
        for op in leaf.operands:
            prod = op.producer
            if prod is None or op.kind == "forward":
                continue
            common = self.common(leaf, prod)
            prefix = list(coords[:common])
            if op.carried is not None:
                pos = next(
                    (i for i in range(common - 1, -1, -1) if leaf.loops[i].var == op.carried), None
                )
                if pos is None:
                    continue
                if prefix[pos] == 0:
                    continue  # the first iterate comes from the init
                prefix[pos] -= 1
            depth = len(prod.loops)
            if op.kind in ("inplace", "down", "up"):
                rec = self.records.get((prod.id, depth, tuple(prefix) + (0,) * (depth - common)))
                if rec is None or rec.tpl is None:
                    continue
                if op.kind == "inplace":
                    need = t.need_inplace(rec.tpl)
                elif op.streamed:
                    need = t.need_streamed(rec.tpl, link)
                else:
                    need = t.need_from_columns(rec.tpl.ready, link)
                start = max(start, rec.start + need)
            else:
                rec = self.records.get((prod.id, common, tuple(prefix)))
                if rec is not None:
                    start = max(start, rec.end)
        for x in leaf.loads:
            end = self.xrec.get((x.id, coords[: len(x.loops)]))
            if end is not None:
                start = max(start, end)
        done = start + t.done
        arr.append((start, t))
        if paired and leaf.leads and leaf.partner is not None:
            self.lead[leaf.partner.id] = (start, shape.K - self.partner_k(leaf), t)
        self.last_start[leaf.array] = start
        if leaf.mode == "sequential":
            self.barrier[leaf.group] = max(self.barrier.get(leaf.group, 0), done)
        elif leaf.mode == "tile-serial":
            # the next tile waits for these PEs to finish computing; results still leaving
            # the array are waited for by their consumers only
            busy = start + t.compute_end
            self.epoch_done[leaf.group] = max(self.epoch_done.get(leaf.group, 0), busy)
        depth = len(leaf.loops)
        for d in range(depth + 1):
            key = (leaf.id, d, coords[:d])
            rec = self.records.get(key)
            if rec is None:
                self.records[key] = Rec(done)
            elif done > rec.end:
                rec.end = done
        full = self.records[(leaf.id, depth, coords)]
        full.start, full.tpl = start, t
        for x in leaf.loads:
            k = (x.id, self.xinst.get((x.id, coords[: len(x.loops)]), coords[: len(x.loops)]))
            self.xrel[k] = max(self.xrel.get(k, NEG), done)
        self.makespan = max(self.makespan, done)
        self.count_op(leaf, shape, ext, start, t)
        if self.on_op is not None:
            self.on_op(leaf, ranges, shape, t)

    def count_op(self, leaf: Leaf, s: OpShape, ext: dict[str, int], start: int, t: Any) -> None:
        arch = self.p.arch
        arr = arch.array(leaf.array)
        c = self.c
        pes = s.u_r * s.u_c
        key_arr = "array2d" if leaf.array == "2d" else "array1d"
        for k, _m in zip(leaf.kernels, leaf.maps, strict=True):
            steps = s.T
            kc = op_cycles(arr, k)
            points = pes * steps
            c.add(f"busy.{k.name}", steps * max(kc, 1))
            c.add(f"pe_cycles.{k.name}", points * max(kc, 1))
            c.add(f"pe_cycles.{leaf.array}", points * max(kc, 1))
            c.add(f"ops.{k.name}", 1)
            for o, n in k.ops:
                cost = arr.op(o)
                if cost is None:
                    continue
                for act, cnt in cost.actions:
                    c.add(f"act.{key_arr}.{act}", points * n * cnt)
            c.add(f"act.{key_arr}.rf_read", points * len(k.reads))
            c.add(f"act.{key_arr}.rf_write", points)
            for op in leaf.operands:
                if (
                    op.kernel == k.name
                    and op.place not in ("registers", "stream")
                    and op.kind != "forward"
                ):
                    words = self.region(op.access, ext, op.access.tensor)
                    c.add("buffer.read_words", words)
                    c.add(f"buffer.read.{op.tensor}", words)
            out = self.p.source_of.get(k.output.tensor, k.output.tensor)
            if self.p.placement.get(out) not in ("registers", "stream"):
                words = self.region(k.output, ext, k.output.tensor)
                c.add("buffer.write_words", words)
                c.add(f"buffer.write.{out}", words)
        if len(self.events) < self.max_events:
            self.events.append(Event(leaf.array, leaf.name, start, start + t.compute_end))
        if self.exact:
            self.profiles[leaf.array].append((start, t.profile))

    def region(self, acc: Any, ext: Mapping[str, int], tensor: str) -> int:
        """Elements of ``tensor`` that ``acc`` touches when each variable spans ``ext``."""
        plan = self._region_plan.get((acc, tensor))
        if plan is None:
            plan = self._plan(acc, tensor)
            self._region_plan[(acc, tensor)] = plan
        total = 1
        for coeffs, cap in plan:
            span = sum(abs(cf) * (ext.get(v, 1) - 1) for v, cf in coeffs) + 1
            total *= min(span, cap)
        return total

    def _plan(self, acc: Any, tensor: str) -> list[tuple[tuple[tuple[str, int], ...], int]]:
        from einsumcc.ir.bind import index_coefficients

        names = {t.name for t in self.p.cascade.tensors}
        t = self.p.cascade.tensor(tensor) if tensor in names else None
        plan = []
        for pos, ix in enumerate(acc.indices):
            if t is not None and t.dims[pos].iterative:
                continue
            coeffs, _ = index_coefficients(ix, self.p.bindings.extents)
            cap = self.p.bindings.extents[t.dims[pos].rank] if t is not None else 1 << 62
            plan.append((tuple(sorted(coeffs.items())), cap))
        return plan

    # ------------------------------------------------------------ transfers
    def xfer(self, x: Xfer, coords: tuple[int, ...], ranges: dict[str, tuple[int, int]]) -> None:
        for v in x.guard:
            lo, n = ranges.get(v, (0, self.p.extent(v)))
            if lo + n < self.p.extent(v):
                return
        prefix = coords[: len(x.loops)]
        ext: dict[str, int] = {}
        for k, _ in x.accesses:
            for v in k.space:
                ext[v] = ranges[v][1] if v in ranges else self.p.extent(v)
        words = max(self.region(acc, ext, acc.tensor) for _, acc in x.accesses)
        nbytes = math.ceil(words * self._itemsize(x.tensor) * x.fraction)
        scalesim = self.p.timing == "scalesim"
        if not x.write:
            key = tuple(
                c if lp.var in x.key_vars else -1 for c, lp in zip(prefix, x.loops, strict=True)
            )
            last = self.xlast.get(x.id)
            if last is not None and last[0] == key and not x.spill and not x.always:
                owner = last[1]
                self.xinst[(x.id, prefix)] = owner
                self.xrec[(x.id, prefix)] = self.xrec.get((x.id, owner), 0)
                return
            start = max(self.dram_free, self.issued())
            hist = self.xhist.setdefault(x.id, deque(maxlen=2))
            if len(hist) == 2:
                start = max(start, self.xrel.get((x.id, hist[0]), NEG))
            if x.tensor in self.written:
                start = max(start, self.written[x.tensor])
            cycles = 0 if scalesim else self.p.arch.dram_cycles(nbytes)
            if not scalesim:
                start = self.reserve(start, cycles)
                self.dram_free = start + cycles
            end = start + cycles
            hist.append(prefix)
            self.xlast[x.id] = (key, prefix)
            self.xrec[(x.id, prefix)] = end
            self.c.add("dram.read_bytes", nbytes)
            self.c.add(f"dram.{x.tensor}", nbytes)
            if not x.spill and self.p.placement.get(x.tensor) in ("dram", "buffer"):
                self.c.add("buffer.fill_words", words * x.fraction)
        else:
            start = max(self.write_free, self.issued())
            if x.producer is not None:
                rec = self.records.get((x.producer.id, len(x.loops), prefix))
                if rec is not None:
                    start = max(start, rec.end)
            cycles = 0 if scalesim else self.p.arch.dram_cycles(nbytes)
            if not scalesim:
                start = self.reserve(start, cycles)
                self.write_free = start + cycles
            end = start + cycles
            self.written[x.tensor] = max(self.written.get(x.tensor, NEG), end)
            self.c.add("dram.write_bytes", nbytes)
            self.c.add(f"dram.{x.tensor}", nbytes)
        if cycles:
            self.makespan = max(self.makespan, end)
            if len(self.events) < self.max_events:
                self.events.append(
                    Event("dram", ("write " if x.write else "load ") + x.tensor, start, end)
                )
            if self.exact:
                self.dram_spans.append((start, end))

    def issued(self) -> int:
        """The time the program has reached: a transfer is issued when the arrays have issued
        everything before it (no earlier than the latest op start on the slower array)."""
        return min(self.last_start.values()) if self.last_start else 0

    def reserve(self, ready: int, cycles: int) -> int:
        """The earliest start at or after ``ready`` at which the DRAM channel is free for
        ``cycles`` (reads and writes queue separately and share the channel)."""
        floor = min(self.dram_free, self.write_free, ready)
        busy = [(a, b) for a, b in self.busy if b > floor]
        start = ready
        for a, b in busy:
            if start + cycles <= a:
                break
            start = max(start, b)
        if cycles:
            busy.append((start, start + cycles))
            busy.sort()
            merged: list[tuple[int, int]] = []
            for a, b in busy:
                if merged and a <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], b))
                else:
                    merged.append((a, b))
            busy = merged
        self.busy = busy
        return start

    def _itemsize(self, tensor: str) -> int:
        names = {t.name for t in self.p.cascade.tensors}
        if tensor in names:
            return self.p.cascade.tensor(tensor).dtype.itemsize
        return self.p.kernels[tensor].itemsize

    # ------------------------------------------------------------ periodicity
    def _frontier(self, lp: Loop) -> int | None:
        ts = [self.last_start[a] for a in lp.arrays if a in self.last_start]
        if len(ts) < len(lp.arrays):
            return None
        if not ts and lp.dram and self.p.timing != "scalesim":
            ts.append(max(self.dram_free, self.write_free))
        return min(ts) if ts else None

    def snapshot(self, lp: Loop, coords: tuple[int, ...], e: int) -> tuple[Any, int] | None:
        F = self._frontier(lp)
        if F is None:
            return None
        pos = len(coords)
        mine = {lf.id for lf in lp.leaves}
        items: list[Any] = []
        for a in sorted(lp.arrays):
            for s0, t0 in self.arr[a]:
                items.append(("a", a, s0 - F, t0.s))
        if lp.dram and self.p.timing != "scalesim":
            items.append(("d", max(self.dram_free - F, 0), max(self.write_free - F, 0)))
            items.append(("D", tuple((max(a, F) - F, b - F) for a, b in self.busy if b > F)))
        for g, b in self.barrier.items():
            if b > F:
                items.append(("b", g, b - F))
        for g, b in self.epoch_done.items():
            if b > F:
                items.append(("B", g, b - F))
        for ck, runs in self.carries.items():
            for c, off in runs:
                items.append(("c", ck, off, c.trips, c.n, *self._rel_carry(c, lp, pos, e, -1)))
        dead = []
        for (lid, d, pre), rec in self.records.items():
            if rec.end <= F:
                if lid in mine and d > pos:
                    dead.append((lid, d, pre))
                continue
            rel = pre
            if lid in mine and d > pos:
                rel = (*pre[:pos], pre[pos] - e, *pre[pos + 1 :])
            items.append(
                ("r", lid, d, rel, rec.end - F, rec.start - F if rec.tpl is not None else 0)
            )
        for k in dead:
            del self.records[k]
        for (xid, pre), end in self.xrec.items():
            if end > F:
                items.append(("x", xid, self._rel(pre, pos, e), end - F))
        for (xid, pre), end in self.xrel.items():
            if end > F:
                items.append(("y", xid, self._rel(pre, pos, e), end - F))
        for xid, (key, owner) in self.xlast.items():
            items.append(("k", xid, self._rel(key, pos, e), self._rel(owner, pos, e)))
        for xid, hist in self.xhist.items():
            items.append(("h", xid, tuple(self._rel(h, pos, e) for h in hist)))
        for t, w in self.written.items():
            if w > F:
                items.append(("w", t, w - F))
        return frozenset(items), F

    @staticmethod
    def _rel_carry(
        c: Carry, lp: Loop, pos: int, e: int, sign: int
    ) -> tuple[tuple[int, ...], tuple[tuple[str, tuple[int, int]], ...], int]:
        """A carry's coordinates and ranges relative to epoch ``e`` of ``lp`` (sign -1), or
        shifted by ``-e`` epochs (sign 1 with e negative)."""
        co = c.coords
        if len(co) > pos:
            co = (*co[:pos], co[pos] - e, *co[pos + 1 :])
        rg = dict(c.ranges)
        lo = c.lo
        if lp.var is not None and lp.var in rg:
            r0, r1 = rg[lp.var]
            rg[lp.var] = (r0 - e * lp.tile, r1)
            if c.loop.var == lp.var:
                lo -= e * lp.tile
        del sign
        return co, tuple(sorted(rg.items())), lo

    @staticmethod
    def _rel(pre: tuple[int, ...], pos: int, e: int) -> tuple[int, ...]:
        if len(pre) > pos and pre[pos] >= 0:
            return (*pre[:pos], pre[pos] - e, *pre[pos + 1 :])
        return pre

    def jump(
        self,
        lp: Loop,
        coords: tuple[int, ...],
        e: int,
        q: int,
        period: int,
        dt: int,
        before: dict[str, float],
    ) -> None:
        F = self._frontier(lp)
        assert F is not None
        shift_t, shift_c = q * dt, q * period
        pos = len(coords)
        for a in lp.arrays:
            self.arr[a] = deque(((s0 + shift_t, t0) for s0, t0 in self.arr[a]), maxlen=2)
            self.last_start[a] += shift_t
        if lp.dram and self.p.timing != "scalesim":
            self.dram_free = max(self.dram_free, F) + shift_t
            self.write_free = max(self.write_free, F) + shift_t
            self.busy = [(max(a, F) + shift_t, b + shift_t) for a, b in self.busy if b > F]
        for g in self.barrier:
            if self.barrier[g] > F:
                self.barrier[g] += shift_t
        for g in self.epoch_done:
            if self.epoch_done[g] > F:
                self.epoch_done[g] += shift_t
        for ck, runs in list(self.carries.items()):
            moved = []
            for c, off in runs:
                co, rg, lo = self._rel_carry(c, lp, pos, -shift_c, 1)
                moved.append((Carry(c.loop, co, dict(rg), c.trips, lo, c.n, c.tile), off))
            self.carries[ck] = moved

        def sc(pre: tuple[int, ...]) -> tuple[int, ...]:
            if len(pre) > pos and pre[pos] >= 0:
                return (*pre[:pos], pre[pos] + shift_c, *pre[pos + 1 :])
            return pre

        mine = {lf.id for lf in lp.leaves}
        recs = {}
        for (lid, d, pre), rec in self.records.items():
            if rec.end > F:
                rec = Rec(rec.end + shift_t, rec.start + shift_t, rec.tpl)
                if lid in mine and d > pos:
                    pre = sc(pre)
            recs[(lid, d, pre)] = rec
        self.records = recs
        self.xrec = {(x, sc(p)): t + shift_t for (x, p), t in self.xrec.items() if t > F}
        self.xrel = {(x, sc(p)): t + shift_t for (x, p), t in self.xrel.items() if t > F}
        self.xinst = {(x, sc(p)): sc(o) for (x, p), o in self.xinst.items()}
        self.xlast = {x: (sc(k), sc(o)) for x, (k, o) in self.xlast.items()}
        self.xhist = {x: deque((sc(h) for h in hs), maxlen=2) for x, hs in self.xhist.items()}
        self.written = {t: (w + shift_t if w > F else w) for t, w in self.written.items()}
        for key, v in list(self.c.values.items()):
            self.c.values[key] = v + q * (v - before.get(key, 0.0))
        self.makespan += shift_t


def _chain_leaf(node: Node) -> Leaf | None:
    """The leaf at the end of a chain of loops with one child each besides transfers (or the
    node itself)."""
    while isinstance(node, Loop):
        ops = [c for c in node.children if not isinstance(c, Xfer)]
        if len(ops) != 1:
            return None
        node = ops[0]
    return node if isinstance(node, Leaf) else None
