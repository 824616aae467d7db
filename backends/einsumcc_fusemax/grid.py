"""The grid of ``einsumcc reproduce fusemax``: every point simulated (in parallel jobs),
the artifact's CSVs, the figures, the summary and the attribution of the cost models'
difference.  :mod:`einsumcc_fusemax.command` loads it when the command runs."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from einsumcc.diagnostics import EinError
from einsumcc.files import path_error, write_text
from einsumcc_fusemax.experiment import Point, run_point, simulate_point
from einsumcc_fusemax.results import (
    Design,
    Row,
    compare,
    parse_designs,
    read_csv,
    reference_dir,
    render_summary,
    summarize,
    write_csv,
)
from einsumcc_fusemax.workload import Model, load_models, parse_seq, seq_label
from einsumcc_sim.arch import load_arch
from einsumcc_sim.energy import label as energy_label
from einsumcc_sim.model import ModelOptions, ablations, model_options

T = TypeVar("T")
R = TypeVar("R")


def _run_with(
    fn: Callable[[Point, str, tuple[str, ...]], tuple[Point, Row, float]],
    args: tuple[Point, str, tuple[str, ...]],
) -> tuple[Point, Row, float]:
    return fn(*args)


def _label(p: Point) -> str:
    return f"{p.design} {p.model.name} {seq_label(p.seq)}"


def progress_bar(total: int, label: str, quiet: bool = False) -> Any:
    """A tqdm bar over ``total`` points on stderr (on a terminal, and not ``quiet``)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=label,
        unit="point",
        disable=quiet or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )


def parallel(fn: Callable[[T], R], tasks: Sequence[T], jobs: int, name: Callable[[T], str],
             done: Callable[[R], None] | None = None) -> list[R]:  # fmt: skip
    """``fn`` over ``tasks`` on ``jobs`` Dask workers (a ``distributed.LocalCluster`` of
    processes, as ``einsumcc sweep`` runs its points), results as they finish.

    The first failure ends the run at once: a worker's exception is raised here (an
    :class:`EinError` as it is, anything else as an error naming the task), a worker killed
    by a signal or ``os._exit`` is an error naming the task it was running (no retry), and
    on any of these, or a Ctrl-C, the cluster is closed: the tasks not started are dropped
    and the workers still running are ended, so nothing waits for them."""
    if jobs <= 1 or len(tasks) <= 1:
        out = []
        for t in tasks:
            out.append(fn(t))
            if done:
                done(out[-1])
        return out
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    from einsumcc_sim.sweep import _client

    client, cluster = _client(None, min(jobs, len(tasks)), retries=False)
    results: list[R] = []
    try:
        futures = {client.submit(fn, t, pure=False): t for t in tasks}
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]
            try:
                results.append(fut.result())
            except KilledWorker:
                raise EinError.plain(
                    "a worker process died (killed by a signal, out of memory, or it exited) "
                    f"while simulating {name(futures[fut])}",
                    hint="run with --jobs 1 to see the point's own error; the other points "
                    "were cancelled",
                ) from None
            except EinError:
                raise
            except Exception as exc:
                raise EinError.plain(
                    f"simulating {name(futures[fut])} failed: {type(exc).__name__}: {exc}",
                    hint="this is a bug in einsumcc; --jobs 1 shows where",
                ) from exc
            if done:
                done(results[-1])
    finally:
        _stop(client, cluster)
    return results


def _stop(client: Any, cluster: Any) -> None:
    """Close the client and the local cluster: what has not started is dropped, the workers
    still running are ended."""
    try:
        client.close(timeout=5)
    finally:
        cluster.close(timeout=10)


