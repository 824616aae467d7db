"""The ``einsumcc`` command line.  ``main(argv)`` returns the exit status:

0 success, 1 an error in the user's input (diagnostics on stderr), 2 a usage error,
3 an internal error (a bug: please report it; ``EINSUMCC_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from einsumcc import backend
from einsumcc.diagnostics import EinError, print_diagnostics
from einsumcc.files import atomic_path, path_error, write_text
from einsumcc.ir.cascade import Cascade
from einsumcc.options import add_dims, parse_dims
from einsumcc.pipeline import load_and_warn

if TYPE_CHECKING:
    import numpy as np

Handler = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------- argument helpers


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _float(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def save_npz(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to an .npz by name (rank-0 results as 0-d arrays)."""
    import numpy as np

    if not str(path).endswith(".npz"):
        raise EinError.plain(f"--save {path}: the outputs are written as an .npz file")
    with atomic_path(path, "--save") as tmp, tmp.open("wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]


def summarize(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, object]]:
    """Shape, sum and L2 norm of each array, JSON-ready."""
    import numpy as np

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
            cascade = load_and_warn(path)
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
    from einsumcc.ir.bind import bind
    from einsumcc.ir.dump import render_cascade

    cascade = load_and_warn(args.file)
    if args.dims:
        bind(cascade, parse_dims(args.dims))
    sys.stdout.write(render_cascade(cascade))
    return 0


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz file by name; a clear error for anything else."""
    import zipfile

    import numpy as np

    try:
        with Path(path).open("rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise path_error("--inputs", path, exc) from None
    if magic == b"\x93NUMPY":
        raise EinError.plain(
            f"--inputs {path}: an .npy file holds one unnamed array",
            hint="save the inputs by name: np.savez('in.npz', Q=q, K=k, V=v)",
        )
    if not zipfile.is_zipfile(path):
        raise EinError.plain(
            f"--inputs {path}: not an .npz file (not a zip archive, or a truncated one)",
            hint="write the inputs with numpy.savez('in.npz', Q=q, K=k, V=v)",
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise EinError.plain(
            f"--inputs {path}: the .npz file cannot be read ({type(exc).__name__}: {exc})",
            hint="it may be truncated; write it again with numpy.savez",
        ) from None


def _given_inputs(args: argparse.Namespace, cascade: Cascade) -> dict[str, np.ndarray]:
    """The arrays of ``--inputs``, checked by name: every input must be there."""
    if not args.inputs:
        return {}
    given = _read_npz(args.inputs)
    names = [t.name for t in cascade.inputs]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise EinError.plain(
            f"--inputs {args.inputs} has '{unknown[0]}', which is not an input of {cascade.name}",
            hint="inputs: " + ", ".join(names),
        )
    missing = [n for n in names if n not in given]
    if missing:
        raise EinError.plain(
            f"--inputs {args.inputs} lacks {', '.join(missing)}",
            hint=f"{cascade.name} reads " + ", ".join(names) + "; save every one of them",
        )
    for name, a in given.items():
        if a.dtype.kind not in "biuf":
            raise EinError.plain(
                f"--inputs {args.inputs}: {name} has dtype {a.dtype}, not a number type"
            )
    return given


def infer_dims(
    cascade: Cascade, given: Mapping[str, np.ndarray], dims: Mapping[str, int]
) -> dict[str, int]:
    """``dims`` completed with the extents the given arrays' shapes imply; a clear error
    when an array's shape disagrees with the cascade (or with ``--dims``)."""
    out = dict(dims)
    source: dict[str, str] = dict.fromkeys(dims, "--dims")
    for t in cascade.inputs:
        a = given.get(t.name)
        if a is None:
            continue
        declared = f"{t.name}[{', '.join(d.rank for d in t.dims)}]"
        if a.ndim != len(t.dims):
            raise EinError.plain(
                f"--inputs: {t.name} has {a.ndim} dimension(s) (shape {a.shape}), but "
                f"{declared} has {len(t.dims)}"
            )
        for d, n in zip(t.dims, a.shape, strict=True):
            rank, n = d.rank, n - (1 if d.iterative else 0)
            fixed = cascade.rank(rank).extent
            known = out.get(rank)
            if known is None and fixed is not None and fixed.is_number:
                known, source[rank] = int(fixed), "its declaration"
            if known is not None and known != n:
                raise EinError.plain(
                    f"--inputs: {t.name} has shape {a.shape}, so {rank} = {n}, but {rank} = "
                    f"{known} from {source.get(rank, 'another input')}",
                    hint=f"{declared}: every array must agree on each rank's extent",
                )
            out[rank] = n
            source.setdefault(rank, f"the shape of {t.name}")
    return {k: v for k, v in out.items() if k in dims or cascade.rank(k).extent is None}


