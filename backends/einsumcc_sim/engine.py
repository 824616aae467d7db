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

import math
from collections import deque
from typing import Any

from einsumcc.diagnostics import EinError
from einsumcc_sim.facts import ProgramFacts
from einsumcc_sim.limits import bar, current, op_count, too_many_ops
from einsumcc_sim.program import Leaf, Node, SimLoop, SimProgram, Xfer, chain_leaf
from einsumcc_sim.state import (
    NEG,
    ArrayState,
    Carry,
    Coords,
    Counters,
    DramChannel,
    DramContents,
    Event,
    GroupSync,
    LoadSlots,
    OpRecords,
    Period,
    Rec,
    WriteSlots,
)
from einsumcc_sim.steady import Watch, label
from einsumcc_sim.template import AffineTemplate, ExactTemplate, OpShape, affine, exact

__all__ = ["NEG", "Carry", "Counters", "Engine", "Event", "Period", "Rec"]

Ranges = dict[str, tuple[int, int]]


def _progress(total_ops: int, exact: bool, functional: bool) -> Any:
    """The progress bar of one run; fast mode jumps over steady states, so its count of ops
    has no known end."""
    mode = "--functional" if functional else "--exact" if exact else ""
    return bar(total_ops if exact else None, f"simulate {mode}".rstrip())


def _check_mode(prog: SimProgram, exact_mode: bool) -> bool:
    """``exact_mode``, which only the faithful cycle-level model supports."""
    if exact_mode and prog.model.hop != 1:
        raise EinError.plain(
            f"--exact simulates the faithful cycle-level model, not --model {prog.model.name}",
            hint="use --model faithful with --exact",
        )
    return exact_mode