def run_grid(
    points: Sequence[Point],
    model: str,
    overrides: Sequence[str],
    jobs: int,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[Point, Row, float]]:
    """Simulate every point (the longest first, over ``jobs`` processes); ``progress`` is
    called with each point's label as it finishes."""
    todo = sorted(points, key=lambda p: (-p.seq, p.design))
    tasks = [(p, model, tuple(overrides)) for p in todo]

    def done(res: tuple[Point, Row, float]) -> None:
        if progress:
            progress(_label(res[0]))

    # run_point as this module holds it now (a test may replace it), shipped to the workers
    work = functools.partial(_run_with, run_point)
    return parallel(work, tasks, jobs, lambda t: _label(t[0]), done)


def grouped(
    results: Sequence[tuple[Point, Row, float]], models: Sequence[Model], designs: Sequence[Design]
) -> dict[str, list[Row]]:
    rank = {m.name: i for i, m in enumerate(models)}
    out: dict[str, list[Row]] = {d.key: [] for d in designs}
    for p, r, _ in results:
        out[p.design].append(r)
    for rows in out.values():
        rows.sort(key=lambda r: (rank.get(r.model, 99), r.seq))
    return out


def _have_matplotlib(quiet: bool) -> bool:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is not None:
        return True
    if not quiet:
        print("reproduce: no figures (they need matplotlib: pip install matplotlib; "
              "--no-plots skips them)", file=sys.stderr)  # fmt: skip
    return False


def reproduce(args: argparse.Namespace) -> int:
    models = load_models(args.models)
    seqs = parse_seq(args.seq)
    designs = parse_designs(args.designs)
    if not models or not seqs or not designs:
        raise EinError.plain("nothing to run", hint="give at least one model, length and design")
    jobs = args.jobs if args.jobs > 0 else (os.cpu_count() or 1)
    points = [Point(d.key, m, s) for d in designs for m in models for s in seqs]
    out = Path(args.out)
    _mkdir(out)
    args.overrides = [*args.overrides, *energy_overrides(getattr(args, "energy", None))]
    energy = load_arch("fusemax", args.overrides).energy_model
    runs = ["artifact", "faithful"] if args.model == "both" else [args.model]
    tables: dict[str, dict[str, list[Row]]] = {}
    timing: dict[str, float] = {}
    plotted = False
    for model in runs:
        t0 = time.perf_counter()
        with progress_bar(len(points), f"{model:>8}", args.quiet) as bar:
            results = run_grid(points, model, args.overrides, jobs, lambda note: _step(bar, note))
        timing[model] = time.perf_counter() - t0
        tables[model] = grouped(results, models, designs)
        target = out if model == runs[0] else out / model
        _mkdir(target)
        for d in designs:
            write_csv(d, tables[model][d.key], target, energy)
        if not args.no_plots and _have_matplotlib(args.quiet):
            from einsumcc_fusemax.figures import draw_all

            draw_all(tables[model], target)
            plotted = True
    ref_dir = Path(args.reference) if args.reference else reference_dir()
    attribution = None
    if len(runs) == 2:
        attribution = attribute(designs, models, seqs, args.overrides, jobs, args.quiet)
    text = render_report(tables, designs, ref_dir, out, timing, len(points), attribution, plotted,
                         energy)  # fmt: skip
    write_text(out / "summary.txt", text, "--out")
    sys.stdout.write(text)
    return 0


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise path_error("--out", folder, exc) from None


def _step(bar: Any, note: str) -> None:
    bar.set_postfix_str(note, refresh=False)
    bar.update(1)


