"""``einsumcc simulate``: the command-line front of the simulator.

Importing this module is cheap (no numpy, no sympy, no engine): the ``einsumcc`` command
imports it to build its parser for every subcommand.  The simulator loads in :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from einsumcc_sim.names import ARCH_PRESETS, MAPPING_PRESETS, MODELS, TIMINGS

if TYPE_CHECKING:
    from einsumcc.ir.cascade import Cascade
    from einsumcc_sim.api import Request
    from einsumcc_sim.limits import Limits
    from einsumcc_sim.report import SimReport
    from einsumcc_sim.work import Work


def add_file_and_arch(p: argparse.ArgumentParser) -> None:
    """FILE and ``--arch``, as every simulator command spells them."""
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--arch", default="fusemax", help=f"preset ({', '.join(ARCH_PRESETS)}) or TOML file"
    )


def add_overrides(p: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE``: architecture fields changed on the command line."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an architecture field, e.g. --set array2d.rows=128 (repeatable)",
    )


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_dims: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    p = sub.add_parser("simulate", help="cycle-level simulation on a spatial-array accelerator")
    add_file_and_arch(p)
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
        choices=(*MODELS, "both"),
        default="faithful",
        help="cost model: cycle-level (default), the FuseMax artifact's, or both side by side",
    )
    p.add_argument(
        "--energy",
        choices=("sourced", "calibrated"),
        default="sourced",
        help="per-access energies: sourced (the artifact's table and CACTI, default) or "
        "calibrated (buffer and register-file energies fitted to the artifact; labelled)",
    )
    add_overrides(p)
    add_dims(p)
    p.add_argument(
        "--timing",
        choices=TIMINGS,
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
    p.add_argument(
        "--max-points",
        type=int,
        default=None,
        metavar="N",
        help="--exact/--functional: refuse more iteration points than N (default 1e8)",
    )
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="--functional: refuse arrays larger than SIZE, e.g. 16G (default 4G)",
    )
    p.add_argument(
        "--max-ops",
        type=int,
        default=None,
        metavar="N",
        help="stop an engine run that simulates more than N ops one by one (default 1e6)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png", help="draw the utilization timeline")
    p.add_argument("--emit-mapping", action="store_true", help="print the mapping as TOML and stop")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also report the work done: lowerings, engine runs, default-mapping candidates",
    )
    return p


def _params(items: list[str]) -> dict[str, object]:
    from einsumcc.diagnostics import EinError

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


def _energy(args: argparse.Namespace) -> tuple[str, ...]:
    """``--energy calibrated`` as the architecture field it sets (sourced is the default)."""
    energy = getattr(args, "energy", "sourced")
    return () if energy == "sourced" else (f"energy.model={energy}",)


def request(args: argparse.Namespace, model: object | None = None) -> Request:
    """The request that the command line makes (``model``: another cost model than
    ``--model``, a name or :class:`~einsumcc_sim.model.ModelOptions`)."""
    from einsumcc_sim.api import Request

    chosen = args.model if model is None else model
    return Request(
        arch=args.arch,
        mapping=None if str(args.mapping) == "default" else args.mapping,
        model=chosen,  # type: ignore[arg-type]
        timing=getattr(args, "timing", "default"),
        exact=bool(getattr(args, "exact", False)),
        overrides=(*_energy(args), *args.overrides),
        params=tuple(sorted(_params(args.params).items())),
    )


def run(args: argparse.Namespace, cascade: Cascade, dims: dict[str, int]) -> int:
    from einsumcc_sim.api import setup, simulate_request
    from einsumcc_sim.limits import limits
    from einsumcc_sim.work import Work

    if args.model == "both":
        return _both(args, cascade, dims)
    req = request(args)
    work = Work()
    if args.emit_mapping:
        _, mapping = setup(cascade, req, dims, work)
        sys.stdout.write(mapping.render())
        return 0
    check_budget(args, cascade, dims)
    if args.plot:
        _check_plot_path(args.plot)
    with limits(run_limits(args)):
        report = simulate_request(cascade, req, dims, work, functional=args.functional)
        if args.functional:
            import dataclasses

            arch, mapping = setup(cascade, req, dims, work)
            checked = _functional(cascade, arch, mapping, dims, args.seed)
            report = dataclasses.replace(report, functional=checked)
    _output(args, report)
    if report.functional is not None and not report.functional["ok"]:
        return 1
    return 0


def _check_plot_path(path: str) -> None:
    """``--plot`` into a folder that is not there fails before the simulation, not after."""
    import errno
    from pathlib import Path

    from einsumcc.files import path_error

    try:
        Path(path).stat()  # a name too long, a part that is not a folder...
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise path_error("--plot", path, exc) from None
    if not Path(path).parent.is_dir():
        raise path_error("--plot", path, FileNotFoundError(errno.ENOENT, "no such folder"))


def run_limits(args: argparse.Namespace) -> Limits:
    """The engine's budget of ops and whether it shows progress, from the command line."""
    from einsumcc_sim.limits import MAX_OPS, Limits, on_terminal

    max_ops = getattr(args, "max_ops", None)
    return Limits(
        max_ops=MAX_OPS if max_ops is None else max_ops,
        progress=on_terminal(bool(getattr(args, "json", False))),
    )


