"""The mapper: a search over mappings of a cascade on an architecture (``einsumcc map``).

The search space is that of the mapping files (``docs/mapper.md``): per group, the order and
the tiles of its loops (``fit`` tiles and fixed factors, ragged tails allowed) and its
pipelining mode (sequential, pipelined, interleaved, tile-serial) with its stages; per
Einsum, its array and the ranks spatial on it (a 2D GEMM as ``os``, ``ws`` or ``is``),
with its long streams taken whole or in chunks; per tensor, DRAM or the global buffer
(or the PEs' registers).  Fusion follows from placement and grouping: an intermediate in
the buffer is fused with its consumers, one in DRAM is spilled.

It starts from seeds (the default mapping's recipes and every mapping preset that applies
to the cascade), and walks the neighbourhood of every mapping it simulates, best first:

1. **reject** before simulating: a mapping whose lowering breaks a rule (the buffer's or
   the registers' capacity, a stage that runs ahead of a dependence) is counted, not run;
2. **bound**: every candidate gets an analytic lower bound (per Einsum: its folds' steps on
   its array, its buffer reads through the read ports; DRAM traffic of what is placed in
   DRAM over the channel's bandwidth), and candidates are taken in the order of it;
3. **prune**: a candidate whose bound cannot beat the best simulated so far is not run;
4. **memoize**: bounds are kept per frozen sub-mapping (an Einsum's map and the placement
   of what it touches), and every mapping is considered once.

Every figure of a result comes from the simulator (``report.simulate``): nothing is a
closed form.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from einsumcc.diagnostics import EinError
from einsumcc.ir.bind import bind
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import Role
from einsumcc_sim.arch import Arch
from einsumcc_sim.kernel import PEKernel, kernels
from einsumcc_sim.mapping import (
    FIT,
    MODES,
    KernelMap,
    MappingGroup,
    _map_1d,
    _map_2d,
    default_mapping,
    default_recipes,
    load_mapping,
)
from einsumcc_sim.mapping import Mapping as SimMapping
from einsumcc_sim.model import FAITHFUL, ModelOptions
from einsumcc_sim.names import MAPPING_PRESETS
from einsumcc_sim.program import op_cycles
from einsumcc_sim.work import Work

if TYPE_CHECKING:
    from einsumcc_sim.program import SimProgram
    from einsumcc_sim.report import SimReport

OBJECTIVES = ("cycles", "energy", "edp")
NEIGHBOUR_OPS = 60_000  # ops a neighbour's engine run may simulate one by one


@dataclass(frozen=True)
class Evaluated:
    """One simulated mapping."""

    mapping: SimMapping
    cycles: int
    energy_pj: float
    utilization: tuple[tuple[str, float], ...]
    dram_bytes: int

    def score(self, objective: str) -> float:
        return objective_value(objective, self.cycles, self.energy_pj)


@dataclass(frozen=True)
class MapResult:
    """What ``einsumcc map`` reports; ``to_dict()`` is its ``--json``."""

    cascade: str
    arch: str
    objective: str
    best: Evaluated
    considered: int
    simulated: int
    rejected: int
    pruned: int
    seconds: float
    pareto: tuple[tuple[int, float], ...]
    points: tuple[tuple[int, float], ...] = dataclasses.field(default=(), repr=False)

    @property
    def mappings_per_second(self) -> float:
        return self.considered / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        b = self.best
        return {
            "cascade": self.cascade,
            "arch": self.arch,
            "objective": self.objective,
            "best": {
                "cycles": b.cycles,
                "energy_pj": b.energy_pj,
                "utilization": dict(b.utilization),
                "dram_bytes": b.dram_bytes,
                "name": b.mapping.name,
                "mapping": b.mapping.render(),
            },
            "evaluated": self.considered,
            "simulated": self.simulated,
            "rejected": self.rejected,
            "pruned": self.pruned,
            "seconds": self.seconds,
            "mappings_per_second": self.mappings_per_second,
            "pareto": [{"cycles": c, "energy_pj": e} for c, e in self.pareto],
        }

    def render(self) -> str:
        b = self.best
        u = dict(b.utilization)
        lines = [
            f"{self.cascade} on {self.arch}: best mapping by {self.objective} ({b.mapping.name})",
            f"  cycles        {b.cycles:,}",
            f"  energy        {b.energy_pj:.6g} pJ",
            f"  utilization   2D {u.get('2d', 0.0):.4f}   1D {u.get('1d', 0.0):.4f}",
            f"  DRAM          {b.dram_bytes:,} B",
            f"  search        {self.considered} mappings considered, {self.simulated} "
            f"simulated, {self.rejected} rejected by the rules, {self.pruned} pruned by "
            f"their bound; {self.seconds:.1f} s ({self.mappings_per_second:.1f} mappings/s)",
            "  Pareto front (cycles, energy pJ):",
        ]
        lines += [f"    {c:>16,}  {e:.6g}" for c, e in self.pareto]
        return "\n".join(lines) + "\n"


def objective_value(objective: str, cycles: float, energy_pj: float) -> float:
    if objective == "cycles":
        return float(cycles)
    if objective == "energy":
        return float(energy_pj)
    return float(cycles) * float(energy_pj)


# ---------------------------------------------------------------- the lower bound


class RooflineBounds:
    """Analytic lower bounds of a mapping's cycles and energy, memoized per frozen
    sub-mapping (an Einsum's map with the placement of the tensors it touches)."""

    def __init__(self, cascade: Cascade, arch: Arch, dims: Mapping[str, int]) -> None:
        self.arch = arch
        b = bind(cascade, dims)
        self.extents = {v: int(b.extents[r]) for v, r in cascade.var_ranks.items()}
        self.kernels = {k.name: k for k in kernels(cascade)}
        self.sizes: dict[str, int] = {}
        self.roles: dict[str, Role] = {}
        for t in cascade.tensors:
            n = 1
            for d in t.dims:
                n *= int(b.extents[d.rank]) if d.rank in b.extents else 1
            self.sizes[t.name] = n * t.dtype.itemsize
            self.roles[t.name] = t.role
        self._memo: dict[Any, tuple[str, float, float]] = {}
        self.hits = 0

    def einsum(
        self, k: PEKernel, km: KernelMap, place: tuple[tuple[str, str], ...]
    ) -> tuple[str, float, float]:
        """(array, compute cycles, buffer-read cycles) of one Einsum: its folds' steps at
        its op's cycles per step, and its buffer-resident operands read once."""
        key = (k.name, km, place)
        hit = self._memo.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        if km.array not in ("2d", "1d"):
            out = ("none", 0.0, 0.0)
        else:
            arr = self.arch.array(km.array)
            span = {km.rows: arr.rows, km.cols: arr.cols}
            steps = 1.0
            for v in k.space:
                n = self.extents.get(v, 1)
                steps *= math.ceil(n / span[v]) if v in span and v is not None else n
            compute = steps * max(1, op_cycles(arr, k))
            word = max(1, k.itemsize)
            rd = self.arch.buffer.words_per_cycle(word, write=False)
            words = sum(self.sizes.get(t, 0) // word for t, p in place if p == "buffer")
            out = (km.array, compute, words / rd)
        self._memo[key] = out
        return out

    def cycles(self, m: SimMapping) -> float:
        per_array: dict[str, float] = {}
        buffer = 0.0
        placement = dict(m.placement)
        for name, km in m.kernels:
            k = self.kernels.get(name)
            if k is None:
                continue
            touched = tuple(
                (a.tensor, placement.get(a.tensor, "buffer")) for a in (*k.reads, k.output)
            )
            array, compute, reads = self.einsum(k, km, touched)
            per_array[array] = per_array.get(array, 0.0) + compute
            buffer += reads
        per_array.pop("none", None)
        # the artifact's model has a faster channel (400 * 2^30 B/s): stay below both
        bw = self.arch.dram_bandwidth * 1.08 / self.arch.clock_hz
        dram = self.dram_bytes(placement) / bw
        return max([dram, 0.0, *per_array.values()])

    def least(self, tensor: str, place: str) -> float:
        """Bytes of ``tensor`` that must cross the DRAM channel: an input read or an output
        written once, an intermediate placed in DRAM written and read once."""
        if self.roles[tensor] in (Role.INPUT, Role.OUTPUT):
            return float(self.sizes[tensor])
        return 2.0 * self.sizes[tensor] if place == "dram" else 0.0

    def dram_bytes(self, placement: Mapping[str, str]) -> float:
        return sum(self.least(t, placement.get(t, "buffer")) for t in self.sizes)

    def excess(self, moved: Mapping[str, int], placement: Mapping[str, str]) -> set[str]:
        """Tensors that crossed DRAM more than the least (``moved``: a simulation's bytes by
        tensor): those a move into the buffer may save."""
        return {
            t
            for t, n in moved.items()
            if t in self.sizes and n > 1.01 * self.least(t, placement.get(t, "buffer"))
        }

    def energy(self, m: SimMapping) -> float:
        e = dict(self.arch.energy)
        bits = e.get("dram_access_bits", 64.0)
        per_byte = min(e.get("dram_read", 0.0), e.get("dram_write", 0.0)) * 8 / bits
        return self.dram_bytes(dict(m.placement)) * per_byte

    def score(self, objective: str, m: SimMapping) -> float:
        c = self.cycles(m) if objective != "energy" else 0.0
        en = self.energy(m) if objective != "cycles" else 0.0
        return objective_value(objective, c, en)


# ---------------------------------------------------------------- the neighbourhood


def _key(m: SimMapping) -> SimMapping:
    """A mapping without its name: two mappings that differ only by name are one."""
    return replace(m, name="", source=None)


def seeds(cascade: Cascade, arch: Arch, dims: Mapping[str, int]) -> list[SimMapping]:
    """Where the search starts: the default mapping's recipes, then every preset that
    applies to this cascade on this architecture."""
    b = bind(cascade, dims)
    extents = {v: int(b.extents[r]) for v, r in cascade.var_ranks.items()}
    out = [default_mapping(cascade, arch, extents, o, c) for o, c in default_recipes(cascade)]
    for name in MAPPING_PRESETS:
        try:
            out.append(load_mapping(name, cascade, arch))
        except EinError:
            continue  # it names Einsums or ranks this cascade does not have
    return out


class Neighbours:
    """Mappings one change away from a mapping."""

    def __init__(self, cascade: Cascade, arch: Arch, extents: Mapping[str, int]) -> None:
        self.cascade = cascade
        self.arch = arch
        self.extents = dict(extents)
        self.kernels = {k.name: k for k in kernels(cascade)}
        self.fixed = {t.name for t in cascade.tensors if t.role in (Role.INPUT, Role.OUTPUT)}

    def of(self, m: SimMapping, tiles: Mapping[str, int]) -> Iterator[tuple[str, SimMapping]]:
        yield from self._loops(m, tiles)
        yield from self._modes(m)
        yield from self._placements(m)
        yield from self._einsums(m)

    def _loops(self, m: SimMapping, tiles: Mapping[str, int]) -> Iterator[tuple[str, SimMapping]]:
        for gi, g in enumerate(m.groups):
            for li, (v, t) in enumerate(g.loops):
                n = self.extents.get(v, 1)
                base = tiles.get(v.upper(), n) if t == FIT else t
                options = {FIT, base // 2, base // 4, base * 2} - {t, 0}
                for t2 in sorted(options):
                    if t2 == FIT or 1 <= t2 <= n:
                        loops = (*g.loops[:li], (v, t2), *g.loops[li + 1 :])
                        shown = "fit" if t2 == FIT else t2
                        yield (f"{v.upper()}:{shown}", _with_group(m, gi, replace(g, loops=loops)))
            if len(g.loops) > 1:  # a different loop order: swap two neighbours
                for li in range(len(g.loops) - 1):
                    lo = list(g.loops)
                    lo[li], lo[li + 1] = lo[li + 1], lo[li]
                    yield ("order", _with_group(m, gi, replace(g, loops=tuple(lo))))

    def _modes(self, m: SimMapping) -> Iterator[tuple[str, SimMapping]]:
        for gi, g in enumerate(m.groups):
            for mode in MODES:
                if mode == g.mode or (mode == "interleaved" and not g.interleave):
                    continue
                stages = () if mode == "sequential" else g.stages
                inter = g.interleave if mode == "interleaved" else ()
                new = replace(g, mode=mode, stages=stages, interleave=inter)
                yield (mode, _with_group(m, gi, new))
            if g.stages:
                yield ("no stages", _with_group(m, gi, replace(g, stages=())))
            elif g.mode == "pipelined" and len(g.einsums) > 1:
                yield ("stages", _with_group(m, gi, replace(g, stages=_dep_stages(self, g))))

    def _placements(self, m: SimMapping) -> Iterator[tuple[str, SimMapping]]:
        for i, (t, p) in enumerate(m.placement):
            others = ("buffer", "dram") if t in self.fixed else ("buffer", "dram", "registers")
            for p2 in others:
                if p2 != p:
                    placement = (*m.placement[:i], (t, p2), *m.placement[i + 1 :])
                    yield (f"{t}={p2}", replace(m, placement=placement))

    def _einsums(self, m: SimMapping) -> Iterator[tuple[str, SimMapping]]:
        for i, (name, km) in enumerate(m.kernels):
            k = self.kernels.get(name)
            if k is None or km.array not in ("2d", "1d") or k.is_helper:
                continue
            for label, km2 in self._maps(k, km):
                if km2 != km:
                    maps = (*m.kernels[:i], (name, km2), *m.kernels[i + 1 :])
                    yield (f"{name}:{label}", replace(m, kernels=maps))

    def _maps(self, k: PEKernel, km: KernelMap) -> Iterator[tuple[str, KernelMap]]:
        a2, a1 = self.arch.array2d, self.arch.array1d
        if a2.supports(k.op_names):
            for df in a2.dataflows:
                arch = replace(self.arch, array2d=replace(a2, dataflow=df))
                yield (
                    f"2d {df}",
                    replace(_map_2d(k, arch, self.extents), at_last=km.at_last, loops=km.loops),
                )
        if a1 is not None and a1.supports(k.op_names):
            lanes = [km.cols] if km.cols else []
            yield (
                "1d",
                replace(
                    _map_1d(k, lanes, a1.pes, self.extents), at_last=km.at_last, loops=km.loops
                ),
            )
        if km.chunks:
            yield ("whole streams", replace(km, chunks=()))
        elif km.stream:
            arr = self.arch.array(km.array)
            size = arr.rows if km.array == "2d" else arr.cols
            chunks = tuple((v, size) for v in km.stream if self.extents.get(v, 1) > size)
            if chunks:
                yield ("chunked", replace(km, chunks=chunks))


def _dep_stages(nb: Neighbours, g: MappingGroup) -> tuple[tuple[str, int], ...]:
    """Software-pipelining stages by dependence depth: an Einsum runs one epoch after the
    latest of its producers in the group."""
    produced = {nb.kernels[e].output.tensor: e for e in g.einsums if e in nb.kernels}
    stage: dict[str, int] = {}
    for e in g.einsums:
        k = nb.kernels.get(e)
        deps = [produced[a.tensor] for a in k.reads if a.tensor in produced] if k else []
        stage[e] = max((stage[d] + 1 for d in deps if d in stage and d != e), default=0)
    return tuple(sorted(stage.items()))


def _with_group(m: SimMapping, gi: int, g: MappingGroup) -> SimMapping:
    return replace(m, groups=(*m.groups[:gi], g, *m.groups[gi + 1 :]))


# ---------------------------------------------------------------- the search


@dataclass
class _State:
    objective: str
    best: Evaluated | None = None
    considered: int = 0
    simulated: int = 0
    rejected: int = 0
    pruned: int = 0
    points: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)
    errors: dict[int, Exception] = dataclasses.field(default_factory=dict)  # by arrival


def search(
    cascade: Cascade,
    arch: Arch,
    dims: Mapping[str, int],
    *,
    objective: str = "cycles",
    budget: int | None = None,
    seconds: float | None = 60.0,
    model: ModelOptions = FAITHFUL,
    work: Work | None = None,
    start: Sequence[SimMapping] = (),
    progress: Callable[[int], object] | None = None,
    explore: bool = True,
) -> MapResult:
    """The best mapping found within ``budget`` simulations and ``seconds`` (None: no
    limit); ``start``: mappings to seed the search with before the default ones
    (``explore=False``: the best of ``start`` alone, no presets, no neighbours).  When no
    mapping can be simulated, the error of the first one considered is raised."""
    if objective not in OBJECTIVES:
        raise EinError.plain(
            f"--objective {objective}: expected one of {', '.join(OBJECTIVES)}",
            hint="--objective cycles",
        )
    t0 = time.perf_counter()
    dims = dict(dims)
    bounds = RooflineBounds(cascade, arch, dims)
    nb = Neighbours(cascade, arch, bounds.extents)
    st = _State(objective)
    seen: set[SimMapping] = set()
    # (seed first; the parent's score; a move on the parent's excess DRAM traffic first;
    # the bound; arrival): the seeds, then the neighbours of the best mappings so far
    queue: list[tuple[int, float, int, float, int, SimMapping]] = []

    def consider(m: SimMapping, parent: float, tier: int, hint: int = 1) -> None:
        k = _key(m)
        if k in seen:
            return
        seen.add(k)
        st.considered += 1
        bound = bounds.score(objective, m)
        heapq.heappush(queue, (tier, parent, hint, bound, st.considered, m))

    for m in (*start, *(seeds(cascade, arch, dims) if explore else ())):
        consider(m, 0.0, 0)
    while queue:
        if budget is not None and st.simulated >= budget:
            break
        if seconds is not None and st.best is not None and time.perf_counter() - t0 > seconds:
            break
        tier, _, _, bound, arrival, m = heapq.heappop(queue)
        if st.best is not None and bound >= st.best.score(objective):
            st.pruned += 1  # its bound cannot beat the best: not simulated
            continue
        own = work if work is not None else Work()
        ran = _simulate(cascade, arch, m, dims, model, own, tier, st, arrival)
        if ran is None:
            continue
        prog, report = ran
        st.simulated += 1
        if progress is not None:
            progress(st.simulated)
        ev = Evaluated(
            m,
            report.cycles,
            report.energy_pj,
            tuple(sorted(report.utilization.items())),
            report.dram_bytes,
        )
        st.points.append((ev.cycles, ev.energy_pj))
        score = ev.score(objective)
        if st.best is None or (score, ev.energy_pj) < (st.best.score(objective),
                                                       st.best.energy_pj):  # fmt: skip
            st.best = ev
        hot = bounds.excess(report.dram_by_tensor, dict(m.placement))
        for label, child in nb.of(m, prog.tiles) if explore else ():
            hint = 0 if label.partition("=")[0] in hot and label.endswith("=buffer") else 1
            consider(replace(child, name=_child_name(m.name, label)), score, 1, hint)
    if st.best is None and st.errors:
        raise st.errors[min(st.errors)]
    if st.best is None:
        raise EinError.plain(
            f"map: no mapping of {cascade.name} fits {arch.name} at these dims "
            f"({st.rejected} rejected)",
            hint="use smaller --dims or a larger buffer (--set buffer.bytes=...)",
        )
    return MapResult(
        cascade.name,
        arch.name,
        objective,
        st.best,
        st.considered,
        st.simulated,
        st.rejected,
        st.pruned,
        time.perf_counter() - t0,
        pareto_front(st.points),
        tuple(st.points),
    )


def _simulate(
    cascade: Cascade,
    arch: Arch,
    m: SimMapping,
    dims: Mapping[str, int],
    model: ModelOptions,
    work: Work,
    tier: int,
    st: _State,
    arrival: int,
) -> tuple[SimProgram, SimReport] | None:
    """The program and report of ``m``, or None when a rule rejects it (counted in ``st``)."""
    from einsumcc_sim.limits import Limits, current, limits
    from einsumcc_sim.program import BufferOverflowError, lower
    from einsumcc_sim.report import build_report, run_engine

    # a neighbour whose steady state does not come soon is not worth its simulation
    cap = current().max_ops if tier == 0 else min(current().max_ops, NEIGHBOUR_OPS)
    try:
        if m.overrides_for(model):
            raise EinError.plain("the mapping changes the architecture under this model")
        with limits(Limits(max_ops=cap)):
            prog = lower(cascade, arch, m, dims, "default", model, work)
            return prog, build_report(prog, run_engine(prog, work), "fast")
    except (BufferOverflowError, EinError) as exc:
        st.rejected += 1
        st.errors[arrival] = exc
    except (KeyError, IndexError, ValueError, AssertionError, ZeroDivisionError) as exc:
        # a combination the lowering or the engine does not handle: not a result
        st.rejected += 1
        st.failures.append(f"{m.name}: {type(exc).__name__}: {exc}")
    return None


def _child_name(parent: str, label: str) -> str:
    """``mapper: SEED + change + change ...`` (the last few changes)."""
    seed, _, changes = parent.removeprefix("mapper: ").partition(" + ")
    steps = [*changes.split(" + "), label] if changes else [label]
    shown = steps if len(steps) <= 4 else ["...", *steps[-3:]]
    return "mapper: " + " + ".join([seed, *shown])


def pareto_front(points: Sequence[tuple[int, float]]) -> tuple[tuple[int, float], ...]:
    """The points no other point beats in both cycles and energy, by cycles."""
    front: list[tuple[int, float]] = []
    for c, e in sorted(set(points)):
        if not front or e < front[-1][1]:
            front.append((c, e))
    return tuple(front)
