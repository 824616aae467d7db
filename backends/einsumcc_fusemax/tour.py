"""The FuseMax reproduction's part of ``einsumcc demo``: BERT on the paper's designs."""

from __future__ import annotations

import time

from einsumcc_fusemax.experiment import Point, run_point
from einsumcc_fusemax.results import DESIGNS
from einsumcc_fusemax.workload import load_models


def tour() -> None:
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