class Engine:
    """Walks a program's loop tree and times every op and transfer (see the module's
    docstring).  Its state is one object per simulated resource (:mod:`einsumcc_sim.state`);
    what it derives from the program once is in :class:`~einsumcc_sim.facts.ProgramFacts`."""

    def __init__(self, prog: SimProgram, exact_mode: bool = False, max_events: int = 20000) -> None:
        self.p = prog
        self.exact = _check_mode(prog, exact_mode)
        self.link = prog.arch.link_latency if prog.model.link else 0
        self.facts = ProgramFacts(prog)
        self.arrays: dict[str, ArrayState] = {"2d": ArrayState(), "1d": ArrayState()}
        self.channel = DramChannel()
        self.dram = DramContents()
        self.loads = LoadSlots()
        self.writes = WriteSlots()
        self.records = OpRecords()
        self.sync = GroupSync()
        self.carries: dict[int, list[tuple[Carry, int]]] = {}
        self.paired: dict[int, bool] = {}  # leaf id -> its partner issues in this epoch too
        self.lead: dict[int, tuple[int, int, Any]] = {}  # follower id -> leader (start, K, tpl)
        self.c = Counters()
        self.events: list[Event] = []
        self.max_events = max_events
        self.periods: list[Period] = []
        self.makespan = 0
        # called with (leaf, ranges, shape, template) for every op, in program order
        self.on_op: Any = None
        self.ops = 0  # ops simulated one by one (not those of a jumped steady state)
        self.max_ops = current().max_ops
        self.total_ops = 0  # about how many the program has (set by run)
        self.bar: Any = None

    @property
    def profiles(self) -> dict[str, list[Any]]:
        """Exact mode: (start, per-cycle busy PEs) of every op, per array."""
        return {a: st.profiles for a, st in self.arrays.items()}

    @property
    def dram_spans(self) -> list[tuple[int, int]]:
        return self.channel.spans

    def last_starts(self) -> list[int]:
        return [st.last_start for st in self.arrays.values() if st.last_start is not None]

    def tpl(self, shape: OpShape) -> AffineTemplate | ExactTemplate:
        return exact(shape) if self.exact else affine(shape)

    # ------------------------------------------------------------ the walk
    def run(self) -> None:
        self.total_ops = op_count(self.p)
        if self.exact and self.total_ops > self.max_ops:  # before it starts
            raise too_many_ops(0, self.max_ops, self.total_ops, True)
        self.bar = _progress(self.total_ops, self.exact, self.on_op is not None)
        try:
            self.node(self.p.root, (), {})
            self.flush_all()
        finally:
            if self.bar is not None:
                self.bar.close()

    def node(self, n: Node, coords: Coords, ranges: Ranges) -> None:
        if isinstance(n, SimLoop):
            self.loop(n, coords, ranges)
        elif isinstance(n, Leaf):
            self.leaf(n, coords, ranges)
        else:
            self.xfer(n, coords, ranges)

    def loop(self, lp: SimLoop, coords: Coords, ranges: Ranges) -> None:
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
        watch = Watch(smax, reg_hi) if not self.exact else None
        e = 0
        while e < end:
            jumped = watch.look(self, lp, coords, e, here) if watch is not None else 0
            if jumped:
                e += jumped
                continue
            self.epoch(lp, e, runs)
            e += 1
        if lp.carry:
            # the pipeline goes on in the loop's next run: keep the runs with instances left
            kept = [(c, off - trips) for c, off in runs if off - trips + c.trips > -smax]
            if kept:
                self.carries[id(lp)] = kept

    def epoch(self, lp: SimLoop, e: int, runs: list[tuple[Carry, int]]) -> None:
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
            self.sync.barrier[lp.group] = self.sync.epoch_done.get(lp.group, 0)
        if lp.pairs:
            present = {id(ch) for ch, _, _ in todo}
            for ch, _, _ in todo:
                lf = chain_leaf(ch)
                if lf is not None and lf.partner is not None:
                    pch = self.facts.p_chain.get(lf.partner.id)
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

    @staticmethod
    def label(lp: SimLoop) -> str:
        return label(lp)

    def _guarded(self, guard: tuple[str, ...], ranges: Ranges) -> bool:
        """Whether an ``at_last`` op or transfer skips this iteration (not the last of its
        loop over a guard variable)."""
        for v in guard:
            lo, n = ranges.get(v, (0, self.p.extent(v)))
            if lo + n < self.p.extent(v):
                return True
        return False

    # ------------------------------------------------------------ ops
    def leaf(self, leaf: Leaf, coords: Coords, ranges: Ranges) -> None:
        if self._guarded(leaf.guard, ranges):
            return
        self.ops += 1
        if not self.ops & 1023:
            if self.ops > self.max_ops:
                raise too_many_ops(self.ops, self.max_ops, self.total_ops, self.exact)
            if self.bar is not None:
                self.bar.update(1024)
        if self.carries:
            for key, runs in list(self.carries.items()):
                if runs[0][0].loop not in leaf.loops:
                    self.flush(key)
        facts = self.facts
        ext = facts.ext(leaf, ranges)
        paired = leaf.partner is not None and self.paired.get(leaf.id, False)
        shape = facts.shape(leaf, ext, facts.partner_k(leaf) if paired else 0)
        t = self.tpl(shape)
        start = max(
            self._array_ready(leaf, t, paired),
            self._operands_ready(leaf, coords, t),
            self._buffer_ready(leaf, coords),
        )
        if leaf.mode in ("sequential", "tile-serial"):
            start = max(start, self.sync.barrier.get(leaf.group, 0))
        self._issue(leaf, coords, start, shape, t, paired)
        self.count_op(leaf, shape, ext, start, t)
        if self.on_op is not None:
            self.on_op(leaf, ranges, shape, t)

    def _array_ready(self, leaf: Leaf, t: Any, paired: bool) -> int:
        """When the array's PEs and ports are free of its previous ops."""
        start = 0
        follow = self.lead.pop(leaf.id, None) if paired and not leaf.leads else None
        for s0, t0 in self.arrays[leaf.array].ops:
            if follow is not None and s0 == follow[0] and t0 is follow[2]:
                start = max(start, s0 + follow[1])  # one step of the leader, then alternate
                continue
            start = max(start, s0, s0 + t0.gap_after(t))
        return start

    def _operands_ready(self, leaf: Leaf, coords: Coords, t: Any) -> int:
        """When every operand produced by another op is there (in the PEs, through the
        link, or in the buffer)."""
        start = 0
        for op in leaf.operands:
            prod = op.producer
            if prod is None or op.kind == "forward":
                continue
            common = self.facts.common(leaf, prod)
            prefix = _producer_prefix(leaf, op.carried, coords, common)
            if prefix is None:
                continue
            depth = len(prod.loops)
            if op.kind in ("inplace", "down", "up") or op.same_pes:
                full = (*prefix, *(0,) * (depth - common))
                rec = self.records.get(prod.id, depth, full)
                # (a record forgotten at a snapshot ended before anything still to come)
                if rec is not None and rec.tpl is not None:
                    start = max(start, rec.start + self._need(op.kind, op.streamed, t, rec))
            else:
                rec = self.records.get(prod.id, common, prefix)
                if rec is not None:
                    start = max(start, rec.end)
        return start

    def _need(self, kind: str, streamed: bool, t: Any, rec: Rec) -> Any:
        """Cycles after its producer's start at which an op may start, by the operand's
        way from it."""
        if kind in ("inplace", "scalar"):
            return t.need_inplace(rec.tpl)
        if streamed:
            return t.need_streamed(rec.tpl, self.link)
        return t.need_from_columns(rec.tpl.ready, self.link)

    def _buffer_ready(self, leaf: Leaf, coords: Coords) -> int:
        """When the op's DRAM tiles are loaded and its buffer space is free: the consumers
        of its previous result on the other array are done, and a staging slot of every
        write stream it fills is free."""
        start = 0
        for x in leaf.loads:
            end = self.loads.end.get((x.id, coords[: len(x.loops)]))
            if end is not None:
                start = max(start, end)
        for cons in self.facts.downstream.get(leaf.id, ()):
            # a result kept in the buffer for an op on the other array, with no pipeline
            # stages between them: the buffer holds one tile of it (as the capacity check
            # counts), so the next tile waits until the consumer is done with this one
            depth = self.facts.common(leaf, cons)
            if depth and coords[depth - 1] >= 1:
                back = (*coords[: depth - 1], coords[depth - 1] - 1)
                rec = self.records.get(cons.id, depth, back)
                if rec is not None:
                    start = max(start, rec.end)
        for x in self.facts.stores.get(leaf.id, ()):
            slot = self.writes.wait(x.id, coords[: len(x.loops)])
            if slot is not None:
                start = max(start, slot)
        return start

    def _issue(
        self, leaf: Leaf, coords: Coords, start: int, shape: OpShape, t: Any, paired: bool
    ) -> None:
        """Record an op issued at ``start``."""
        done = start + t.done
        arr = self.arrays[leaf.array]
        arr.ops.append((start, t))
        if paired and leaf.leads and leaf.partner is not None:
            pk = self.facts.partner_k(leaf)
            # one step of the leader (its own cycles when the partner's steps ran out first)
            self.lead[leaf.partner.id] = (start, shape.K - pk if pk < shape.K else shape.K, t)
        arr.last_start = start
        sync = self.sync
        if leaf.mode == "sequential":
            sync.barrier[leaf.group] = max(sync.barrier.get(leaf.group, 0), done)
        elif leaf.mode == "tile-serial":
            # the next tile waits for these PEs to finish computing; results still leaving
            # the array are waited for by their consumers only
            busy = start + t.compute_end
            sync.epoch_done[leaf.group] = max(sync.epoch_done.get(leaf.group, 0), busy)
        self.records.record(leaf.id, coords, start, done, t)
        for x in leaf.loads:
            self.loads.released(x.id, coords[: len(x.loops)], done)
        self.makespan = max(self.makespan, done)

    def count_op(self, leaf: Leaf, s: OpShape, ext: dict[str, int], start: int, t: Any) -> None:
        values = self.c.values
        for name, v in self.facts.increments(leaf, s, ext):
            values[name] = values.get(name, 0.0) + v
        if len(self.events) < self.max_events:
            self.events.append(Event(leaf.array, leaf.name, start, start + t.compute_end))
        if self.exact:
            self.arrays[leaf.array].profiles.append((start, t.profile))

    # ------------------------------------------------------------ transfers
    def xfer(self, x: Xfer, coords: Coords, ranges: Ranges) -> None:
        if self._guarded(x.guard, ranges):
            return
        words = self.facts.xfer_words(x, ranges)
        nbytes = math.ceil(words * self.facts.itemsize(x.tensor) * x.fraction * x.repeat)
        span = self._write(x, coords, nbytes) if x.write else self._load(x, coords, words, nbytes)
        if span is None:
            return
        start, end, cycles = span
        if cycles:
            self.makespan = max(self.makespan, end)
            if len(self.events) < self.max_events:
                self.events.append(
                    Event("dram", ("write " if x.write else "load ") + x.tensor, start, end)
                )
            if self.exact:
                self.channel.spans.append((start, end))

    def _transfer(self, x: Xfer, start: int, nbytes: int) -> tuple[int, int, int]:
        """Time a transfer of ``nbytes`` ready at ``start``: (start, end, cycles)."""
        if self.p.timing == "scalesim":
            return start, start, 0
        cycles = self.p.arch.dram_cycles(nbytes)
        floor = min(self.issued(), start)
        if cycles:
            self.c.add("channel.dram_cycles", cycles)
        start, end = self.channel.issue(x.id, start, cycles, floor)
        return start, end, cycles

    def _load(
        self, x: Xfer, coords: Coords, words: int, nbytes: int
    ) -> tuple[int, int, int] | None:
        loads = self.loads
        prefix = coords[: len(x.loops)]
        key = tuple(
            c if x.key_vars.intersection(lp.vars) else -1
            for c, lp in zip(prefix, x.loops, strict=True)
        )
        last = loads.last.get(x.id)
        if last is not None and last[0] == key and not x.spill and not x.always:
            owner = last[1]
            loads.owner[(x.id, prefix)] = owner
            loads.end[(x.id, prefix)] = loads.end.get((x.id, owner), 0)
            return None  # the tile is still in the buffer
        start = max(self.channel.qfree.get(x.id, 0), self.issued(x))
        hist = loads.history.setdefault(x.id, deque(maxlen=2))
        if len(hist) == 2:
            start = max(start, loads.release.get((x.id, hist[0]), NEG))
        w = self.dram.written.get((x.tensor, x.after, coords[: x.after]))
        if w is not None:
            start = max(start, w)
        span = self._transfer(x, start, nbytes)
        hist.append(prefix)
        loads.last[x.id] = (key, prefix)
        loads.end[(x.id, prefix)] = span[1]
        self.c.add("dram.read_bytes", nbytes)
        self.c.add(f"dram.{x.tensor}", nbytes)
        if not x.spill and self.p.placement.get(x.tensor) in ("dram", "buffer"):
            self.c.add("buffer.fill_words", words * x.fraction)
        return span

    def _write(self, x: Xfer, coords: Coords, nbytes: int) -> tuple[int, int, int]:
        prefix = coords[: len(x.loops)]
        start = max(self.channel.qfree.get(x.id, 0), self.issued(x))
        if x.producer is not None:
            rec = self.records.get(x.producer.id, len(x.loops), prefix)
            if rec is not None:
                start = max(start, rec.end)
        span = self._transfer(x, start, nbytes)
        if self.p.timing != "scalesim":
            self.writes.ends.setdefault(x.id, deque(maxlen=2)).append(span[1])
        self.dram.record(x.tensor, x.id, coords, span[1])
        self.c.add("dram.write_bytes", nbytes)
        self.c.add(f"dram.{x.tensor}", nbytes)
        return span

    def issued(self, x: Xfer | None = None) -> int:
        """When a transfer is issued: the array that needs it issues it with its previous op
        (a prefetch one op ahead of the array's sequencer), a write once it is produced."""
        if x is not None:
            owners = [x.producer] if x.write and x.producer is not None else x.consumers
            names = {lf.array for lf in owners if lf is not None}
            ts = [
                st.last_start
                for a, st in self.arrays.items()
                if a in names and st.last_start is not None
            ]
            if ts:
                return min(ts)
        return min(self.last_starts(), default=0)

    # ------------------------------------------------------------ periodicity
    def frontier(self, lp: SimLoop) -> int | None:
        ts = [self.arrays[a].last_start for a in lp.arrays]
        if any(t is None for t in ts):
            return None
        starts = [t for t in ts if t is not None]
        if not starts and lp.dram and self.p.timing != "scalesim":
            starts.append(self.channel.free)
        return min(starts) if starts else None


def _producer_prefix(leaf: Leaf, carried: str | None, coords: Coords, common: int) -> Coords | None:
    """The producer's iteration that an operand reads (the previous one along a
    carried variable; None: the first iterate, which comes from the init)."""
    prefix = list(coords[:common])
    if carried is not None:
        pos = next((i for i in range(common - 1, -1, -1) if carried in leaf.loops[i].vars), None)
        if pos is None or prefix[pos] == 0:
            return None
        prefix[pos] -= 1
    return tuple(prefix)