def _check_seed(seed: int) -> None:
    if not 0 <= seed < 2**63:
        raise EinError.plain(
            f"--seed {seed}: expected an integer from 0 to 2**63 - 1", hint="--seed 0"
        )


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from einsumcc.analysis.budget import MAX_MEMORY, check_budget, estimate, parse_size
    from einsumcc.ir.bind import bind
    from einsumcc.reference import evaluate, random_inputs

    _check_seed(args.seed)
    target = getattr(args, "target", "oracle")
    _reject_ignored_options(args, target)
    cascade = load_and_warn(args.file)
    given = _given_inputs(args, cascade)
    dims = infer_dims(cascade, given, parse_dims(args.dims))
    b = bind(cascade, dims)
    max_memory = parse_size(args.max_memory) if args.max_memory else MAX_MEMORY
    check_budget(estimate(cascade, dims), "this run", max_memory, args.max_points)
    inputs = {**random_inputs(cascade, dims, seed=args.seed), **given}
    inputs = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    if target == "oracle":
        if args.check:
            raise EinError.plain("--check compares a --target with the oracle: name one")
        outputs = evaluate(cascade, inputs, dims)
    else:
        runner = backend.runner(target)
        outputs = runner.run(cascade, inputs, dims, args)
    worst = _compare(cascade, outputs, evaluate(cascade, inputs, dims)) if args.check else None
    if args.save:
        save_npz(args.save, outputs)
    summary = summarize(outputs)
    if args.json:
        doc: dict[str, object] = {"outputs": summary}
        if worst is not None:
            doc["check"] = worst
        print(json.dumps(doc, sort_keys=True))
        return 0 if worst is None or worst["ok"] else 1
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
    if worst is not None:
        verdict = "within" if worst["ok"] else "OUTSIDE"
        print(
            f"check against the oracle: worst error {worst['max_abs_error']:.3g} "
            f"(relative {worst['max_rel_error']:.3g}, in {worst['tensor']}), {verdict} the "
            f"tolerance {worst['tolerance']:.3g} for {worst['dtype']}"
        )
        return 0 if worst["ok"] else 1
    return 0


# the relative tolerance of a compiled target against the float64 oracle, by output dtype
TOLERANCE = {"f64": 1e-9, "f32": 1e-4, "bf16": 3e-2, "f16": 4e-3, "i32": 0.0, "bool": 0.0}


def _compare(
    cascade: Cascade, got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray]
) -> dict[str, object]:
    """The worst error of ``got`` against the oracle's ``want``, scaled by each output's
    largest magnitude, and whether it is within the tolerance of the output's dtype."""
    import numpy as np

    worst: dict[str, object] = {"ok": True, "max_abs_error": 0.0, "max_rel_error": 0.0}
    worst.update(tensor="-", dtype="-", tolerance=0.0)
    for name, ref in want.items():
        ref = np.asarray(ref, dtype=np.float64)
        out = np.asarray(got[name], dtype=np.float64)
        same_nan = np.isnan(ref) & np.isnan(out)
        diff = np.where(same_nan, 0.0, np.abs(out - ref))
        diff = np.where(np.isinf(ref) & (out == ref), 0.0, diff)
        err = float(np.max(diff, initial=0.0))
        scale = max(1e-30, float(np.max(np.abs(np.nan_to_num(ref, posinf=0, neginf=0)), initial=0)))
        dtype = cascade.tensor(name).dtype.value
        tol = TOLERANCE.get(dtype, 1e-4)
        rel = err / scale if math.isfinite(err) else math.inf
        if rel >= float(worst["max_rel_error"]):  # type: ignore[arg-type]
            worst.update(max_abs_error=err, max_rel_error=rel, tensor=name, dtype=dtype)
            worst["tolerance"] = tol
        if not rel <= tol:
            worst["ok"] = False
    return worst


