"""The ``einsumcc`` command line.  ``main(argv)`` returns the exit status:

0 success, 1 an error in the user's input (diagnostics on stderr), 2 a usage error,
3 an internal error (a bug: please report it; ``EINSUMCC_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from einsumcc.diagnostics import EinError, Source, print_diagnostics
from einsumcc.ir.bind import bind
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.dump import render_cascade
from einsumcc.pipeline import load_with_warnings

Handler = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------- argument helpers


def parse_assignments(
    values: Sequence[str] | None, option: str, example: str, value: str = "POSITIVE_INTEGER"
) -> dict[str, int]:
    """``["M=1024,P=512", "E=64"]`` → ``{"M": 1024, "P": 512, "E": 64}`` for ``option``."""
    out: dict[str, int] = {}
    for text in values or ():
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, number = item.partition("=")
            name = name.strip()
            try:
                n = int(number.strip().replace("_", ""))
            except ValueError:
                n = -1
            if not sep or not name.isidentifier() or n <= 0:
                raise EinError.plain(
                    f"{option}: expected RANK={value}, got '{item}'",
                    hint=f"for example {option} {example}",
                )
            out[name] = n
    return out


def parse_dims(values: Sequence[str] | None) -> dict[str, int]:
    """The extents given with ``--dims``."""
    return parse_assignments(values, "--dims", "M=1024,P=512")


def _load(path: str) -> Cascade:
    cascade, warnings = load_with_warnings(Path(path))
    if warnings:
        print_diagnostics(warnings, cascade.source)
    return cascade


def bundled(name: str) -> Source:
    """A `.ein` file shipped with the package (``examples/`` in the source tree)."""
    text = resources.files("einsumcc.examples").joinpath(name).read_text("utf-8")
    return Source(f"examples/{name}", text)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _float(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def save_npz(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to an .npz by name (rank-0 results as 0-d arrays)."""
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]


def summarize(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, object]]:
    """Shape, sum and L2 norm of each array, JSON-ready."""
    out: dict[str, dict[str, object]] = {}
    for name, a in arrays.items():
        a = np.asarray(a, dtype=np.float64)
        out[name] = {
            "shape": list(a.shape),
            "sum": _float(float(a.sum())),
            "l2": _float(float(np.sqrt(np.sum(a * a)))),
        }
    return out


# ---------------------------------------------------------------- commands


def cmd_check(args: argparse.Namespace) -> int:
    from einsumcc.analysis.expect import check_expectations

    status = 0
    for path in args.files:
        try:
            cascade = _load(path)
            failures = check_expectations(cascade)
        except EinError as err:
            print_diagnostics(err.diagnostics, err.source)
            status = 1
            continue
        if failures:
            print_diagnostics(failures, cascade.source)
            status = 1
            continue
        n = len(cascade.expects)
        held = f", {_plural(n, 'expectation')} {'holds' if n == 1 else 'hold'}" if n else ""
        print(
            f"{path}: ok ({_plural(len(cascade.einsums), 'Einsum')}, "
            f"{_plural(len(cascade.tensors), 'tensor')}{held})"
        )
    return status


def cmd_show(args: argparse.Namespace) -> int:
    cascade = _load(args.file)
    if args.dims:
        bind(cascade, parse_dims(args.dims))
    sys.stdout.write(render_cascade(cascade))
    return 0


def _inputs(
    args: argparse.Namespace, cascade: Cascade, dims: dict[str, int]
) -> dict[str, np.ndarray]:
    from einsumcc.reference import random_inputs

    inputs = random_inputs(cascade, dims, seed=args.seed)
    if args.inputs:
        try:
            with np.load(args.inputs) as npz:
                given = {k: np.asarray(npz[k]) for k in npz.files}
        except (OSError, ValueError) as exc:
            raise EinError.plain(f"cannot read --inputs {args.inputs}: {exc}") from None
        names = {t.name for t in cascade.inputs}
        unknown = sorted(set(given) - names)
        if unknown:
            raise EinError.plain(
                f"--inputs {args.inputs} has '{unknown[0]}', which is not an input of "
                f"{cascade.name}",
                hint="inputs: " + ", ".join(sorted(names)),
            )
        missing = sorted(names - set(given))
        if missing:
            print(
                f"warning: --inputs {args.inputs} lacks {', '.join(missing)}; "
                f"using random values (seed {args.seed})",
                file=sys.stderr,
            )
        inputs.update({k: v.astype(np.float64) for k, v in given.items()})
    return inputs