def render_report(
    tables: dict[str, dict[str, list[Row]]],
    designs: Sequence[Design],
    ref_dir: Path | None,
    out: Path,
    timing: dict[str, float],
    npoints: int,
    attribution: dict[str, tuple[Point, list[tuple[str, float]]]] | None = None,
    plotted: bool = True,
    energy: str = "sourced",
) -> str:
    lines: list[str] = []
    for model, rows in tables.items():
        lines.append(f"== {model} cost model: {npoints} points in {timing[model]:.1f} s; "
                     f"energy model {energy_label(energy)}")  # fmt: skip
        lines.append(render_summary(summarize(rows)).rstrip())
        lines.append("")
        lines.append(render_energy(rows, designs))
        if ref_dir is not None and (ref_dir / "attn-binding.csv").is_file():
            lines.append("")
            lines.append(render_deviations(rows, designs, ref_dir, bounded=model == "artifact"
                                           and energy == "sourced"))  # fmt: skip
            lines.append("")
            lines.append(render_energy_deviation(rows, designs, ref_dir, energy))
        lines.append("")
    if len(tables) == 2:
        lines.append(render_models(tables["artifact"], tables["faithful"], designs))
        if attribution:
            lines.append("")
            lines.append(render_attribution(attribution))
        lines.append("")
    lines.append(
        f"wrote {out}/attn-*.csv" + (", figures" if plotted else "") + f" and {out}/summary.txt"
    )
    return "\n".join(lines) + "\n"


# components of the energy breakdown: (column, prefixes of the report's energy keys)
ENERGY_COMPONENTS = (
    ("2D compute", ("2d.mac", "2d.add", "2d.max", "2d.exp", "2d.div")),
    ("1D compute", ("1d.mac", "1d.add", "1d.max", "1d.exp", "1d.div")),
    ("2D RF", ("2d.rf",)),
    ("1D RF", ("1d.rf",)),
    ("buffer", ("buffer",)),
    ("DRAM", ("dram",)),
)


def render_energy(rows: dict[str, list[Row]], designs: Sequence[Design]) -> str:
    """Each design's energy by component (shares of the total over the grid's points) and
    relative to FuseMax's."""
    head = "".join(f"{name:>11}" for name, _ in ENERGY_COMPONENTS)
    out = ["energy by component (share of the design's total over the points):",
           f"  {'design':<8}{head}   total pJ"]  # fmt: skip
    for d in designs:
        if not rows.get(d.key):
            continue
        parts = dict.fromkeys((n for n, _ in ENERGY_COMPONENTS), 0.0)
        total = 0.0
        for r in rows[d.key]:
            total += r.energy
            for key, value in r.extra:
                if not key.startswith("energy."):
                    continue
                for name, keys in ENERGY_COMPONENTS:
                    if key.removeprefix("energy.") in keys:
                        parts[name] += value
        cells = "".join(f"{100 * v / total:>10.1f}%" if total else f"{'-':>11}"
                        for v in parts.values())  # fmt: skip
        out.append(f"  {d.key:<8}{cells}   {total:.4g}")
    return "\n".join(out)


def energy_overrides(energy: str | None) -> list[str]:
    """``--energy calibrated`` as an architecture override (``energy.model``)."""
    return [f"energy.model={energy}"] if energy else []


def render_energy_deviation(
    rows: dict[str, list[Row]], designs: Sequence[Design], ref_dir: Path, energy: str
) -> str:
    """Each design's signed energy deviation from the artifact (min, mean, max over the
    rows), our energy by component at the worst row, and the global-buffer energy per
    4096-bit row access that the artifact's total implies at each row given our counts and
    every other component (the component that differs, docs/fusemax.md "Energy")."""
    names = [n for n, _ in ENERGY_COMPONENTS]
    out = [f"energy deviation from the artifact, energy model {energy_label(energy)}:",
           f"  {'design':<8} {'min':>7} {'mean':>7} {'max':>7}  worst row  "
           + " ".join(f"{n:>10}" for n in names) + "  implied buffer pJ/row"]  # fmt: skip
    for d in designs:
        path = ref_dir / f"attn-{d.key}.csv"
        if not path.is_file() or not rows.get(d.key):
            continue
        ref = {(r.model, r.seq): r.energy for r in read_csv(path)}
        devs = [(r.energy / ref[(r.model, r.seq)] - 1, r) for r in rows[d.key]
                if (r.model, r.seq) in ref]  # fmt: skip
        if not devs:
            continue
        wrow = max(devs, key=lambda x: abs(x[0]))[1]
        shares = dict.fromkeys(names, 0.0)
        for key, value in wrow.extra:
            for name, keys in ENERGY_COMPONENTS:
                if key.removeprefix("energy.") in keys:
                    shares[name] += value / wrow.energy
        implied = []
        for _, r in devs:
            x = dict(r.extra)
            if x.get("count.buffer_accesses"):
                rest = r.energy - x.get("energy.buffer", 0.0)
                implied.append((ref[(r.model, r.seq)] - rest) / x["count.buffer_accesses"])
        errs = [e for e, _ in devs]
        span = f"{min(implied):,.0f}-{max(implied):,.0f}" if implied else "-"
        out.append(
            f"  {d.key:<8} {min(errs):>+7.1%} {sum(errs) / len(errs):>+7.1%} {max(errs):>+7.1%}"
            f"  {wrow.model:<5}{seq_label(wrow.seq):>4}  "
            + " ".join(f"{100 * shares[n]:>9.1f}%" for n in names)
            + f"  {span}"
        )
    return "\n".join(out)


