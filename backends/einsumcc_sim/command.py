"""``einsumcc simulate``: the command-line front of the simulator."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

import numpy as np

from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc_sim.arch import PRESETS, Arch, load_arch
from einsumcc_sim.mapping import MAPPING_PRESETS, load_mapping
from einsumcc_sim.mapping import Mapping as SimMapping
from einsumcc_sim.model import ModelOptions, ablations, describe, model_options
from einsumcc_sim.report import SimReport, default_for, plot_timeline, simulate


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_dims: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    p = sub.add_parser("simulate", help="cycle-level simulation on a spatial-array accelerator")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--arch", default="fusemax", help=f"preset ({', '.join(PRESETS)}) or TOML file")
    p.add_argument(
        "--mapping",
        default="default",
        help=f"mapping preset ({', '.join(MAPPING_PRESETS)}) or TOML file (default: derived)",
    )
    p.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the mapping file, e.g. --param block=1024 (repeatable)",
    )
    p.add_argument(
        "--model",
        choices=("faithful", "artifact", "both"),
        default="faithful",
        help="cost model: cycle-level (default), the FuseMax artifact's, or both side by side",
    )
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


def _params(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EinError.plain(f"--param {item}: expected NAME=VALUE", hint="--param block=1024")
        v: object = value.strip()
        if isinstance(v, str) and v.lstrip("-").isdigit():
            v = int(v)
        out[key.strip()] = v
    return out


def _setup(
    args: argparse.Namespace, cascade: Cascade, model: str | ModelOptions
) -> tuple[Arch, SimMapping]:
    arch = load_arch(args.arch, args.overrides)
    mapping = load_mapping(args.mapping, cascade, arch, _params(args.params))
    extra = mapping.overrides_for(model)
    if extra:
        arch = load_arch(args.arch, [*extra, *args.overrides])
    return arch, mapping


def fit_default(
    args: argparse.Namespace,
    cascade: Cascade,
    arch: Arch,
    mapping: SimMapping,
    dims: dict[str, int],
    model: ModelOptions,
) -> SimMapping:
    """The given mapping, or for ``--mapping default`` the default chosen at these dims."""
    if str(args.mapping) != "default":
        return mapping
    return default_for(cascade, arch, dims, getattr(args, "timing", "default"), model)


def run(args: argparse.Namespace, cascade: Cascade, dims: dict[str, int]) -> int:
    if args.model == "both":
        return _both(args, cascade, dims)
    model = model_options(args.model)
    arch, mapping = _setup(args, cascade, args.model)
    mapping = fit_default(args, cascade, arch, mapping, dims, model)
    if args.emit_mapping:
        sys.stdout.write(mapping.render())
        return 0
    if model.name != "faithful" and (args.exact or args.functional or args.timing != "default"):
        raise EinError.plain(
            f"--exact, --functional and --timing scalesim simulate the faithful cycle-level "
            f"model, not --model {model.name}",
            hint="drop --model or use --model faithful",
        )
    report = simulate(
        cascade, arch, mapping, dims, timing=args.timing, exact=args.exact, model=model
    )
    if model.name == "faithful":
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


def _both(args: argparse.Namespace, cascade: Cascade, dims: dict[str, int]) -> int:
    """Both cost models, side by side."""
    reports: dict[str, SimReport] = {}
    for name in ("artifact", "faithful"):
        arch, mapping = _setup(args, cascade, name)
        mapping = fit_default(args, cascade, arch, mapping, dims, model_options(name))
        reports[name] = simulate(cascade, arch, mapping, dims, model=model_options(name))
    # where the difference comes from: the artifact's model with one faithful effect on
    effects: list[tuple[str, int]] = []
    for label, options in ablations():
        arch, mapping = _setup(args, cascade, options)
        mapping = fit_default(args, cascade, arch, mapping, dims, options)
        effects.append((label, simulate(cascade, arch, mapping, dims, model=options).cycles))
    if args.json:
        doc = {k: r.to_json() for k, r in reports.items()}
        doc["effects"] = dict(effects)
        print(json_dumps(doc))
        return 0
    sys.stdout.write(render_side_by_side(reports["artifact"], reports["faithful"], effects))
    return 0


def render_side_by_side(a: SimReport, f: SimReport, effects: Sequence[tuple[str, int]] = ()) -> str:
    rows = [
        ("cycles", f"{a.cycles:,}", f"{f.cycles:,}", f.cycles / a.cycles if a.cycles else 0.0),
        ("seconds", f"{a.seconds:.6g}", f"{f.seconds:.6g}", None),
        ("util 2D", f"{a.utilization['2d']:.4f}", f"{f.utilization['2d']:.4f}", None),
        ("util 1D", f"{a.utilization['1d']:.4f}", f"{f.utilization['1d']:.4f}", None),
        (
            "DRAM bytes",
            f"{a.dram_read_bytes + a.dram_write_bytes:,}",
            f"{f.dram_read_bytes + f.dram_write_bytes:,}",
            None,
        ),
        ("energy pJ", f"{a.energy_pj:.6g}", f"{f.energy_pj:.6g}", None),
    ]
    out = [f"{a.cascade} on {a.arch} ({a.mapping} mapping)", "",
           f"  {'':<12} {'artifact':>22} {'faithful':>22}"]  # fmt: skip
    for name, x, y, ratio in rows:
        extra = f"   ({ratio:.3f}x)" if ratio else ""
        out.append(f"  {name:<12} {x:>22} {y:>22}{extra}")
    out.append("")
    out.append("  what each model charges:")
    for (effect, art), (_, fai) in zip(
        describe(model_options("artifact")), describe(model_options("faithful")), strict=True
    ):
        out.append(f"    {effect:<20} artifact: {art}")
        out.append(f"    {'':<20} faithful: {fai}")
    if effects:
        out.append("")
        out.append("  the artifact's model with one effect of the faithful model switched on:")
        for label, cycles in effects:
            ratio = cycles / a.cycles if a.cycles else 0.0
            out.append(f"    {label:<48} {cycles:>16,} cycles  ({ratio:.3f}x)")
    return "\n".join(out) + "\n"


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
    model = getattr(args, "model", "faithful")
    arch, mapping = _setup(args, cascade, model)
    mapping = fit_default(args, cascade, arch, mapping, dims, model_options(model))
    return simulate(cascade, arch, mapping, dims, model=model_options(model))


def json_dumps(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


def check_file(path: str) -> None:
    if not path:
        raise EinError.plain("simulate needs a .ein file")
