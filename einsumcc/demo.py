"""``einsumcc demo``: the tour on the bundled attention cascades, no arguments needed.

It runs the three verbs on FuseMax's cascades: the pass analysis, the Triton schedule (and the
kernels themselves under Triton's interpreter when torch and triton are installed), and the
simulator on the paper's accelerator designs, with the numpy oracle as the reference.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from einsumcc.analysis.passes import analyze_passes
from einsumcc.analysis.report import render_taxonomy
from einsumcc.cli import bundled
from einsumcc.frontend.check import check_program
from einsumcc.frontend.parser import parse_source
from einsumcc.ir.bind import bind
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.dump import render_index
from einsumcc.reference import evaluate, random_inputs

FILES = ("attention_3pass.ein", "attention_2pass.ein", "attention_1pass.ein")
DIMS = {"M": 512, "P": 256}


def _load(name: str) -> Cascade:
    source = bundled(name)
    return check_program(parse_source(source), source).cascade


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
    if importlib.util.find_spec("triton") is None or importlib.util.find_spec("torch") is None:
        print("  (install the `triton` extra to also run the kernels: pip install torch triton)")
        return
    from einsumcc import compile as compile_cascade

    small = {"M": 256, "P": 128}
    c = cascades["attention_1pass.ein"]
    inputs = random_inputs(c, small, seed=0)
    start = time.perf_counter()
    kernel = compile_cascade(bundled("attention_1pass.ein").text, "triton", M=256, P=128)
    out = kernel.run_numpy(inputs)["AV"]
    seconds = time.perf_counter() - start
    ref = evaluate(c, inputs, small)["AV"]
    err = float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))
    print(
        f"  the 1-pass kernel under Triton's interpreter (M=256, P=128): "
        f"max relative error {err:.1e} against the oracle, f16 output ({seconds:.1f} s)"
    )


def _simulate() -> None:
    from einsumcc_fusemax.experiment import Point, run_point
    from einsumcc_fusemax.results import DESIGNS
    from einsumcc_fusemax.workload import load_models

    (bert,) = load_models("BERT")
    seqs = (1 << 10, 1 << 16, 1 << 20)
    print("\n4. simulate: BERT attention (B = 64) on the paper's designs, artifact cost model\n")
    start = time.perf_counter()
    rows = {(d.key, s): run_point(Point(d.key, bert, s))[1] for d in DESIGNS for s in seqs}
    seconds = time.perf_counter() - start
    labels = "".join(f"{label:^26}" for label in ("1K", "64K", "1M"))
    print(f"  {'':<20}{labels}")
    sub = f"{'latency':>12} {'speedup':>7} {'2D':>5}"
    print(f"  {'design':<20}" + sub * len(seqs))
    for d in DESIGNS:
        cells = []
        for s in seqs:
            r = rows[(d.key, s)]
            speedup = rows[("unfused", s)].latency / r.latency
            cells.append(f"{r.latency:>11.3g}s {speedup:>6.2f}x {r.util_2d:>5.2f}")
        print(f"  {d.label:<20}" + "".join(cells))
    print(f"  ({len(rows)} points in {seconds:.1f} s; the full grid: einsumcc reproduce fusemax)")


def run_demo() -> int:
    cascades = {name: _load(name) for name in FILES}
    _analyze(cascades)
    _oracle(cascades)
    _compile(cascades)
    _simulate()
    print("\nNext: einsumcc analyze, run, compile, simulate, reproduce fusemax (see README.md).")
    return 0
