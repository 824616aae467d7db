"""``einsumcc demo``: the tour on the bundled attention cascades, no arguments needed.

It runs the three verbs on FuseMax's cascades: the pass analysis, the Triton schedule (and the
kernels themselves under Triton's interpreter when torch and triton are installed), and the
simulator on the paper's accelerator designs, with the numpy oracle as the reference.
"""

from __future__ import annotations

import numpy as np

from einsumcc import backend
from einsumcc.analysis.passes import analyze_passes
from einsumcc.analysis.report import render_taxonomy
from einsumcc.ir.bind import bind
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.dump import render_index
from einsumcc.pipeline import bundled, load
from einsumcc.reference import evaluate, random_inputs

FILES = ("attention_3pass.ein", "attention_2pass.ein", "attention_1pass.ein")
DIMS = {"M": 512, "P": 256}


def _load(name: str) -> Cascade:
    return load(bundled(name))


def _analyze(cascades: dict[str, Cascade]) -> None:
    print("1. analyze: passes over the key sequence M, derived from each cascade (FuseMax §III)\n")
    reports = [(f"examples/{n}", analyze_passes(c)) for n, c in cascades.items()]
    print(render_taxonomy(reports))
    for name, rep in reports:
        m = rep.rank("M")
        for w in m.witnesses:
            print(f"  {name}: why {w}")
        fp = m.footprint
        if fp.kind == "live_fiber":
            print(f"  {name}: a live fiber of {render_index(fp.per_point)} values per query")
        elif fp.kind == "carried_state":
            print(f"  {name}: carries {render_index(fp.per_point)} values per query, whatever M")


def _oracle(cascades: dict[str, Cascade]) -> None:
    shown = ", ".join(f"{k}={v}" for k, v in DIMS.items())
    print(f"\n2. run: the numpy oracle on the same random inputs ({shown})\n")
    three = cascades["attention_3pass.ein"]
    inputs = random_inputs(three, DIMS, seed=0)
    reference = evaluate(three, inputs, DIMS)["AV"]
    for name, c in cascades.items():
        out = evaluate(c, inputs, DIMS)["AV"]
        diff = float(np.max(np.abs(out - reference)))
        print(f"  {name:<20} AV sum {float(out.sum()):+.6f}   max |AV - AV_3pass| = {diff:.1e}")


def _compile(cascades: dict[str, Cascade]) -> None:
    from einsumcc.schedule.default import derive_schedule
    from einsumcc.schedule.traffic import analyze_traffic

    dims = {"M": 4096, "P": 4096}
    print("\n3. compile: the Triton schedules at M = P = 4096 (fp16 Q, K, V)\n")
    for name in ("attention_3pass.ein", "attention_1pass.ein"):
        c = cascades[name]
        schedule = derive_schedule(c, dims)
        traffic = analyze_traffic(schedule, bind(c, dims).extents)
        k_read = sum(t.read for kt in traffic.kernels for t in kt.tensors if t.tensor == "K")
        k_size = next(t.size for kt in traffic.kernels for t in kt.tensors if t.tensor == "K")
        launches = len(traffic.kernels)
        print(
            f"  {name:<20} {launches} kernel launch{'es' if launches > 1 else ''}, "
            f"K read {k_read / k_size:.0f}x its size, {traffic.read / 1e6:.1f} MB read in all"
        )


def run_demo() -> int:
    cascades = {name: _load(name) for name in FILES}
    _analyze(cascades)
    _oracle(cascades)
    _compile(cascades)
    # the backends' own sections (the kernels under the interpreter, the simulator), in order
    tours = [b for b in backend.loaded() if isinstance(b, backend.Tour)]
    for b in sorted(tours, key=lambda b: b.tour_order):
        b.tour()
    print("\nNext: einsumcc analyze, run, compile, simulate, reproduce fusemax (see README.md).")
    return 0
