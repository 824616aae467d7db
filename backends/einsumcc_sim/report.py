"""Simulation results: ``simulate`` runs the stages, ``SimReport`` renders text and JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from einsumcc.diagnostics import EinError
from einsumcc.files import atomic_path, path_error
from einsumcc.ir.bind import bind
from einsumcc.ir.cascade import Cascade
from einsumcc_sim.arch import Arch
from einsumcc_sim.energy import breakdown, label
from einsumcc_sim.engine import Engine, Event, Period
from einsumcc_sim.limits import search_bar
from einsumcc_sim.mapping import FIT, default_mapping, default_recipes
from einsumcc_sim.mapping import Mapping as SimMapping
from einsumcc_sim.model import FAITHFUL, ModelOptions
from einsumcc_sim.program import BufferOverflowError, SimProgram, lower
from einsumcc_sim.work import Work


@dataclass(frozen=True)
class EinsumStats:
    name: str
    array: str
    busy_cycles: int
    pe_cycles: int
    utilization: float
    ops: int


@dataclass(frozen=True)
class SimReport:
    """What one simulation reports.  ``to_dict()`` is what ``einsumcc simulate --json``
    prints, and the text report (``render()``) is drawn from the same object."""

    cascade: str
    arch: str
    mapping: str
    timing: str
    mode: str  # fast | exact
    clock_hz: int
    cycles: int
    pes: dict[str, int]
    pe_cycles: dict[str, int]
    per_einsum: dict[str, EinsumStats]
    dram_read_bytes: int
    dram_write_bytes: int
    dram_by_tensor: dict[str, int]
    buffer_read_words: int
    buffer_write_words: int
    buffer_accesses: dict[str, int]
    energy_breakdown_pj: dict[str, float]
    spill_fraction: float
    buffer_need: int
    events: list[Event] = field(default_factory=list, repr=False)
    periods: list[Period] = field(default_factory=list, repr=False)
    busy_per_cycle: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    scalesim_gap: dict[str, Any] | None = None
    functional: dict[str, Any] | None = None
    model: str = "faithful"  # the cost model (einsumcc_sim.model)
    rf_accesses: dict[str, int] = field(default_factory=dict)  # register-file reads + writes
    energy_model: str = "sourced"  # einsumcc_sim.energy: sourced, or calibrated (labelled)
    # what the request took: lowerings, engine runs, default-mapping candidates (not a result)
    work: dict[str, int] | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return (
            f"<SimReport {self.cascade} on {self.arch}: {self.cycles:,} cycles, "
            f"{self.energy_pj:.3g} pJ>"
        )

    @property
    def seconds(self) -> float:
        return self.cycles / self.clock_hz

    @property
    def utilization(self) -> dict[str, float]:
        return {
            a: (
                self.pe_cycles.get(a, 0) / (self.pes[a] * self.cycles)
                if self.cycles and self.pes.get(a)
                else 0.0
            )
            for a in ("2d", "1d")
        }

    @property
    def energy_pj(self) -> float:
        return float(sum(self.energy_breakdown_pj.values()))

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes

    def to_dict(self) -> dict[str, Any]:
        """The report as ``einsumcc simulate --json`` prints it."""
        out: dict[str, Any] = {
            "cascade": self.cascade,
            "arch": self.arch,
            "mapping": self.mapping,
            "timing": self.timing,
            "mode": self.mode,
            "model": self.model,
            "cycles": int(self.cycles),
            "seconds": self.seconds,
            "utilization": self.utilization,
            "per_einsum": {
                e.name: {
                    "array": e.array,
                    "busy_cycles": e.busy_cycles,
                    "pe_cycles": e.pe_cycles,
                    "utilization": e.utilization,
                    "ops": e.ops,
                }
                for e in self.per_einsum.values()
            },
            "dram_bytes": self.dram_bytes,
            "dram_read_bytes": self.dram_read_bytes,
            "dram_write_bytes": self.dram_write_bytes,
            "dram_bytes_by_tensor": self.dram_by_tensor,
            "buffer_accesses": self.buffer_accesses,
            "rf_accesses": self.rf_accesses,
            "energy_pj": self.energy_pj,
            "energy_model": self.energy_model,
            "energy_breakdown_pj": self.energy_breakdown_pj,
            "spill_fraction": self.spill_fraction,
            "buffer_bytes_needed": self.buffer_need,
            "steady_state": [
                {
                    "loop": p.loop,
                    "period_cycles": p.end - p.start,
                    "epochs": p.epochs,
                    "repeats": p.repeats,
                }
                for p in self.periods
            ],
        }
        if self.scalesim_gap is not None:
            out["scalesim_gap"] = self.scalesim_gap
        if self.functional is not None:
            out["functional"] = self.functional
        return out

    def json_text(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def render(self, verbose: bool = False) -> str:
        """The text report, drawn from :meth:`to_dict` (``verbose``: and the work done)."""
        d = self.to_dict()
        lines = _render_head(d, self.clock_hz)
        lines.append("")
        per = d["per_einsum"]
        width = max([len(name) for name in per] + [6])
        lines.append(f"  {'einsum':<{width}}  array  {'busy cycles':>14}  {'util':>7}  {'ops':>10}")
        for name, e in per.items():
            lines.append(
                f"  {name:<{width}}  {e['array']:<5}  {e['busy_cycles']:>14,}  "
                f"{e['utilization']:>7.4f}  {e['ops']:>10,}"
            )
        lines += _render_tail(d)
        if verbose and self.work is not None:
            lines.append("  work: " + render_work(self.work))
        return "\n".join(lines) + "\n"


def render_work(work: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in work.items())


def _render_head(d: Mapping[str, Any], clock_hz: int) -> list[str]:
    u = d["utilization"]
    bread, bwrite = d["buffer_accesses"]["read_words"], d["buffer_accesses"]["write_words"]
    lines = [
        f"{d['cascade']} on {d['arch']} ({d['mapping']} mapping, {d['timing']} timing, "
        f"{d['mode']} mode, {d['model']} cost model)",
        f"  cycles        {d['cycles']:,}  ({d['seconds']:.6g} s at {clock_hz / 1e6:g} MHz)",
        f"  utilization   2D {u['2d']:.4f}   1D {u['1d']:.4f}",
        f"  DRAM          {d['dram_bytes']:,} B "
        f"(read {d['dram_read_bytes']:,}, write {d['dram_write_bytes']:,})",
        f"  buffer        {bread:,} words read, "
        f"{bwrite:,} written; spill fraction {d['spill_fraction']:.3f}",
        f"  energy        {d['energy_pj']:.6g} pJ, "
        f"energy model {label(d.get('energy_model', 'sourced'))}",
    ]
    g = d.get("scalesim_gap")
    if g is not None:
        lines.append(
            f"  vs SCALE-Sim  fold-serial {g['scalesim_cycles']:,} cycles, overlapped "
            f"{g['default_cycles']:,} ({g['ratio']:.3f}x)"
        )
    return lines


def _render_tail(d: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    energy = d["energy_breakdown_pj"]
    if energy:
        lines.append("")
        lines.append("  energy by component (pJ)")
        for k, v in sorted(energy.items(), key=lambda kv: -kv[1]):
            if v:
                lines.append(f"    {k:<18} {v:.6g}")
    for p in d["steady_state"][:3]:
        lines.append(
            f"  steady state: {p['loop']} repeats every {p['period_cycles']:,} cycles "
            f"({p['epochs']} epoch(s)), {p['repeats']:,} periods extrapolated"
        )
    f = d.get("functional")
    if f is not None:
        lines.append(
            f"  functional: max |sim - oracle| = {f['max_abs_error']:.3g} "
            f"({'ok' if f['ok'] else 'MISMATCH'})"
        )
    return lines


def _energy(arch: Arch, counters: Mapping[str, float], itemsize: int) -> dict[str, float]:
    return breakdown(dict(arch.energy), counters, itemsize)


def build_report(prog: SimProgram, eng: Engine, mode: str) -> SimReport:
    c = eng.c.values
    arch = prog.arch
    cycles = int(eng.makespan)
    pes = {"2d": arch.array2d.pes, "1d": arch.array1d.pes if arch.array1d else 0}
    per: dict[str, EinsumStats] = {}
    order: list[tuple[str, str]] = []
    for leaf in prog.leaves:
        for k in leaf.kernels:
            order.append((k.name, leaf.array))
    for name, array in order:
        pc = int(c.get(f"pe_cycles.{name}", 0))
        per[name] = EinsumStats(
            name,
            array,
            int(c.get(f"busy.{name}", 0)),
            pc,
            pc / (pes[array] * cycles) if cycles and pes[array] else 0.0,
            int(c.get(f"ops.{name}", 0)),
        )
    itemsize = 2
    if prog.cascade.inputs:
        itemsize = prog.cascade.inputs[0].dtype.itemsize
    word_bits = itemsize * 8
    bread = int(c.get("buffer.read_words", 0))
    bwrite = int(c.get("buffer.write_words", 0))
    bfill = int(c.get("buffer.fill_words", 0))
    row_words = max(1, arch.buffer.row_bits // word_bits)
    access_words = max(1, int(dict(arch.energy).get("buffer_access_bits", 64)) // word_bits)
    busy: dict[str, np.ndarray] = {}
    if mode == "exact":
        for a, profs in eng.profiles.items():
            line = np.zeros(cycles + 1, dtype=np.int64)
            for s0, prof in profs:
                n = min(len(prof), len(line) - s0)
                line[s0 : s0 + n] += prof[:n]
            busy[a] = line
    return SimReport(
        prog.cascade.name,
        arch.name,
        prog.mapping.name,
        prog.timing,
        mode,
        arch.clock_hz,
        cycles,
        pes,
        {"2d": int(c.get("pe_cycles.2d", 0)), "1d": int(c.get("pe_cycles.1d", 0))},
        per,
        int(c.get("dram.read_bytes", 0)),
        int(c.get("dram.write_bytes", 0)),
        {
            k[5:]: int(v)
            for k, v in sorted(c.items())
            if k.startswith("dram.") and k not in ("dram.read_bytes", "dram.write_bytes")
        },
        bread,
        bwrite,
        {
            "read_words": bread,
            "write_words": bwrite,
            "fill_words": bfill,
            "read_rows": -(-bread // row_words),
            "write_rows": -(-(bwrite + bfill) // row_words),
            # accesses of the energy table's width (buffer_access_bits)
            "accesses": -(-(bread + bwrite + bfill) // access_words),
        },
        _energy(arch, c, itemsize),
        prog.spill_fraction,
        prog.buffer_need,
        eng.events,
        eng.periods,
        busy,
        model=prog.model.name,
        energy_model=arch.energy_model,
        rf_accesses={
            a: int(c.get(f"act.array{a}.rf_read", 0) + c.get(f"act.array{a}.rf_write", 0))
            for a in ("2d", "1d")
        },
    )


def simulate(
    cascade: Cascade,
    arch: Arch,
    mapping: SimMapping,
    dims: Mapping[str, int] | None = None,
    *,
    timing: str = "default",
    exact: bool = False,
    model: ModelOptions = FAITHFUL,
    work: Work | None = None,
) -> SimReport:
    """Simulate ``cascade`` mapped by ``mapping`` on ``arch`` at ``dims`` under ``model``
    (``work``: the request's memo, shared with a default-mapping search)."""
    work = work if work is not None else Work()
    prog = lower(cascade, arch, mapping, dims or {}, timing, model, work)
    eng = run_engine(prog, work, exact=exact)
    return build_report(prog, eng, "exact" if exact else "fast")


def run_engine(prog: SimProgram, work: Work, *, exact: bool = False) -> Engine:
    """The engine run over ``prog`` (once per program and mode in ``work``)."""

    def run() -> Engine:
        eng = Engine(prog, exact_mode=exact)
        eng.run()
        return eng

    return work.memo("engine_runs", (work.identity(prog), exact), run)


# the default mapping's search: this many simulations (a few seconds; a count, not a time,
# so that the default does not depend on the machine's speed)
DEFAULT_BUDGET = 12


def default_for(
    cascade: Cascade,
    arch: Arch,
    dims: Mapping[str, int],
    timing: str = "default",
    model: ModelOptions = FAITHFUL,
    work: Work | None = None,
    explore: bool = True,
) -> SimMapping:
    """The default mapping at these dims.

    The plain default (one group, no loops) is kept when its tiles fit the buffer without
    spilling and it moves each input and output across DRAM once (the least traffic there
    is).  Otherwise it is the mapper's best (:func:`einsumcc_sim.mapper.search`) with a
    small budget (:data:`DEFAULT_BUDGET` simulations): its seeds (the default
    recipes, each with its spatial ranks chosen again under its fitted tiles, and the mapping
    presets that apply) and their neighbours, best first; ``explore=False`` (``--exact``,
    ``--timing scalesim``: a GEMM mapped by the array's dataflow, as SCALE-Sim maps it): the
    plain default when it fits without spilling, else the fastest fitted recipe.  ``work``
    keeps the candidates' programs and runs, which the simulation of the winner reuses.
    """
    from einsumcc_sim.mapper import search

    work = work if work is not None else Work()
    b = bind(cascade, dims)
    extents = {v: int(b.extents[r]) for v, r in cascade.var_ranks.items()}
    plain = default_mapping(cascade, arch, extents)
    error: BufferOverflowError | None = None
    start = [plain]
    try:
        prog = _candidate(cascade, arch, plain, dims, timing, model, work)
        if prog.spill_fraction == 0 and (not explore or _minimal_traffic(prog, work, dims)):
            return plain
    except BufferOverflowError as exc:
        error = exc
    for outer, chunked in default_recipes(cascade)[1:]:
        candidate = default_mapping(cascade, arch, extents, outer, chunked)
        try:
            prog = _candidate(cascade, arch, candidate, dims, timing, model, work)
        except BufferOverflowError as exc:
            error = error or exc
            continue
        start.append(_refined(cascade, arch, (candidate, prog), outer, chunked, extents, dims,
                              timing, model, work)[0])  # fmt: skip
    shown = search_bar(DEFAULT_BUDGET)
    try:
        found = search(cascade, arch, dims, budget=DEFAULT_BUDGET, seconds=None,
                       model=model, work=work, start=start, explore=explore,
                       progress=None if shown is None else lambda _: shown.update(1))  # fmt: skip
    except EinError:
        if error is not None:
            raise error from None
        raise
    finally:
        if shown is not None:
            shown.close()
    return found.best.mapping  # (its name says where the search found it)


def _minimal_traffic(prog: SimProgram, work: Work, dims: Mapping[str, int]) -> bool:
    """Whether ``prog`` moves (about) each input and output across DRAM once and nothing
    else: the least any mapping moves."""
    from einsumcc_sim.mapper import RooflineBounds

    least = RooflineBounds(prog.cascade, prog.arch, dims).dram_bytes({})
    counters = run_engine(prog, work).c.values
    moved = int(counters.get("dram.read_bytes", 0)) + int(counters.get("dram.write_bytes", 0))
    return moved <= 1.05 * least


def _candidate(
    cascade: Cascade,
    arch: Arch,
    mapping: SimMapping,
    dims: Mapping[str, int],
    timing: str,
    model: ModelOptions,
    work: Work,
) -> SimProgram:
    """A candidate of the default-mapping search, counted once per distinct mapping."""
    work.memo("candidates", mapping, lambda: None)
    return lower(cascade, arch, mapping, dims, timing, model, work)


def _refined(
    cascade: Cascade,
    arch: Arch,
    chosen: tuple[SimMapping, SimProgram],
    outer: Sequence[tuple[str, int]],
    chunked: bool,
    extents: Mapping[str, int],
    dims: Mapping[str, int],
    timing: str,
    model: ModelOptions,
    work: Work,
) -> tuple[SimMapping, SimProgram]:
    """The ``chosen`` mapping and its program, or the same recipe with its spatial ranks
    chosen again under the fitted tiles of its ``outer`` loops (when that still fits at least
    as well)."""
    prog = chosen[1]
    if not any(t == FIT for _, t in outer):
        return chosen
    fitted = dict(extents)
    fitted.update({v: prog.tiles[v.upper()] for v, t in outer if t == FIT})
    refined = default_mapping(cascade, arch, fitted, outer, chunked)
    try:
        again = _candidate(cascade, arch, refined, dims, timing, model, work)
    except BufferOverflowError:
        return chosen
    return (refined, again) if again.spill_fraction <= prog.spill_fraction else chosen


def plot_timeline(report: SimReport, path: str | Path, names: Sequence[str] = ()) -> None:
    """A Gantt chart of the ops on both arrays and DRAM: the prologue and one steady period,
    written whole to ``path`` (``--plot``; a bad path is an error naming the option)."""
    plt, fig = timeline_figure(report)
    try:
        with atomic_path(path, "--plot") as tmp:
            fig.savefig(tmp, dpi=120, format=_format(path))
    except OSError as exc:
        raise path_error("--plot", path, exc) from None
    finally:
        plt.close(fig)


def timeline_figure(report: SimReport) -> tuple[Any, Any]:
    """pyplot and the figure of :func:`plot_timeline` (Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = report.cycles
    if report.periods:
        p = report.periods[-1]
        end = min(end, p.end + (p.end - p.start))
    rows = ["2d", "1d", "dram"]
    names = sorted({ev.name for ev in report.events if ev.start < end})
    cmap = plt.get_cmap("tab20")
    color = {n: cmap(i % 20) for i, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(11, 3.2))
    for ev in report.events:
        if ev.start >= end:
            continue
        y = rows.index(ev.array)
        ax.barh(
            y,
            min(ev.end, end) - ev.start,
            left=ev.start,
            height=0.7,
            color=color[ev.name],
            edgecolor="black",
            linewidth=0.2,
        )
    for p in report.periods[-1:]:
        ax.axvspan(p.start, p.end, color="grey", alpha=0.15, label="one steady-state period")
    ax.set_yticks(range(3), ["2D array", "1D array", "DRAM"])
    ax.set_xlabel("time (cycles)")
    ax.set_ylabel("resource (busy spans)")
    ax.set_xlim(0, max(end, 1))
    ax.invert_yaxis()
    from matplotlib.patches import Rectangle

    handles = [Rectangle((0, 0), 1, 1, color=color[n]) for n in names[:20]]
    ax.legend(handles, names[:20], loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    u = report.utilization
    ax.set_title(
        f"{report.cascade} on {report.arch}: {report.cycles:,} cycles, "
        f"util 2D {u['2d']:.3f} / 1D {u['1d']:.3f}",
        fontsize=9,
    )
    fig.tight_layout()
    return plt, fig


def _format(path: str | Path) -> str:
    """The image format ``path``'s suffix names (png when it names none matplotlib knows)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps") else "png"