def cmd_run(args: argparse.Namespace) -> int:
    from einsumcc.reference import evaluate

    cascade = _load(args.file)
    dims = parse_dims(args.dims)
    b = bind(cascade, dims)
    inputs = _inputs(args, cascade, dims)
    target = getattr(args, "target", "oracle")
    if target == "triton":
        from einsumcc_triton.command import parse_names, parse_tiles, run_triton

        tiles, materialize = parse_tiles(args.tile), parse_names(args.materialize)
        outputs = run_triton(cascade, inputs, dims, tiles, materialize)
    else:
        outputs = evaluate(cascade, inputs, dims)
    if args.save:
        save_npz(args.save, outputs)
    summary = summarize(outputs)
    if args.json:
        print(json.dumps({"outputs": summary}, sort_keys=True))
        return 0
    shown = ", ".join(f"{k}={v}" for k, v in b.extents.items())
    print(f"{cascade.name}: {target}, seed {args.seed}, {shown}")
    width = max([len("tensor"), *(len(n) for n in summary)])
    print(f"  {'tensor':<{width}}  {'shape':<16} {'dtype':<5} {'sum':>14} {'l2':>14}")
    for name, s in summary.items():
        shape = " x ".join(str(d) for d in s["shape"]) or "scalar"  # type: ignore[attr-defined]
        dtype = cascade.tensor(name).dtype.value
        print(f"  {name:<{width}}  {shape:<16} {dtype:<5} {_fmt(s['sum']):>14} {_fmt(s['l2']):>14}")
    if args.save:
        print(f"saved {', '.join(outputs)} to {args.save}")
    return 0