def check_budget(args: argparse.Namespace, cascade: Cascade, dims: dict[str, int]) -> None:
    """``--exact`` and ``--functional`` stop before they start when the iteration points
    (and, for ``--functional``, the arrays it holds) are over budget."""
    exact, functional = bool(getattr(args, "exact", False)), bool(args.functional)
    if not (exact or functional):
        return
    from einsumcc.analysis import budget
    from einsumcc_sim.limits import MAX_POINTS

    est = budget.estimate(cascade, dims)
    max_points = MAX_POINTS if args.max_points is None else args.max_points
    memory = budget.parse_size(args.max_memory) if args.max_memory else budget.MAX_MEMORY
    # --functional holds the oracle's arrays and the values the PEs move: twice them
    est = type(est)(2 * est.memory_bytes if functional else 0, est.points, est.largest)
    what = "simulate --functional" if functional else "simulate --exact"
    budget.check_budget(est, what, memory, max_points)


def _output(args: argparse.Namespace, report: SimReport) -> None:
    if args.plot:
        from einsumcc_sim.report import plot_timeline

        plot_timeline(report, args.plot)
    if args.json:
        print(report.json_text())
        if args.verbose and report.work is not None:
            from einsumcc_sim.report import render_work

            print("work: " + render_work(report.work), file=sys.stderr)
    else:
        sys.stdout.write(report.render(verbose=args.verbose))
        if args.plot:
            print(f"wrote {args.plot}")


def _both(args: argparse.Namespace, cascade: Cascade, dims: dict[str, int]) -> int:
    """Both cost models, side by side."""
    from einsumcc_sim.model import ablations
    from einsumcc_sim.work import Work

    work = Work()
    reports = {name: _plain(cascade, request(args, name), dims, work) for name in MODELS[::-1]}
    # where the difference comes from: the artifact's model with one faithful effect on
    effects: list[tuple[str, int]] = [
        (label, _plain(cascade, request(args, options), dims, work).cycles)
        for label, options in ablations()
    ]
    if args.json:
        doc: dict[str, object] = {k: r.to_dict() for k, r in reports.items()}
        doc["effects"] = dict(effects)
        print(json_dumps(doc))
    else:
        sys.stdout.write(render_side_by_side(reports["artifact"], reports["faithful"], effects))
    if args.verbose:
        from einsumcc_sim.report import render_work

        stream = sys.stderr if args.json else sys.stdout
        print("  work: " + render_work(work.as_dict()), file=stream)
    return 0


def _plain(cascade: Cascade, req: Request, dims: dict[str, int], work: Work) -> SimReport:
    """One report of a request, without the SCALE-Sim comparison."""
    from einsumcc_sim.api import setup
    from einsumcc_sim.report import simulate

    arch, mapping = setup(cascade, req, dims, work)
    return simulate(cascade, arch, mapping, dims, model=req.options, work=work)


def render_side_by_side(a: SimReport, f: SimReport, effects: Sequence[tuple[str, int]] = ()) -> str:
    from einsumcc_sim.model import describe, model_options

    rows = [
        ("cycles", f"{a.cycles:,}", f"{f.cycles:,}", f.cycles / a.cycles if a.cycles else 0.0),
        ("seconds", f"{a.seconds:.6g}", f"{f.seconds:.6g}", None),
        ("util 2D", f"{a.utilization['2d']:.4f}", f"{f.utilization['2d']:.4f}", None),
        ("util 1D", f"{a.utilization['1d']:.4f}", f"{f.utilization['1d']:.4f}", None),
        ("DRAM bytes", f"{a.dram_bytes:,}", f"{f.dram_bytes:,}", None),
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
    import numpy as np

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
    """The report of ``args``' cost model, without the SCALE-Sim comparison."""
    from einsumcc_sim.work import Work

    return _plain(cascade, request(args, getattr(args, "model", "faithful")), dims, Work())


def json_dumps(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


def check_file(path: str) -> None:
    if not path:
        from einsumcc.diagnostics import EinError

        raise EinError.plain("simulate needs a .ein file")
