"""``einsumcc reproduce fusemax``: the paper's attention evaluation on the simulator.

Every (model, sequence length, design) point is simulated (in parallel jobs) from the
reproduction's cascades, the design's mapping and its architecture, under the artifact's
cost model (``--model artifact``, the default), the cycle-level one (``faithful``), or both.
The command writes the artifact's CSVs (``attn-<design>.csv``), Figures 6a/6b/7/8/9 as PNG and
a summary; with the artifact's own results at hand (``--reference DIR``, or the shared
reference data next to the checkout) it also compares every row with them.
"""

from __future__ import annotations

import argparse
from typing import Any

MODELS = ("artifact", "faithful", "both")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = sub.add_parser("reproduce", help="reproduce a paper's evaluation on the simulator")
    papers = p.add_subparsers(dest="paper", metavar="PAPER")
    papers.required = True
    q = papers.add_parser(
        "fusemax",
        help="FuseMax (MICRO 2024): attention of BERT, TrXL, T5, XLM at 1K-1M tokens, "
        "unfused, FLAT, +Cascade, +Architecture, +Binding",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--models", help="BERT,TrXL,T5,XLM (default: all) or a .toml file of models")
    q.add_argument("--seq", help="sequence lengths, e.g. 1K,4K,1M (default: 1K to 1M)")
    q.add_argument(
        "--designs",
        help="unfused,flat,fusemax-cascade,fusemax-arch,fusemax (default: all; the artifact's "
        "names cascade, arch, binding work too)",
    )
    q.add_argument("--out", default="fusemax-results", help="output directory")
    q.add_argument("--jobs", type=int, default=0, help="parallel jobs (default: CPU count)")
    q.add_argument(
        "--model",
        choices=MODELS,
        default="artifact",
        help="cost model: the artifact's (default), the cycle-level one, or both side by side",
    )
    q.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an architecture field of every design, e.g. --set array2d.rows=128",
    )
    q.add_argument(
        "--energy",
        choices=("sourced", "calibrated"),
        default=None,
        help="per-access energies: sourced (the artifact's table and CACTI, default) or "
        "calibrated (buffer and register-file energies fitted to the artifact; labelled)",
    )
    q.add_argument("--reference", metavar="DIR", help="the artifact's results to compare with")
    q.add_argument("--no-plots", action="store_true", help="skip the figures")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    return q


def run(args: argparse.Namespace) -> int:
    from einsumcc_fusemax.grid import run as run_grid_command

    return run_grid_command(args)


_GRID = ("progress_bar", "parallel", "run_grid", "grouped", "reproduce", "render_report",
         "render_energy", "render_deviations", "render_models", "attribute",
         "render_attribution")  # fmt: skip


def __getattr__(name: str) -> Any:
    """The grid's functions and the designs, loaded on first use (importing this module
    stays cheap: the ``einsumcc`` command imports it to build its parser)."""
    if name == "DESIGNS":
        from einsumcc_fusemax.results import DESIGNS

        return DESIGNS
    if name in _GRID:
        import einsumcc_fusemax.grid as grid

        return getattr(grid, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MODELS", "add_parser", "run"]
