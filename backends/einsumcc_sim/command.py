"""``einsumcc simulate``: the command-line front of the simulator."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import numpy as np

from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc_sim.arch import PRESETS, load_arch
from einsumcc_sim.mapping import load_mapping
from einsumcc_sim.report import SimReport, plot_timeline, simulate


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_dims: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    p = sub.add_parser("simulate", help="cycle-level simulation on a spatial-array accelerator")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--arch", default="fusemax", help=f"preset ({', '.join(PRESETS)}) or TOML file")
    p.add_argument("--mapping", default="default", help="mapping TOML file (default: derived)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an architecture field, e.g. --set array2d.rows=128 (repeatable)",
    )
    add_dims(p)
    p.add_argument(
        "--timing",
        choices=("default", "scalesim"),
        default="default",
        help="default: consecutive folds overlap; scalesim: fold-serial as SCALE-Sim v3",
    )
    p.add_argument("--exact", action="store_true", help="simulate every cycle (small problems)")
    p.add_argument(
        "--functional",
        action="store_true",
        help="move real values through the dataflow and compare with the oracle",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the functional inputs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png", help="draw the utilization timeline")
    p.add_argument("--emit-mapping", action="store_true", help="print the mapping as TOML and stop")
    return p


def run(args: argparse.Namespace, cascade: Cascade, dims: dict[str, int]) -> int:
    arch = load_arch(args.arch, args.overrides)
    mapping = load_mapping(args.mapping, cascade, arch)
    if args.emit_mapping:
        sys.stdout.write(mapping.render())
        return 0
    report = simulate(cascade, arch, mapping, dims, timing=args.timing, exact=args.exact)
    other = simulate(
        cascade,
        arch,
        mapping,
        dims,
        timing="default" if args.timing == "scalesim" else "scalesim",
        exact=args.exact,
    )
    sc, df = (report, other) if args.timing == "scalesim" else (other, report)
    report.scalesim_gap = {
        "scalesim_cycles": sc.cycles,
        "default_cycles": df.cycles,
        "ratio": sc.cycles / df.cycles if df.cycles else 0.0,
        "gap_cycles": sc.cycles - df.cycles,
    }
    if args.functional:
        report.functional = _functional(cascade, arch, mapping, dims, args.seed)
    if args.plot:
        plot_timeline(report, args.plot)
    if args.json:
        print(report.json_text())
    else:
        sys.stdout.write(report.render())
        if args.plot:
            print(f"wrote {args.plot}")
    if report.functional is not None and not report.functional["ok"]:
        return 1
    return 0


def _functional(
    cascade: Cascade, arch: object, mapping: object, dims: dict[str, int], seed: int
) -> dict[str, object]:
    from einsumcc.reference import evaluate, random_inputs
    from einsumcc_sim.functional import run_functional

    inputs = random_inputs(cascade, dims, seed=seed)
    ref = evaluate(cascade, inputs, dims)
    got = run_functional(cascade, arch, mapping, dims, inputs)  # type: ignore[arg-type]
    err = 0.0
    for name, want in ref.items():
        diff = np.abs(np.asarray(got[name]) - want)
        both_nan = np.isnan(want) & np.isnan(got[name])
        err = max(err, float(np.max(np.where(both_nan, 0.0, diff), initial=0.0)))
    scale = max(
        [1.0] + [float(np.max(np.abs(np.nan_to_num(v)), initial=0.0)) for v in ref.values()]
    )
    ok = bool(err <= 1e-9 * scale)
    return {"max_abs_error": err, "ok": ok, "outputs": sorted(ref), "seed": seed}


def report_for(args: argparse.Namespace, cascade: Cascade, dims: dict[str, int]) -> SimReport:
    arch = load_arch(args.arch, args.overrides)
    return simulate(cascade, arch, load_mapping(args.mapping, cascade, arch), dims)


def json_dumps(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


def check_file(path: str) -> None:
    if not path:
        raise EinError.plain("simulate needs a .ein file")