def render_deviations(
    rows: dict[str, list[Row]], designs: Sequence[Design], ref_dir: Path, bounded: bool = True
) -> str:
    """The worst error of every metric per design against the artifact's CSVs; the bounds
    hold for the artifact's cost model (``bounded``), for another model the table is only
    informative."""
    head = f"  {'design':<8} {'rows':>4}  {'latency':>8} {'traffic':>8} {'energy':>8} "
    head += f"{'util_2d':>8} {'util_1d':>8}  " + ("bounds" if bounded else "")
    title = "deviation from the artifact (worst row; relative, utilizations absolute)"
    if not bounded:
        title += "; informative, the bounds hold for --model artifact, sourced energies"
    out = [title + ":", head]
    bad: list[str] = []
    for d in designs:
        path = ref_dir / f"attn-{d.key}.csv"
        if not path.is_file() or not rows.get(d.key):
            continue
        devs = compare(d, rows[d.key], read_csv(path))
        if not devs:
            continue
        worst = {
            m: max((x for x in devs if x.metric == m), key=lambda x: x.error)
            for m in ("latency", "traffic", "energy", "util_2d", "util_1d")
        }
        n = len({(x.model, x.seq) for x in devs})
        cells = " ".join(f"{worst[m].error:>8.4f}" for m in worst)
        b = worst["latency"].bound, worst["traffic"].bound, worst["energy"].bound
        bounds = f"  {b[0]:.2f}/{b[1]:.2f}/{b[2]:.2f}/0.02" if bounded else ""
        out.append(f"  {d.key:<8} {n:>4}  {cells}{bounds}")
        bad += [str(x) for x in devs if not x.ok]
    if not bounded:
        out.append(f"  {len(bad)} of the values are outside the artifact model's bounds")
    elif bad:
        out.append(f"  {len(bad)} values outside the bounds:")
        out += ["    " + b for b in bad[:20]]
    else:
        out.append("  every value within the bounds")
    return "\n".join(out)


