"""Global-memory traffic of a schedule for given extents: bytes each kernel reads and writes.

The model counts what the kernels request, tile by tile, exactly as the lowering loads and
stores them:

* a tile that does not depend on the loop variable is loaded once per program, before the
  loops (every loop of the kernel reuses it);
* a tile that depends on the loop variable is loaded once per executed iteration of each loop
  that reads it; loops skip the empty tiles the schedule proved to be no-ops, per program;
* a tile counts its valid elements: padding lanes, rows past the end of a rank and the lanes
  of the last partial tile are masked off and move no data.

Caches are not modelled: a tile that two programs both load counts twice.  That is the point
for attention: a one-pass kernel reads K and V once per query tile, a three-pass kernel three
times (K) and once (V), and ``materialize`` trades those re-reads for an intermediate's write
and read.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sympy

from einsumcc.ir.nodes import Access, is_var_symbol
from einsumcc.schedule.nodes import NodeProgram
from einsumcc.schedule.schedule import AxisRole, Kernel, Loop, Schedule
from einsumcc.schedule.tiles import segments


@dataclass(frozen=True)
class TensorTraffic:
    tensor: str
    read: int  # bytes
    written: int  # bytes
    size: int  # bytes of the whole tensor
    reuse: str  # e.g. "1 read per tile of P (64 tiles)"


@dataclass(frozen=True)
class KernelTraffic:
    kernel: str
    programs: int
    iterations: tuple[tuple[int, int, int], ...]  # (loop, executed, all) iterations, summed
    tensors: tuple[TensorTraffic, ...]

    @property
    def read(self) -> int:
        return sum(t.read for t in self.tensors)

    @property
    def written(self) -> int:
        return sum(t.written for t in self.tensors)


@dataclass(frozen=True)
class TrafficReport:
    extents: tuple[tuple[str, int], ...]
    kernels: tuple[KernelTraffic, ...]

    @property
    def read(self) -> int:
        return sum(k.read for k in self.kernels)

    @property
    def written(self) -> int:
        return sum(k.written for k in self.kernels)


def itemsize(prog: NodeProgram, tensor: str) -> int:
    if tensor in prog.parts:
        return 4
    return prog.cascade.tensor(tensor).dtype.itemsize


def _dims_of(prog: NodeProgram, tensor: str) -> list[tuple[str, bool]]:
    if tensor in prog.parts:
        return [(r, False) for r in prog.parts[tensor]]
    return [(d.rank, d.iterative) for d in prog.cascade.tensor(tensor).dims]


def read_levels(prog: NodeProgram, k: Kernel) -> tuple[list[Access], dict[int, list[Access]]]:
    """Kernel ``k``'s global reads loaded once per program, and those loaded per iteration of
    each loop (by loop number): a read whose indices use the loop variable is per iteration."""
    global_reads = set(k.reads)

    def reads(key: str) -> list[Access]:
        return [a for a in prog.node(key).reads if a.tensor in global_reads]

    program_level: list[Access] = []
    loop_level: dict[int, list[Access]] = {}
    for key in k.before:
        program_level.extend(reads(key))
    for lp in k.loops:
        for key in lp.nodes:
            for acc in reads(key):
                if any(str(s) == lp.var for ix in acc.indices for s in ix.free_symbols):
                    loop_level.setdefault(lp.number, []).append(acc)
                else:
                    program_level.append(acc)
        for key in lp.after:
            program_level.extend(reads(key))
    return (
        list(dict.fromkeys(program_level)),
        {n: list(dict.fromkeys(accs)) for n, accs in loop_level.items()},
    )


class _Counter:
    def __init__(self, s: Schedule, k: Kernel, extents: Mapping[str, int]) -> None:
        assert s.program is not None
        self.s = s
        self.prog = s.program
        self.k = k
        self.ext = extents
        self._lanes: dict[Access, set[str]] = {}
        # index-per-program grid variables that no loop bound reads: every program along them
        # moves the same bytes, so one stands for all (``weight``), stores of outputs that
        # lack them excepted (only the first program along a missing variable stores)
        self.uniform: tuple[str, ...] = ()

    def lane_vars(self, acc: Access) -> set[str]:
        if acc not in self._lanes:
            self._lanes[acc] = self._lane_vars(acc)
        return self._lanes[acc]

    def _lane_vars(self, acc: Access) -> set[str]:
        out = set()
        for ix in acc.indices:
            for sym in ix.free_symbols:
                if is_var_symbol(sym) and self.k.has_axis(str(sym)) and self.k.axis(str(sym)).lanes:
                    out.add(str(sym))
        return out

    def programs(self) -> tuple[list[dict[str, int]], int]:
        """The programs to count (index 0 along :attr:`uniform` variables), and how many
        programs there are in all."""
        ranges = []
        total = 1
        for v in self.k.grid:
            a = self.k.axis(v)
            n = self.ext[a.rank]
            r = range(math.ceil(n / a.block)) if a.lanes else range(n)
            total *= len(r)
            ranges.append(range(1) if v in self.uniform else r)
        combos = itertools.product(*ranges)
        return [dict(zip(self.k.grid, combo, strict=True)) for combo in combos], total

    def weight(self, present: set[str] | None = None) -> int:
        """Programs one counted program stands for (only along ``present``, if given)."""
        w = 1
        for v in self.uniform:
            if present is None or v in present:
                w *= self.ext[self.k.axis(v).rank]
        return w

    def count(self, lanes: set[str], prog: Mapping[str, int], stream_valid: int | None) -> int:
        """Valid elements of a tile over ``lanes`` for one program (and one stream tile)."""
        n = 1
        for v in lanes:
            a = self.k.axis(v)
            ext = self.ext[a.rank]
            if a.role is AxisRole.GRID:
                start = prog[v] * a.block
                n *= max(0, min(a.block, ext - start))
            elif a.role is AxisRole.STREAM:
                assert stream_valid is not None
                n *= stream_valid
            else:
                n *= min(a.block, ext)
        return n

    def symbols(self, prog: Mapping[str, int]) -> dict[str, int]:
        out: dict[str, int] = dict(self.ext)
        for v in self.k.grid:
            a = self.k.axis(v)
            if a.lanes:
                start = prog[v] * a.block
                out[f"lo.{v}"] = start
                out[f"hi.{v}"] = min(start + a.block, self.ext[a.rank]) - 1
            else:
                out[f"idx.{v}"] = prog[v]
        return out

    def run(self) -> KernelTraffic:
        k = self.k
        reads: dict[str, int] = {}
        writes: dict[str, int] = {}
        bounds = self.loop_bounds()
        read_by_bounds = {str(s) for _, syms, _ in bounds for s in syms}
        self.uniform = tuple(
            v for v in k.grid if not k.axis(v).lanes and f"idx.{v}" not in read_by_bounds
        )
        programs, n_programs = self.programs()
        w = self.weight()
        program_level, loop_level = read_levels(self.prog, self.k)
        stores_once = self.stores_once()
        iterations: dict[int, list[int]] = {lp.number: [0, 0] for lp in k.loops}
        for prog in programs:
            for acc in program_level:
                n = self.count(self.lane_vars(acc), prog, None)
                _add(reads, acc.tensor, w * n * itemsize(self.prog, acc.tensor))
            for key, out in stores_once:
                self.store(writes, key, out, prog, None)
            sym = self.symbols(prog)
            for lp, syms, fn in bounds:
                start, end, count = (int(v) for v in fn(*(sym[str(s)] for s in syms)))
                iterations[lp.number][0] += w * max(0, end - start)
                iterations[lp.number][1] += w * count
                self.tiles(reads, writes, lp, loop_level.get(lp.number, []), prog, (start, end))
        names = dict.fromkeys([*k.reads, *k.writes])
        tensors = tuple(self.tensor_traffic(name, reads, writes) for name in names)
        return KernelTraffic(
            k.name,
            n_programs,
            tuple((n, a, b) for n, (a, b) in iterations.items()),
            tensors,
        )

    def loop_bounds(self) -> list[tuple[Loop, list[sympy.Symbol], Callable[..., Any]]]:
        """Per loop: the symbols of its bounds and a function giving start, end and count."""
        out = []
        for lp in self.k.loops:
            seg = segments(self.k, lp, {r: self.ext.get(r) for r in self.ext})
            exprs = [seg.start, seg.end, seg.count]
            syms = sorted({s for e in exprs for s in e.free_symbols}, key=str)
            fn = sympy.lambdify(
                syms,
                exprs,
                modules=[
                    {"floor": math.floor, "ceiling": math.ceil, "Max": max, "Min": min},
                    "math",
                ],
            )
            out.append((lp, syms, fn))
        return out

    def stores_once(self) -> list[tuple[str, Access]]:
        """Global writes stored once per program (after the loop that completes them)."""
        k = self.k
        out: list[tuple[str, Access]] = []
        for key in k.before:
            if key in k.writes:
                out.append((key, self.prog.node(key).output))
        for lp in k.loops:
            # accumulators and values after the loop; a recurrence's init iterate
            for key in lp.accumulators + lp.after + lp.carried:
                if key in k.writes and key not in lp.recomputed:
                    out.append((key, self.prog.node(key).output))
        return out

    def store(
        self,
        writes: dict[str, int],
        key: str,
        out: Access,
        prog: Mapping[str, int],
        valid: int | None,
        times: int = 1,
    ) -> None:
        """One program's store of ``out``, ``times`` over (only the first program along a
        grid variable that ``out`` lacks stores it)."""
        present = {str(s) for ix in out.indices for s in ix.free_symbols}
        if any(prog[v] != 0 for v in self.k.grid if v not in present):
            return
        n = self.count(self.lane_vars(out), prog, valid)
        _add(writes, key, self.weight(present) * times * n * itemsize(self.prog, key))

    def tiles(
        self,
        reads: dict[str, int],
        writes: dict[str, int],
        lp: Loop,
        loads: list[Access],
        prog: Mapping[str, int],
        span: tuple[int, int],
    ) -> None:
        """The loads and stores of iterations ``start`` to ``end`` of loop ``lp`` in one
        program.  A count is linear in the valid points of the stream tile, so the
        iterations sum in closed form: the stream's valid points over the span."""
        start, end = span
        if end <= start:
            return
        ax = self.k.axis(lp.var)
        valid = end - start
        if ax.role is AxisRole.STREAM:
            valid = max(0, min(end * ax.block, self.ext[ax.rank]) - start * ax.block)
        for acc in loads:
            lanes = self.lane_vars(acc)
            per = self.count(lanes, prog, 1)
            times = valid if lp.var in lanes else end - start
            _add(reads, acc.tensor, self.weight() * per * times * itemsize(self.prog, acc.tensor))
        for key in lp.stores:
            out = self.prog.node(key).output
            lanes = self.lane_vars(out)
            times = valid if lp.var in lanes else end - start
            self.store(writes, key, out, prog, 1, times)

    def tensor_traffic(
        self, name: str, reads: Mapping[str, int], writes: Mapping[str, int]
    ) -> TensorTraffic:
        size = itemsize(self.prog, name)
        for rank, iterative in _dims_of(self.prog, name):
            size *= self.ext[rank] + (1 if iterative else 0)
        read = reads.get(name, 0)
        return TensorTraffic(name, read, writes.get(name, 0), size, self.reuse(name, read, size))

    def reuse(self, name: str, read: int, size: int) -> str:
        if not read or not size:
            return ""
        carried = {r for r, _ in _dims_of(self.prog, name)}
        tiles = 1
        over: list[str] = []
        for v in self.k.grid:
            a = self.k.axis(v)
            if a.rank in carried:
                continue
            # a grid rank the tensor does not have: every program along it reads it again
            n = self.ext[a.rank]
            count = math.ceil(n / a.block) if a.lanes else n
            tiles *= count
            over.append(f"{'tile' if a.lanes else 'index'} of {a.rank}")
        times = read / size
        if not over:
            return f"read {_times(times)}"
        per = times / tiles
        return f"read {_times(per)} per {' x '.join(over)} ({tiles} in all)"


def _add(totals: dict[str, int], key: str, n: int) -> None:
    totals[key] = totals.get(key, 0) + n


def _times(x: float) -> str:
    if x == 1:
        return "once"
    if x == int(x):
        return f"{int(x)} times"
    return f"{x:.3g} times"


def analyze_traffic(s: Schedule, dims: Mapping[str, int]) -> TrafficReport:
    """Bytes read and written by every kernel of ``s`` at the extents ``dims`` (every rank)."""
    kernels = tuple(_Counter(s, k, dims).run() for k in s.kernels)
    return TrafficReport(tuple(sorted(dims.items())), kernels)