def _reject_ignored_options(args: argparse.Namespace, target: str) -> None:
    """Options that only another target reads are an error, not silently ignored."""
    for b in backend.loaded():
        if not isinstance(b, backend.Runner) or b.name == target:
            continue
        for option in b.run_options:
            if getattr(args, option, None):
                flag = "--" + option.replace("_", "-")
                raise EinError.plain(
                    f"{flag} applies to --target {b.name}, not --target {target}",
                    hint=f"drop {flag}, or add --target {b.name}",
                )


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
    cascade = load_and_warn(args.file)
    dot = render_dot(cascade)
    out = args.output
    if out is None or out == "-":
        sys.stdout.write(dot)
        return 0
    path = Path(out)
    if path.suffix == ".svg":
        import shutil
        import subprocess

        exe = shutil.which("dot")
        if exe is None:
            raise EinError.plain(
                "writing SVG needs Graphviz's 'dot' program, which is not installed",
                hint=f"write DOT instead: -o {path.with_suffix('.dot')}",
            )
        svg = subprocess.run([exe, "-Tsvg"], input=dot, capture_output=True, text=True, check=False)
        if svg.returncode != 0:
            raise EinError.plain(f"dot failed: {svg.stderr.strip()}")
        write_text(path, svg.stdout)
    elif path.suffix in {".dot", ".gv"}:
        write_text(path, dot)
    else:
        raise EinError.plain(f"-o {out}: the graph is written as .dot, .gv or .svg")
    print(f"wrote {path}")
    return 0


def _extents(cascade: Cascade, dims: dict[str, int]) -> dict[str, int] | None:
    """Concrete extents when every rank can be bound, else None (symbolic report)."""
    from einsumcc.ir.bind import bind

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
        cascade = load_and_warn(path)
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
    for _, cascade, rep, ext in reports:
        sys.stdout.write(render_passes(rep, ext))
        if args.explain:
            sys.stdout.write(_explain(cascade, args.rank))
    if len(reports) > 1:
        print()
        sys.stdout.write(render_taxonomy([(p, rep) for p, _, rep, _ in reports]))
    return 0


def _explain(cascade: Cascade, rank: str | None) -> str:
    """``--explain``: for every extra pass, the rewrite that would remove it, or why none
    applies."""
    from einsumcc.derive.explain import explain

    lines: list[str] = []
    for r in [rank] if rank is not None else [x.name for x in cascade.ranks]:
        found = explain(cascade, r)
        if found:
            lines.append(f"{cascade.name}: extra passes over {r}")
            lines.extend(f"  {line}" for line in found)
    return "\n".join(lines) + ("\n" if lines else "")


def _parse_tile(text: str | None) -> tuple[str, int] | None:
    from einsumcc.options import parse_assignments

    if text is None:
        return None
    tiles = parse_assignments([text], "--tile", "M0=64")
    if len(tiles) != 1:
        raise EinError.plain(f"--tile {text}: name one tile rank", hint="--tile M0=64")
    return next(iter(tiles.items()))