def render_models(
    art: dict[str, list[Row]], faith: dict[str, list[Row]], designs: Sequence[Design]
) -> str:
    """The faithful model against the artifact's, design by design (mean over points)."""
    out = [
        "faithful vs artifact cost model (mean ratio over the points; see einsumcc_sim.model):",
        f"  {'design':<8} {'latency':>8} {'traffic':>8} {'energy':>8} "
        f"{'util_2d':>8} {'util_1d':>8}",
    ]
    for d in designs:
        a = {(r.model, r.seq): r for r in art.get(d.key, [])}
        pairs = [(a[(r.model, r.seq)], r) for r in faith.get(d.key, []) if (r.model, r.seq) in a]
        if not pairs:
            continue

        def mean(f: Callable[[Row], float], pairs: list[tuple[Row, Row]] = pairs) -> float:
            vals = [f(y) / f(x) for x, y in pairs if f(x)]
            return sum(vals) / len(vals) if vals else 0.0

        def dmean(f: Callable[[Row], float], pairs: list[tuple[Row, Row]] = pairs) -> float:
            return sum(f(y) - f(x) for x, y in pairs) / len(pairs)

        out.append(
            f"  {d.key:<8} {mean(lambda r: r.latency):>7.3f}x {mean(lambda r: r.traffic):>7.3f}x "
            f"{mean(lambda r: r.energy):>7.3f}x {dmean(lambda r: r.util_2d):>+8.3f} "
            f"{dmean(lambda r: r.util_1d):>+8.3f}"
        )
    out.append(
        "  the faithful model charges systolic fill and skew, one row per cycle for spatial "
        "reductions, output drains through the bottom ports, the 2D-1D link, buffer port "
        "bandwidth and the paper's 400 GB/s; the artifact's model none of these but a "
        "single-step reduction's drain (R cycles) and 400*2^30 B/s, and the +Cascade mapping's "
        "artifact settings (FuseMax's 16 MiB buffer for its P1, subtract-then-exp on FLAT's 1D "
        "PE).  The table below splits the difference by effect."
    )
    return "\n".join(out)


def _ablate(args: tuple[Point, str, ModelOptions, tuple[str, ...]]) -> tuple[str, str, float]:
    point, label, options, overrides = args
    rep, _ = simulate_point(point, options, overrides)
    return point.design, label, rep.seconds


def attribute(
    designs: Sequence[Design],
    models: Sequence[Model],
    seqs: Sequence[int],
    overrides: Sequence[str],
    jobs: int,
    quiet: bool = True,
) -> dict[str, tuple[Point, list[tuple[str, float]]]]:
    """Where the faithful model's latency comes from: at one point per design (the first
    model at the grid's length nearest 64K), the artifact's model with one faithful effect
    switched on at a time; each as a latency ratio to the artifact's, last the faithful
    model itself (effects interact, so the ratios need not multiply to it)."""
    seq = min(seqs, key=lambda s: abs(s.bit_length() - 17))
    variants = [("artifact", model_options("artifact")), *ablations(),
                ("faithful (all)", model_options("faithful"))]  # fmt: skip
    work = [(Point(d.key, models[0], seq), label, opts, tuple(overrides))
            for d in designs for label, opts in variants]  # fmt: skip
    with progress_bar(len(work), "attribution", quiet) as bar:
        done = parallel(_ablate, work, jobs, lambda w: f"{_label(w[0])} ({w[1]})",
                        lambda _: bar.update(1))  # fmt: skip
    base = {d: t for d, label, t in done if label == "artifact"}
    out: dict[str, tuple[Point, list[tuple[str, float]]]] = {}
    for d in designs:
        ratios = [(label, t / base[d.key]) for k, label, t in done
                  if k == d.key and label != "artifact"]  # fmt: skip
        out[d.key] = (Point(d.key, models[0], seq), ratios)
    return out


def render_attribution(attr: dict[str, tuple[Point, list[tuple[str, float]]]]) -> str:
    """The table of :func:`attribute`: effects as rows, designs as columns."""
    keys = list(attr)
    point = next(iter(attr.values()))[0]
    out = [
        f"where the faithful model's latency comes from ({point.model.name} "
        f"{seq_label(point.seq)}; the artifact's model with one effect switched on, "
        "latency relative to the artifact's):",
        f"  {'effect':<46}" + "".join(f"{k:>9}" for k in keys),
    ]
    labels = [label for label, _ in attr[keys[0]][1]]
    for i, label in enumerate(labels):
        cells = "".join(f"{attr[k][1][i][1]:>8.3f}x" for k in keys)
        out.append(f"  {label:<46}{cells}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    if args.paper == "fusemax":
        return reproduce(args)
    raise EinError.plain(f"reproduce: unknown paper '{args.paper}'", hint="papers: fusemax")