def _fmt(x: object) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def render_dot(cascade: Cascade) -> str:
    """The cascade graph in Graphviz DOT: tensors as ellipses, Einsums as boxes."""
    from einsumcc.ir.dump import render_einsum

    lines = [f'digraph "{cascade.name}" {{', "  rankdir=TB;", '  node [fontname="monospace"];']
    g = cascade.graph
    for node in sorted(g.nodes):
        attrs = g.nodes[node]
        if attrs["kind"] == "tensor":
            t = cascade.tensor(attrs["name"])
            label = f"{t.name}[{', '.join(map(str, t.dims))}]"
            style = {"input": "filled", "output": "bold"}.get(t.role.value, "solid")
            lines.append(f'  "{node}" [shape=ellipse, style={style}, label="{label}"];')
        else:
            text = render_einsum(cascade.einsum(attrs["name"])).replace('"', '\\"')
            lines.append(f'  "{node}" [shape=box, label="{text}"];')
    for u, v, edge in sorted(g.edges(data=True)):
        deps = edge.get("dependencies", ())
        style = ' [style=dashed, label="carried"]' if deps == ("carried",) else ""
        lines.append(f'  "{u}" -> "{v}"{style};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def cmd_graph(args: argparse.Namespace) -> int:
    cascade = _load(args.file)
    dot = render_dot(cascade)
    out = args.output
    if out is None or out == "-":
        sys.stdout.write(dot)
        return 0
    path = Path(out)
    if path.suffix == ".svg":
        exe = shutil.which("dot")
        if exe is None:
            raise EinError.plain(
                "writing SVG needs Graphviz's 'dot' program, which is not installed",
                hint=f"write DOT instead: -o {path.with_suffix('.dot')}",
            )
        svg = subprocess.run([exe, "-Tsvg"], input=dot, capture_output=True, text=True, check=False)
        if svg.returncode != 0:
            raise EinError.plain(f"dot failed: {svg.stderr.strip()}")
        path.write_text(svg.stdout)
    elif path.suffix in {".dot", ".gv"}:
        path.write_text(dot)
    else:
        raise EinError.plain(f"-o {out}: the graph is written as .dot, .gv or .svg")
    print(f"wrote {path}")
    return 0


def _extents(cascade: Cascade, dims: dict[str, int]) -> dict[str, int] | None:
    """Concrete extents when every rank can be bound, else None (symbolic report)."""
    unbound = [r.name for r in cascade.ranks if r.extent is None and r.name not in dims]
    if unbound:
        return None
    return dict(bind(cascade, dims).extents)


def cmd_analyze_passes(args: argparse.Namespace) -> int:
    from einsumcc.analysis.passes import analyze_passes
    from einsumcc.analysis.report import passes_json, render_passes, render_taxonomy

    dims = parse_dims(args.dims)
    reports = []
    for path in args.files:
        cascade = _load(path)
        if args.rank is not None and args.rank not in cascade.var_ranks.values():
            raise EinError.plain(
                f"--rank {args.rank}: {cascade.name} has no such rank",
                hint="ranks: " + ", ".join(r.name for r in cascade.ranks),
            )
        report = analyze_passes(cascade, args.rank)
        mine = {k: v for k, v in dims.items() if k in cascade.var_ranks.values()}
        reports.append((path, cascade, report, _extents(cascade, mine)))
    known = {r for _, c, _, _ in reports for r in c.var_ranks.values()}
    for name in dims:
        if name not in known:
            raise EinError.plain(f"--dims names '{name}', which no file declares as a rank")
    if args.json:
        objs = [passes_json(rep, ext) for _, _, rep, ext in reports]
        print(json.dumps(objs[0] if len(objs) == 1 else objs, indent=2, sort_keys=True))
        return 0
    for _, _, rep, ext in reports:
        sys.stdout.write(render_passes(rep, ext))
    if len(reports) > 1:
        print()
        sys.stdout.write(render_taxonomy([(p, rep) for p, _, rep, _ in reports]))
    return 0


def cmd_analyze_cost(args: argparse.Namespace) -> int:
    from einsumcc.analysis.cost import analyze_cost
    from einsumcc.analysis.report import cost_json, render_cost

    cascade = _load(args.file)
    ext = _extents(cascade, parse_dims(args.dims))
    report = analyze_cost(cascade)
    if args.json:
        print(json.dumps(cost_json(report, ext), indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_cost(report, ext))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from einsumcc_sim.command import run as run_simulation

    cascade = _load(args.file)
    return run_simulation(args, cascade, parse_dims(args.dims))


def cmd_reproduce(args: argparse.Namespace) -> int:
    from einsumcc_fusemax.command import run as run_reproduce

    return run_reproduce(args)


def cmd_compile(args: argparse.Namespace) -> int:
    from einsumcc_triton.command import cmd_compile as compile_command

    return compile_command(args, _load, parse_dims)


def cmd_demo(args: argparse.Namespace) -> int:
    from einsumcc.demo import run_demo

    return run_demo()


# ---------------------------------------------------------------- parser


def _add_dims(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dims",
        action="append",
        metavar="R=N,...",
        help="rank extents, overriding the defaults (e.g. --dims M=1024,P=512); repeatable",
    )


def build_parser() -> argparse.ArgumentParser:
    from einsumcc import __version__

    parser = argparse.ArgumentParser(
        prog="einsumcc",
        description="Analyse, compile and simulate attention algorithms written as cascades "
        "of extended Einsums (.ein files).",
    )
    parser.add_argument("--version", action="version", version=f"einsumcc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("check", help="parse and check .ein files and their expect lines")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("run", help="evaluate a cascade on random or given inputs")
    p.add_argument("file", metavar="FILE")
    _add_dims(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--inputs", metavar="IN.npz", help="input arrays by tensor name")
    p.add_argument("--save", metavar="OUT.npz", help="write every output to an .npz by name")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--target",
        choices=["oracle", "triton"],
        default="oracle",
        help="oracle: the numpy reference (default); triton: the compiled kernels (in "
        "Triton's interpreter when there is no GPU)",
    )
    from einsumcc_triton.command import add_schedule_options

    add_schedule_options(p)
    p.set_defaults(handler=cmd_run)

    from einsumcc_triton.command import add_parser as add_compile

    add_compile(sub, _add_dims).set_defaults(handler=cmd_compile)

    p = sub.add_parser("show", help="print the canonical IR of a cascade (valid .ein)")
    p.add_argument("file", metavar="FILE")
    _add_dims(p)
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("graph", help="draw the cascade graph (DOT, or SVG with Graphviz)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", metavar="OUT.dot|OUT.svg", help="output file (default stdout)")
    p.set_defaults(handler=cmd_graph)

    p = sub.add_parser("analyze", help="static analyses: passes, cost")
    asub = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    asub.required = True
    q = asub.add_parser(
        "passes", help="lower bound on the passes over each rank, with witnesses and footprints"
    )
    q.add_argument("files", nargs="+", metavar="FILE")
    q.add_argument("--rank", help="report only this rank")
    q.add_argument("--json", action="store_true", help="print JSON on stdout")
    _add_dims(q)
    q.set_defaults(handler=cmd_analyze_passes)
    q = asub.add_parser("cost", help="operation counts and compulsory traffic per Einsum")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--json", action="store_true", help="print JSON on stdout")
    _add_dims(q)
    q.set_defaults(handler=cmd_analyze_cost)

    from einsumcc_sim.command import add_parser as add_simulate

    add_simulate(sub, _add_dims).set_defaults(handler=cmd_simulate)

    from einsumcc_fusemax.command import add_parser as add_reproduce

    add_reproduce(sub).set_defaults(handler=cmd_reproduce)

    p = sub.add_parser("demo", help="a tour on the bundled attention cascades")
    p.set_defaults(handler=cmd_demo)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except EinError as err:
        print_diagnostics(err.diagnostics, err.source)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception:  # a bug: say so, and show the traceback only when asked
        if os.environ.get("EINSUMCC_DEBUG"):
            traceback.print_exc()
        else:
            exc = sys.exc_info()[1]
            print(
                f"einsumcc: internal error: {type(exc).__name__}: {exc}\n"
                "This is a bug in einsumcc; please report it with the input that caused it "
                "(EINSUMCC_DEBUG=1 shows the traceback).",
                file=sys.stderr,
            )
        return 3