def cmd_derive(args: argparse.Namespace) -> int:
    from einsumcc.pipeline import derive

    cascade = load_and_warn(args.file)
    d = derive(cascade, args.rank, _parse_tile(args.tile))
    if args.output:
        write_text(Path(args.output), d.text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(d.text)
    out = sys.stdout if args.output else sys.stderr
    print(d.summary(), file=out)
    if not args.check:
        return 0
    print("certificates (sympy):", file=out)
    for rewrite, cert in d.certificates:
        print(f"  {rewrite}: {cert}", file=out)
    if not d.certificates:
        print("  (no rewrite applied)", file=out)
    check = d.check(seed=args.seed)
    print(check, file=out)
    return 0 if check.ok and d.proved else 1


def cmd_analyze_cost(args: argparse.Namespace) -> int:
    from einsumcc.analysis.cost import analyze_cost
    from einsumcc.analysis.report import cost_json, render_cost

    cascade = load_and_warn(args.file)
    ext = _extents(cascade, parse_dims(args.dims))
    report = analyze_cost(cascade)
    if args.json:
        print(json.dumps(cost_json(report, ext), indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_cost(report, ext))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from einsumcc.demo import run_demo

    return run_demo()


# ---------------------------------------------------------------- parser


def _add_core_commands(sub: backend.Subcommands) -> None:
    p = sub.add_parser("check", help="parse and check .ein files and their expect lines")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("run", help="evaluate a cascade on random or given inputs")
    p.add_argument("file", metavar="FILE")
    add_dims(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--inputs", metavar="IN.npz", help="input arrays by tensor name")
    p.add_argument("--save", metavar="OUT.npz", help="write every output to an .npz by name")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="stop before starting when the arrays would exceed SIZE (default 4G)",
    )
    p.add_argument(
        "--max-points",
        type=int,
        default=10**10,
        metavar="N",
        help="stop before starting when the Einsums would visit more than N iteration points "
        "(default 1e10)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="compare the --target's outputs with the oracle's and report the worst error "
        "(exit 1 when it is outside the output dtype's tolerance)",
    )
    runners = [b for b in backend.loaded() if isinstance(b, backend.Runner)]
    p.add_argument(
        "--target",
        choices=["oracle", *(b.name for b in runners)],
        default="oracle",
        help="oracle: the numpy reference (default)"
        + "".join(f"; {b.name}: {b.summary}" for b in runners),
    )
    for b in runners:
        b.add_run_options(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "derive", help="rewrite a cascade to fewer passes over a rank, with a certificate"
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--rank", required=True, help="the rank whose passes to lower")
    p.add_argument("-o", "--output", metavar="OUT.ein", help="write the derived cascade here")
    p.add_argument(
        "--tile",
        metavar="R0=N",
        help="walk the rank by tiles of N (adds rank R0 = N, R1 = R / R0 and a split); "
        "default: one element per step, or the rank's own split",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="print the sympy certificates and compare with the original on the oracle "
        "(random inputs and scores scaled to ±80); exit 1 on a failure",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the --check inputs (default 0)")
    p.set_defaults(handler=cmd_derive)

    p = sub.add_parser("show", help="print the canonical IR of a cascade (valid .ein)")
    p.add_argument("file", metavar="FILE")
    add_dims(p)
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
    q.add_argument(
        "--explain",
        action="store_true",
        help="name, for every extra pass, the rewrite that would remove it or why none applies",
    )
    add_dims(q)
    q.set_defaults(handler=cmd_analyze_passes)
    q = asub.add_parser("cost", help="operation counts and compulsory traffic per Einsum")
    q.add_argument("file", metavar="FILE")
    q.add_argument("--json", action="store_true", help="print JSON on stdout")
    add_dims(q)
    q.set_defaults(handler=cmd_analyze_cost)


def build_parser() -> argparse.ArgumentParser:
    """The core's commands, then each installed backend's (``einsumcc.backends``)."""
    from einsumcc import __version__

    parser = argparse.ArgumentParser(
        prog="einsumcc",
        description="Analyse, compile and simulate attention algorithms written as cascades "
        "of extended Einsums (.ein files).",
        epilog="backends: " + ", ".join(f"{b.name} ({b.summary})" for b in backend.loaded()),
    )
    parser.add_argument("--version", action="version", version=f"einsumcc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_core_commands(sub)
    problems = backend.problems()
    for b in backend.loaded():
        try:
            b.add_commands(sub)
        except Exception as exc:  # a broken plugin must not take the core's commands down
            problems.append(f"backend '{b.name}' failed to add its commands ({exc!r})")
    for problem in problems:
        print(f"warning: {problem}; its commands are unavailable", file=sys.stderr)
    p = sub.add_parser("demo", help="a tour on the bundled attention cascades")
    p.set_defaults(handler=cmd_demo)
    return parser


def _internal_error() -> int:
    """A bug: say so, and show the traceback only when asked."""
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


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:  # no command: the help, which is not an error
            parser.print_help()
            return 0
        return handler(args)
    except EinError as err:
        print_diagnostics(err.diagnostics, err.source)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception:
        return _internal_error()
