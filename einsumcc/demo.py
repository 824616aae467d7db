"""``einsumcc demo``: the tour on the bundled attention cascades, no arguments needed."""

from __future__ import annotations

import numpy as np

from einsumcc.analysis.passes import analyze_passes
from einsumcc.analysis.report import render_taxonomy
from einsumcc.cli import bundled
from einsumcc.frontend.check import check_program
from einsumcc.frontend.parser import parse_source
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.dump import render_index
from einsumcc.reference import evaluate, random_inputs

FILES = ("attention_3pass.ein", "attention_2pass.ein", "attention_1pass.ein")
DIMS = {"M": 512, "P": 256}


def _load(name: str) -> Cascade:
    source = bundled(name)
    return check_program(parse_source(source), source).cascade


def run_demo() -> int:
    cascades = {name: _load(name) for name in FILES}
    print("1. Passes over the key sequence M, derived from each cascade (FuseMax §III):\n")
    reports = [(f"examples/{n}", analyze_passes(c)) for n, c in cascades.items()]
    print(render_taxonomy(reports))
    for name, rep in reports:
        m = rep.rank("M")
        for w in m.witnesses:
            print(f"  {name}: {w}")
        fp = m.footprint
        if fp.kind == "live_fiber":
            print(f"  {name}: a live fiber of {render_index(fp.per_point)} values per query")
        elif fp.kind == "carried_state":
            print(f"  {name}: carries {render_index(fp.per_point)} values per query, whatever M")
    shown = ", ".join(f"{k}={v}" for k, v in DIMS.items())
    print(f"\n2. The numpy oracle on the same random inputs ({shown}):\n")
    three = cascades["attention_3pass.ein"]
    inputs = random_inputs(three, DIMS, seed=0)
    reference = evaluate(three, inputs, DIMS)["AV"]
    for name, c in cascades.items():
        out = evaluate(c, inputs, DIMS)["AV"]
        diff = float(np.max(np.abs(out - reference)))
        print(f"  {name:<20} AV sum {float(out.sum()):+.6f}   max |AV - AV_3pass| = {diff:.1e}")
    print(
        "\nNext: einsumcc analyze passes examples/*.ein, einsumcc run, einsumcc show (see README)."
    )
    return 0
