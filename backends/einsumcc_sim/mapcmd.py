"""``einsumcc map`` and ``einsumcc sweep``: the command-line fronts of the mapper and of
sweeps on Dask.

Importing this module is cheap (argparse only): the mapper, the engine and Dask load in the
handlers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from einsumcc_sim.names import MAPPING_PRESETS

if TYPE_CHECKING:
    from einsumcc.ir.cascade import Cascade
    from einsumcc_sim.mapper import MapResult


def _common(
    p: argparse.ArgumentParser, add_dims: Callable[[argparse.ArgumentParser], None]
) -> None:
    from einsumcc_sim.command import add_file_and_arch, add_overrides

    add_file_and_arch(p)
    add_overrides(p)
    add_dims(p)


def add_map_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_dims: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    p = sub.add_parser("map", help="search the mappings of a cascade for the best one")
    _common(p, add_dims)
    p.add_argument("--objective", choices=("cycles", "energy", "edp"), default="cycles")
    p.add_argument("-o", "--output", metavar="BEST.toml", help="write the best mapping here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--budget", type=int, metavar="N", help="simulate at most N mappings")
    p.add_argument(
        "--time", type=float, metavar="S", help="search for at most S seconds (default 60)"
    )
    p.add_argument("--plot", metavar="PARETO.png", help="draw the cycles/energy Pareto front")
    p.add_argument(
        "--model", choices=("faithful", "artifact"), default="faithful", help="cost model"
    )
    return p


def add_sweep_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_dims: Callable[[argparse.ArgumentParser], None],
) -> argparse.ArgumentParser:
    p = sub.add_parser("sweep", help="simulate a grid of rank extents on Dask")
    _common(p, add_dims)
    p.add_argument(
        "--sweep",
        dest="sweeps",
        action="append",
        default=[],
        metavar="R=v1,v2",
        help="a rank and its extents (repeatable: the grid is their product)",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--mapping",
        default="default",
        help=f"mapping preset ({', '.join(MAPPING_PRESETS)}) or TOML file (default: derived)",
    )
    how.add_argument("--map", action="store_true", help="run the mapper at every point")
    p.add_argument("--budget", type=int, metavar="N", help="--map: simulations per point")
    p.add_argument("--time", type=float, metavar="S", help="--map: seconds per point")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask scheduler")
    p.add_argument(
        "--workers", type=int, metavar="N", help="workers of the local cluster (default: cores)"
    )
    p.add_argument("-o", "--output", metavar="OUT.csv", required=True, help="the CSV to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run_map(args: argparse.Namespace, cascade: Cascade, dims: dict[str, int]) -> int:
    import json

    from einsumcc_sim.api import map_cascade

    if args.plot:
        from einsumcc_sim.command import _check_plot_path

        _check_plot_path(args.plot)
    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=args.budget, desc="map", unit="simulation", file=sys.stderr, leave=False)
    try:
        result = map_cascade(
            cascade,
            args.arch,
            dims,
            objective=args.objective,
            budget=args.budget,
            time=args.time,
            model=args.model,
            overrides=args.overrides,
            progress=None if bar is None else lambda _: bar.update(1),
        )
    finally:
        if bar is not None:
            bar.close()
    if args.output:
        write_mapping(result, args.output)
    if args.plot:
        plot_pareto(result, args.plot)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        sys.stdout.write(result.render())
        for what, path in (("the best mapping", args.output), ("the Pareto plot", args.plot)):
            if path:
                print(f"wrote {what} to {path}")
    return 0


def write_mapping(result: MapResult, path: str) -> None:
    """The best mapping as a mapping file (``simulate --mapping`` reads it back)."""
    from pathlib import Path

    from einsumcc.files import atomic_path, path_error

    text = result.best.mapping.render()
    try:
        with atomic_path(path, "-o") as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise path_error("-o", path, exc) from None


def plot_pareto(result: MapResult, path: str) -> None:
    """Every simulated mapping, the Pareto front and the best, written whole to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from einsumcc.files import atomic_path, path_error

    fig, ax = plt.subplots(figsize=(7, 4.5))
    if result.points:
        xs, ys = zip(*result.points, strict=True)
        ax.scatter(xs, ys, s=12, color="0.6", label=f"simulated mappings ({len(xs)})")
    fx, fy = zip(*result.pareto, strict=True)
    ax.plot(fx, fy, "o-", color="tab:red", label="Pareto front")
    b = result.best
    ax.scatter([b.cycles], [b.energy_pj], marker="*", s=200, color="tab:blue", zorder=3,
               label=f"best by {result.objective}")  # fmt: skip
    ax.set_xlabel("latency (cycles)")
    ax.set_ylabel("energy (pJ)")
    ax.set_title(f"{result.cascade} on {result.arch}: mappings by latency and energy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        with atomic_path(path, "--plot") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    except OSError as exc:
        raise path_error("--plot", path, exc) from None
    finally:
        plt.close(fig)


def run_sweep(args: argparse.Namespace, path: str, dims: dict[str, int]) -> int:
    from einsumcc_sim.sweep import Sweep, parse_sweeps, run

    spec = Sweep(
        file=path,
        arch=args.arch,
        overrides=tuple(args.overrides),
        base=tuple(sorted(dims.items())),
        axes=parse_sweeps(args.sweeps),
        mapping=None if args.map or args.mapping == "default" else args.mapping,
        search=bool(args.map),
        budget=args.budget,
        seconds=args.time,
    )
    failed = run(
        spec,
        args.output,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    return 1 if failed else 0
