"""One point of the FuseMax evaluation: a design on a model at a sequence length, simulated.

A design is a mapping preset of the simulator applied to one of the reproduction's cascades
(``examples/fusemax/``) on one of its architectures:

==========  ========================  ===================  ==========
design      cascade                   mapping              arch
==========  ========================  ===================  ==========
unfused     attention_3pass.ein       unfused              flat
flat        attention_3pass.ein       flat / flat-offchip  flat
cascade     attention_1pass.ein       fusemax-cascade      flat
arch        attention_1pass.ein       fusemax-arch         fusemax
binding     attention_1pass.ein       fusemax              fusemax
==========  ========================  ===================  ==========

FLAT's per-point dataflow (which tensors stay on chip, head or row granularity, rows per
block) is FLAT's own search result (:func:`einsumcc_fusemax.workload.flat_config`), passed
to the mapping as parameters; its spills follow from the buffer's capacity.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from einsumcc import load
from einsumcc.ir.cascade import Cascade
from einsumcc_fusemax.results import Design, Row, design
from einsumcc_fusemax.workload import Model, flat_config
from einsumcc_sim.arch import Arch, load_arch
from einsumcc_sim.engine import Engine
from einsumcc_sim.mapping import Mapping as SimMapping
from einsumcc_sim.mapping import load_mapping
from einsumcc_sim.model import ModelOptions, model_options
from einsumcc_sim.program import lower
from einsumcc_sim.report import SimReport, build_report

CASCADES = {
    "unfused": "attention_3pass.ein",
    "flat": "attention_3pass.ein",
    "cascade": "attention_1pass.ein",
    "arch": "attention_1pass.ein",
    "binding": "attention_1pass.ein",
}
ARCHS = {
    "unfused": "flat",
    "flat": "flat",
    "cascade": "flat",
    "arch": "fusemax",
    "binding": "fusemax",
}
# the 2D Einsums whose utilization the artifact reports, by its names
EINSUM_COLUMNS = {"QK": ("QK", "BQK"), "AV": ("AV",), "LM": ("LM",), "SLN": ("SLN",),
                  "SLD": ("SLD",), "SLNV": ("SLNV",)}  # fmt: skip


@dataclass(frozen=True)
class Point:
    design: str  # a design key: unfused, flat, cascade, arch, binding
    model: Model
    seq: int


@dataclass(frozen=True)
class Setup:
    cascade: Cascade
    arch: Arch
    mapping: SimMapping
    dims: dict[str, int]
    mapping_name: str
    params: tuple[tuple[str, object], ...]


@functools.lru_cache(maxsize=8)
def cascade(name: str) -> Cascade:
    text = resources.files("einsumcc.examples").joinpath("fusemax", name).read_text("utf-8")
    return load(text)


def mapping_choice(d: Design, model: Model, seq: int) -> tuple[str, dict[str, object]]:
    """The mapping preset and its parameters for a design at a point."""
    if d.key != "flat":
        return d.name, {}
    fc = flat_config(model.name, seq)
    onchip = fc.onchip("QK")
    params: dict[str, object] = {}
    for t in ("Q", "K", "V", "AV"):
        params[t] = "buffer" if fc.onchip(t) else ("stream" if onchip else "dram")
    params["block"] = seq if fc.granularity == "head" else fc.rows
    return ("flat" if onchip else "flat-offchip"), params


def setup(
    point: Point, model: str | ModelOptions = "artifact", overrides: Sequence[str] = ()
) -> Setup:
    d = design(point.design)
    c = cascade(CASCADES[d.key])
    arch_name = ARCHS[d.key]
    base = load_arch(arch_name, overrides)
    name, params = mapping_choice(d, point.model, point.seq)
    mapping = load_mapping(name, c, base, params)
    extra = mapping.overrides_for(model)
    arch = load_arch(arch_name, [*extra, *overrides]) if extra else base
    dims = point.model.dims(point.seq)
    if "M0" in {r.name for r in c.ranks}:
        dims["M0"] = arch.array2d.rows
    return Setup(c, arch, mapping, dims, name, tuple(sorted(params.items())))


def simulate_point(
    point: Point, model: str | ModelOptions = "artifact", overrides: Sequence[str] = ()
) -> tuple[SimReport, float]:
    """The simulator's report for a point, and the seconds it took."""
    t0 = time.perf_counter()
    s = setup(point, model, overrides)
    prog = lower(s.cascade, s.arch, s.mapping, s.dims, model=model_options(model))
    eng = Engine(prog, max_events=0)
    eng.run()
    rep = build_report(prog, eng, "fast")
    return rep, time.perf_counter() - t0


def row_of(point: Point, rep: SimReport) -> Row:
    """The artifact's CSV row for a simulated point."""
    d = design(point.design)
    util = {name: e.utilization for name, e in rep.per_einsum.items()}
    per = tuple((col, sum(util.get(n, 0.0) for n in EINSUM_COLUMNS[col])) for col in d.einsums)
    extra: list[tuple[str, float]] = [("cycles", float(rep.cycles))]
    extra += [(f"energy.{k}", v) for k, v in sorted(rep.energy_breakdown_pj.items())]
    # the counts behind the two calibrated energies (einsumcc_fusemax.calibration)
    extra += [
        ("count.buffer_accesses", float(rep.buffer_accesses.get("accesses", 0))),
        ("count.rf2d_accesses", float(rep.rf_accesses.get("2d", 0))),
    ]
    return Row(
        point.model.name,
        point.seq,
        float(rep.dram_read_bytes + rep.dram_write_bytes),
        rep.seconds,
        rep.energy_pj,
        rep.utilization["2d"],
        rep.utilization["1d"],
        per,
        tuple(extra),
    )


def run_point(
    point: Point, model: str = "artifact", overrides: Sequence[str] = ()
) -> tuple[Point, Row, float]:
    rep, seconds = simulate_point(point, model, overrides)
    return point, row_of(point, rep), seconds
