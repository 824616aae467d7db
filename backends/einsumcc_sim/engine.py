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
from einsumcc_sim.program import (
    Leaf,
    Loop,
    Node,
    Program,
    Xfer,
    chain_leaf,
    op_cycles,
    op_shape,
)
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
    """A run of a loop: its coordinates, the ranges it was entered with, and its axes
    (variable, first value, extent, tile; several for a product loop, outer first).  A
    pipelined loop keeps its runs with instances still to issue: they issue in the first
    epochs of the loop's next run (the pipeline continues), or are flushed before anything
    else."""

    loop: Loop
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
        # every transfer stream (an Xfer of the program) is a DMA queue: its transfers go in
        # order, one after another; the queues share the channel's bandwidth
        self.qfree: dict[int, int] = {}
        self.dram_free = 0  # the latest end of any transfer
        self.busy: list[tuple[int, int, float]] = []  # the channel's reserved spans
        self.records: dict[tuple[int, int, tuple[int, ...]], Rec] = {}
        self.xrec: dict[tuple[int, tuple[int, ...]], int] = {}  # load instance -> end
        self.xrel: dict[tuple[int, tuple[int, ...]], int] = {}  # load instance -> release
        self.xinst: dict[tuple[int, tuple[int, ...]], tuple[int, ...]] = {}  # reuse -> owner
        self.xlast: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # key, owner
        self.xhist: dict[int, deque[tuple[int, ...]]] = {}
        # (tensor, depth, coordinates of the first `depth` loops) -> its latest write's end
        self.written: dict[tuple[str, int, tuple[int, ...]], int] = {}
        self.writer: dict[tuple[str, int, tuple[int, ...]], int] = {}  # ... and its transfer
        # results leave through a double-buffered staging slot: the producer starts a new
        # tile of a write stream only when the write two tiles back has left for DRAM
        self.wcur: dict[int, tuple[Any, ...]] = {}  # write stream -> the tile being filled
        self.wend: dict[int, deque[int]] = {}  # write stream -> ends of its last two writes
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
        self._incs: dict[tuple[int, OpShape], tuple[tuple[str, float], ...]] = {}
        self._xwords: dict[tuple[int, tuple[int, ...]], int] = {}
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
        axes = []
        for v, tile in ((lp.var, lp.tile), *lp.axes):
            if v is None:
                continue
            lo, n = ranges.get(v, (0, self.p.extent(v)))
            axes.append((v, lo, n, tile))
        trips = math.prod(max(1, -(-n // tile)) for _, _, n, tile in axes)
        smin, smax = min(lp.stages, default=0), max(lp.stages, default=0)
        # a partial last tile of the outermost axis breaks the steady state before it
        # (partial tiles of inner axes recur with the period)
        inner = math.prod(max(1, -(-n // tile)) for _, _, n, tile in axes[1:])
        full = trips - inner if axes and axes[0][2] % axes[0][3] else trips
        here = Carry(lp, coords, ranges, trips, tuple(axes))
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
        stride = 1
        while e < end:
            if (
                not self.exact
                and reg_lo <= e < reg_hi
                and reg_hi - e > 2
                and checks < 256
                and (e - reg_lo) % stride == 0
            ):
                snap = self.snapshot(lp, coords, e)
                checks += 1
                if checks % 32 == 0:
                    stride *= 2  # a long transient: look less often
                if snap is not None:
                    key, F = snap
                    seen = history.get(key)
                    if seen is not None:
                        e0, F0, c0 = seen
                        period, dt = e - e0, F - F0
                        q = (reg_hi - e) // period
                        if q > 0 and dt >= 0:
                            self.jump(lp, coords, e, q, period, dt, c0, here)
                            self.periods.append(Period(self.label(lp), F0, F, period, q))
                            e += q * period
                            history.clear()
                            checks = 256
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
                lf = chain_leaf(ch)
                if lf is not None and lf.partner is not None:
                    pch = self.p_chain.get(lf.partner.id)
                    self.paired[lf.id] = pch is not None and id(pch) in present
        for child, run, it in todo:
            sub = run.sub(it) if run.axes else run.ranges
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
        names = "x".join(v.upper() for v in lp.vars)
        return f"{lp.kind} loop over {names}" if names else f"{lp.kind}"

    @functools.cached_property
    def p_chain(self) -> dict[int, Node]:
        """Leaf id -> the child of a loop whose single-leaf chain it ends (paired ops)."""
        out: dict[int, Node] = {}
        stack: list[Node] = [self.p.root]
        while stack:
            n = stack.pop()
            if isinstance(n, Loop):
                for ch in n.children:
                    lf = chain_leaf(ch)
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
                    (i for i in range(common - 1, -1, -1) if op.carried in leaf.loops[i].vars),
                    None,
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
            elif op.same_pes:
                # (a record forgotten at a snapshot ended before anything still to come)
                rec = self.records.get((prod.id, depth, tuple(prefix) + (0,) * (depth - common)))
                if rec is not None and rec.tpl is not None:
                    start = max(start, rec.start + t.need_inplace(rec.tpl))
            else:
                rec = self.records.get((prod.id, common, tuple(prefix)))
                if rec is not None:
                    start = max(start, rec.end)
        for x in leaf.loads:
            end = self.xrec.get((x.id, coords[: len(x.loops)]))
            if end is not None:
                start = max(start, end)
        for cons in self._downstream.get(leaf.id, ()):
            # a result kept in the buffer for an op on the other array, with no pipeline
            # stages between them: the buffer holds one tile of it (as the capacity check
            # counts), so the next tile waits until the consumer is done with this one
            depth = self.common(leaf, cons)
            if depth and coords[depth - 1] >= 1:
                back = (*coords[: depth - 1], coords[depth - 1] - 1)
                rec = self.records.get((cons.id, depth, back))
                if rec is not None:
                    start = max(start, rec.end)
        for x in self._stores.get(leaf.id, ()):
            tile = coords[: len(x.loops)]
            if self.wcur.get(x.id) != tile:
                self.wcur[x.id] = tile
                ends = self.wend.get(x.id)
                if ends is not None and len(ends) == 2:
                    start = max(start, ends[0])
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
            rkey = (leaf.id, d, coords[:d])
            rec = self.records.get(rkey)
            if rec is None:
                self.records[rkey] = Rec(done)
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
        key = (leaf.id, s)
        inc = self._incs.get(key)
        if inc is None:
            inc = self._increments(leaf, s, ext)
            self._incs[key] = inc
        values = self.c.values
        for name, v in inc:
            values[name] = values.get(name, 0.0) + v
        if len(self.events) < self.max_events:
            self.events.append(Event(leaf.array, leaf.name, start, start + t.compute_end))
        if self.exact:
            self.profiles[leaf.array].append((start, t.profile))

    def _increments(
        self, leaf: Leaf, s: OpShape, ext: dict[str, int]
    ) -> tuple[tuple[str, float], ...]:
        """What one op adds to the counters (cached per leaf and shape)."""
        arch = self.p.arch
        arr = arch.array(leaf.array)
        inc: dict[str, float] = {}

        def add(name: str, v: float) -> None:
            inc[name] = inc.get(name, 0.0) + v

        pes = s.u_r * s.u_c
        key_arr = "array2d" if leaf.array == "2d" else "array1d"
        for k in leaf.kernels:
            steps = s.T
            kc = op_cycles(arr, k)
            points = pes * steps
            add(f"busy.{k.name}", steps * max(kc, 1))
            add(f"pe_cycles.{k.name}", points * max(kc, 1))
            add(f"pe_cycles.{leaf.array}", points * max(kc, 1))
            add(f"ops.{k.name}", 1)
            for o, n in k.ops:
                cost = arr.op(o)
                if cost is None:
                    continue
                for act, cnt in cost.actions:
                    add(f"act.{key_arr}.{act}", points * n * cnt)
            add(f"act.{key_arr}.rf_read", points * len(k.reads))
            add(f"act.{key_arr}.rf_write", points)
            for op in leaf.operands:
                if (
                    op.kernel == k.name
                    and op.place not in ("registers", "stream")
                    and op.kind != "forward"
                ):
                    words = self.region(op.access, ext, op.access.tensor)
                    add("buffer.read_words", words)
                    add(f"buffer.read.{op.tensor}", words)
            out = self.p.source_of.get(k.output.tensor, k.output.tensor)
            if self.p.placement.get(out) not in ("registers", "stream"):
                words = self.region(k.output, ext, k.output.tensor)
                add("buffer.write_words", words)
                add(f"buffer.write.{out}", words)
        return tuple(inc.items())

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
        sizes = tuple(r[1] for _, r in sorted(ranges.items()))
        wkey = (x.id, sizes)
        words = self._xwords.get(wkey, -1)
        if words < 0:
            ext: dict[str, int] = {}
            for k, _ in x.accesses:
                for v in k.space:
                    ext[v] = ranges[v][1] if v in ranges else self.p.extent(v)
            words = max(self.region(acc, ext, acc.tensor) for _, acc in x.accesses)
            self._xwords[wkey] = words
        nbytes = math.ceil(words * self._itemsize(x.tensor) * x.fraction * x.repeat)
        scalesim = self.p.timing == "scalesim"
        if not x.write:
            key = tuple(
                c if x.key_vars.intersection(lp.vars) else -1
                for c, lp in zip(prefix, x.loops, strict=True)
            )
            last = self.xlast.get(x.id)
            if last is not None and last[0] == key and not x.spill and not x.always:
                owner = last[1]
                self.xinst[(x.id, prefix)] = owner
                self.xrec[(x.id, prefix)] = self.xrec.get((x.id, owner), 0)
                return
            start = max(self.qfree.get(x.id, 0), self.issued(x))
            hist = self.xhist.setdefault(x.id, deque(maxlen=2))
            if len(hist) == 2:
                start = max(start, self.xrel.get((x.id, hist[0]), NEG))
            w = self.written.get((x.tensor, x.after, coords[: x.after]))
            if w is not None:
                start = max(start, w)
            cycles = 0 if scalesim else self.p.arch.dram_cycles(nbytes)
            end = start + cycles
            if not scalesim:
                start, end = self.reserve(start, cycles)
                self.qfree[x.id] = end
                self.dram_free = max(self.dram_free, end)
            hist.append(prefix)
            self.xlast[x.id] = (key, prefix)
            self.xrec[(x.id, prefix)] = end
            self.c.add("dram.read_bytes", nbytes)
            self.c.add(f"dram.{x.tensor}", nbytes)
            if not x.spill and self.p.placement.get(x.tensor) in ("dram", "buffer"):
                self.c.add("buffer.fill_words", words * x.fraction)
        else:
            start = max(self.qfree.get(x.id, 0), self.issued(x))
            if x.producer is not None:
                rec = self.records.get((x.producer.id, len(x.loops), prefix))
                if rec is not None:
                    start = max(start, rec.end)
            cycles = 0 if scalesim else self.p.arch.dram_cycles(nbytes)
            end = start + cycles
            if not scalesim:
                start, end = self.reserve(start, cycles)
                self.qfree[x.id] = end
                self.dram_free = max(self.dram_free, end)
                self.wend.setdefault(x.id, deque(maxlen=2)).append(end)
            for d in range(len(coords) + 1):
                tkey = (x.tensor, d, coords[:d])
                self.written[tkey] = max(self.written.get(tkey, NEG), end)
                self.writer[tkey] = x.id
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

    def issued(self, x: Xfer | None = None) -> int:
        """When a transfer is issued: the array that needs it issues it with its previous op
        (a prefetch one op ahead of the array's sequencer), a write once it is produced."""
        if x is not None:
            owners = [x.producer] if x.write and x.producer is not None else x.consumers
            arrays = {lf.array for lf in owners if lf is not None}
            ts = [self.last_start[a] for a in arrays if a in self.last_start]
            if ts:
                return min(ts)
        return min(self.last_start.values()) if self.last_start else 0

    def reserve(self, ready: int, cycles: int) -> tuple[int, int]:
        """Channel time for a transfer of ``cycles`` ready at ``ready``.  Transfers move in
        bursts: one takes whatever channel capacity is left from ``ready`` on, around the
        transfers reserved before it (``busy``: spans with the fraction ``u`` of the channel
        taken; a jump over a steady state leaves its average load).  Returns the transfer's
        first and last cycle + 1."""
        floor = min(self.issued(), ready)
        busy = [seg for seg in self.busy if seg[1] > floor]
        if not cycles:
            self.busy = busy
            return ready, ready
        self.c.add("channel.dram_cycles", cycles)
        t, left = ready, float(cycles)
        first: int | None = None
        out: list[tuple[int, int, float]] = []
        for a, b, u in busy:
            if b <= t or left <= 0:
                out.append((a, b, u))
                continue
            if a > t:  # a free gap [t, a)
                if first is None:
                    first = t
                take = min(left, float(a - t))
                end_ = t + math.ceil(take)
                out.append((t, end_, 1.0))
                left -= take
                t = end_
                if left <= 0:
                    out.append((a, b, u))
                    continue
            lo = max(a, t)
            if lo > a:
                out.append((a, lo, u))
            room = (1.0 - u) * (b - lo)
            if room <= 1e-9:
                out.append((lo, b, u))
                t = b
                continue
            if first is None:
                first = lo
            if room >= left:
                span = math.ceil(left / (1.0 - u))
                stop = min(b, lo + span)
                out.append((lo, stop, min(1.0, u + left / (stop - lo))))
                if stop < b:
                    out.append((stop, b, u))
                left = 0.0
                t = stop
            else:
                out.append((lo, b, 1.0))
                left -= room
                t = b
        if left > 0:
            if first is None:
                first = t
            end_ = t + math.ceil(left)
            out.append((t, end_, 1.0))
            t = end_
        merged: list[tuple[int, int, float]] = []
        for a, b, u in sorted(out):
            if b <= a:
                continue
            if merged and a == merged[-1][1] and abs(u - merged[-1][2]) < 1e-12:
                merged[-1] = (merged[-1][0], b, u)
            else:
                merged.append((a, b, u))
        self.busy = merged
        assert first is not None
        return first, t

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
            ts.append(self.dram_free)
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
            items.append(("d", max(self.dram_free - F, 0)))
            items.append(("q", tuple(sorted((k, v - F) for k, v in self.qfree.items() if v > F))))
            items.append(
                ("D", tuple((max(a, F) - F, b - F, round(u, 9)) for a, b, u in self.busy if b > F))
            )
        for g, b in self.barrier.items():
            if b > F:
                items.append(("b", g, b - F))
        for g, b in self.epoch_done.items():
            if b > F:
                items.append(("B", g, b - F))
        for ck, runs in self.carries.items():
            for c, off in runs:
                items.append(("c", ck, off, c.trips, *self._rel_carry(c, lp, pos, e)))
        # what ended before the frontier cannot delay anything any more: forget it (every
        # future op starts at or after the frontier)
        floor = min(self.last_start.values(), default=0)
        self.records = {k: r for k, r in self.records.items() if r.end > min(F, floor)}
        self.xrec = {k: t for k, t in self.xrec.items() if t > F}
        self.xrel = {k: t for k, t in self.xrel.items() if t > F}
        live = {(x, h) for x, hs in self.xhist.items() for h in hs}
        self.xinst = {k: o for k, o in self.xinst.items() if (k[0], o) in live}
        for (lid, d, pre), rec in self.records.items():
            if rec.end <= F:
                continue
            rpre = pre
            if lid in mine and d > pos:
                rpre = (*pre[:pos], pre[pos] - e, *pre[pos + 1 :])
            items.append(
                ("r", lid, d, rpre, rec.end - F, rec.start - F if rec.tpl is not None else 0)
            )
        inner = lp.xfer_ids
        # a tile that this loop's variables do not index is reused from the iteration that
        # fetched it, however long ago: past the pipeline's depth, only that it was fetched
        # before matters, not when (its records carry the times)
        depth = max(lp.stages, default=0) + 2

        def rel(x: int, pre: tuple[Any, ...]) -> tuple[Any, ...]:
            if x not in inner:
                return pre
            out = self._rel(pre, pos, e)
            if len(out) > pos and out[pos] < -depth and not self._indexed(x, pos):
                return (*out[:pos], "old", *out[pos + 1 :])
            return out

        for (xid, pre), end in self.xrec.items():
            items.append(("x", xid, rel(xid, pre), end - F))
        for (xid, pre), end in self.xrel.items():
            items.append(("y", xid, rel(xid, pre), end - F))
        # a write that ended before the frontier holds nothing up any more; the tile being
        # filled matters only as the one the next op continues (of another run of this
        # loop: none)
        for xid, ends in self.wend.items():
            tile = self.wcur[xid]
            here = rel(xid, tile) if tuple(tile[:pos]) == coords[:pos] else "other"
            items.append(("W", xid, tuple(max(t - F, 0) for t in ends), here))
        # (the reuse keys and slots of transfers outside the loop do not change while it runs)
        for xid in inner:
            kl = self.xlast.get(xid)
            if kl is not None:
                items.append(("k", xid, rel(xid, kl[0]), rel(xid, kl[1])))
            hist = self.xhist.get(xid)
            if hist:
                items.append(("h", xid, tuple(rel(xid, h) for h in hist)))

        self.written = {k: w for k, w in self.written.items() if w > F}
        self.writer = {k: v for k, v in self.writer.items() if k in self.written}
        for (t, d, pre), w in self.written.items():
            inside = d > pos and self.writer.get((t, d, pre)) in inner
            items.append(("w", t, d, self._rel(pre, pos, e) if inside else pre, w - F))
        return frozenset(items), F

    @staticmethod
    def _rel_carry(c: Carry, lp: Loop, pos: int, e: int) -> tuple[Any, ...]:
        """A carried run relative to epoch ``e`` of ``lp``: inside ``lp``, its coordinate
        at ``lp``'s position counts from ``e`` and its ranges of ``lp``'s variables (which
        follow from that coordinate) are left out."""
        if id(c.loop) not in lp.sub_loops or len(c.coords) <= pos:
            return (c.coords, tuple(sorted(c.ranges.items())), c.axes)
        mine = set(lp.vars)
        co = (*c.coords[:pos], c.coords[pos] - e, *c.coords[pos + 1 :])
        rg = tuple(sorted((v, r) for v, r in c.ranges.items() if v not in mine))
        axes = tuple((v, -1, -1, t) if v in mine else (v, lo, n, t) for v, lo, n, t in c.axes)
        return (co, rg, axes)

    @staticmethod
    def _shift_carry(c: Carry, lp: Loop, pos: int, shift: int, outer: Carry) -> Carry:
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
            (v, now[v][0], now[v][1], t) if v in lp.vars else (v, lo, n, t)
            for v, lo, n, t in c.axes
        )
        return Carry(c.loop, co, rg, c.trips, axes)

    def _indexed(self, xid: int, pos: int) -> bool:
        """Whether the loop at ``pos`` around transfer ``xid`` moves its tile."""
        x = self._xfers[xid]
        return pos < len(x.loops) and bool(x.key_vars.intersection(x.loops[pos].vars))

    @functools.cached_property
    def _xfers(self) -> dict[int, Xfer]:
        return {x.id: x for x in self.p.xfers}

    @functools.cached_property
    def _downstream(self) -> dict[int, list[Leaf]]:
        """Leaf id -> the ops on the other array, at the same pipeline stage, that read its
        result from the buffer."""
        out: dict[int, list[Leaf]] = {}
        for c in self.p.leaves:
            for op in c.operands:
                p = op.producer
                if (
                    p is None
                    or p.array == c.array
                    or op.kind in ("forward", "inplace", "down", "up")
                    or op.carried is not None
                    or op.same_pes
                ):
                    continue
                if p.stage != c.stage:
                    continue  # the mapping's pipeline stages pace them
                if c not in out.setdefault(p.id, []):
                    out[p.id].append(c)
        return out

    @functools.cached_property
    def _stores(self) -> dict[int, list[Xfer]]:
        """Leaf id -> the DRAM write streams it fills (none under SCALE-Sim's timing, whose
        runs are stall-free)."""
        out: dict[int, list[Xfer]] = {}
        if self.p.timing == "scalesim":
            return out
        for x in self.p.xfers:
            if x.write and x.producer is not None:
                out.setdefault(x.producer.id, []).append(x)
        return out

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
        run: Carry,
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
            self.qfree = {k: v + shift_t for k, v in self.qfree.items() if v > F}
            # the jumped span carries the period's average load of the channel: the channel
            # cycles reserved in a period (whole cycles per transfer, as reserved), so that a
            # saturated channel stays saturated
            moved = self.c.values.get("channel.dram_cycles", 0.0) - before.get(
                "channel.dram_cycles", 0.0
            )
            load = moved / dt if dt else 0.0
            # what is reserved before the frontier stays (another array may still reach it)
            floor = min(self.last_start.values(), default=F)
            head = [(a, min(b, F), u) for a, b, u in self.busy if b > floor and a < F]
            tail = [(max(a, F) + shift_t, b + shift_t, u) for a, b, u in self.busy if b > F]
            span = [(F, F + shift_t, min(1.0, load))] if shift_t and load > 1e-12 else []
            self.busy = head + span + tail
        for g in self.barrier:
            if self.barrier[g] > F:
                self.barrier[g] += shift_t
        for g in self.epoch_done:
            if self.epoch_done[g] > F:
                self.epoch_done[g] += shift_t
        for ck, runs in list(self.carries.items()):
            self.carries[ck] = [
                (self._shift_carry(c, lp, pos, shift_c, run), off) for c, off in runs
            ]

        def sc(pre: tuple[int, ...]) -> tuple[int, ...]:
            if len(pre) > pos and pre[pos] >= 0:
                return (*pre[:pos], pre[pos] + shift_c, *pre[pos + 1 :])
            return pre

        inner = lp.xfer_ids

        def sx(x: int, pre: tuple[int, ...]) -> tuple[int, ...]:
            return sc(pre) if x in inner else pre

        mine = {lf.id for lf in lp.leaves}
        recs = {}
        for (lid, d, pre), rec in self.records.items():
            if rec.end > F:
                rec = Rec(rec.end + shift_t, rec.start + shift_t, rec.tpl)
                if lid in mine and d > pos:
                    pre = sc(pre)
            recs[(lid, d, pre)] = rec
        self.records = recs
        self.xrec = {(x, sx(x, p)): t + shift_t for (x, p), t in self.xrec.items() if t > F}
        self.xrel = {(x, sx(x, p)): t + shift_t for (x, p), t in self.xrel.items() if t > F}
        self.xinst = {(x, sx(x, p)): sx(x, o) for (x, p), o in self.xinst.items()}
        self.xlast = {x: (sx(x, k), sx(x, o)) for x, (k, o) in self.xlast.items()}
        self.xhist = {x: deque((sx(x, h) for h in hs), maxlen=2) for x, hs in self.xhist.items()}
        self.wend = {
            x: deque((t + shift_t if t > F else t for t in ends), maxlen=2)
            for x, ends in self.wend.items()
        }
        self.wcur = {x: sx(x, tile) for x, tile in self.wcur.items()}

        written, writer = {}, {}
        for (t, d, pre), w in self.written.items():
            if w <= F:
                continue
            xid = self.writer.get((t, d, pre), -1)
            key = (t, d, sc(pre) if d > pos and xid in inner else pre)
            written[key] = w + shift_t
            writer[key] = xid
        self.written, self.writer = written, writer
        for name, v in list(self.c.values.items()):
            self.c.values[name] = v + q * (v - before.get(name, 0.0))
        self.makespan += shift_t
