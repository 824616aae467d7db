"""The simulator as an einsumcc plugin (entry point ``einsumcc.backends: sim``).

It adds ``einsumcc simulate`` and ``einsumcc.simulate``.  Importing this module imports
neither numpy nor the engine.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from einsumcc.backend import Subcommands
    from einsumcc.ir.cascade import Cascade
    from einsumcc_sim.mapper import MapResult
    from einsumcc_sim.report import SimReport


class SimBackend:
    name = "sim"
    summary = "cycle-level model of a FuseMax-style spatial accelerator"

    def add_commands(self, sub: Subcommands) -> None:
        from einsumcc.options import add_dims
        from einsumcc_sim.command import add_parser

        add_parser(sub, add_dims).set_defaults(handler=_simulate_command)
        from einsumcc_sim.mapcmd import add_map_parser, add_sweep_parser

        add_map_parser(sub, add_dims).set_defaults(handler=_map_command)
        add_sweep_parser(sub, add_dims).set_defaults(handler=_sweep_command)

    def simulate(
        self,
        cascade: Cascade,
        arch: str,
        mapping: str | None,
        dims: Mapping[str, int],
        **options: Any,
    ) -> SimReport:
        from einsumcc_sim import simulate_cascade

        return simulate_cascade(cascade, arch, mapping, dict(dims), **options)

    def map(
        self, cascade: Cascade, arch: str, dims: Mapping[str, int], **options: Any
    ) -> MapResult:
        from einsumcc_sim.api import map_cascade

        return map_cascade(cascade, arch, dict(dims), **options)


def _simulate_command(args: argparse.Namespace) -> int:
    from einsumcc.options import parse_dims
    from einsumcc.pipeline import load_and_warn
    from einsumcc_sim.command import run

    return run(args, load_and_warn(args.file), parse_dims(args.dims))


def _map_command(args: argparse.Namespace) -> int:
    from einsumcc.options import parse_dims
    from einsumcc.pipeline import load_and_warn
    from einsumcc_sim.mapcmd import run_map

    return run_map(args, load_and_warn(args.file), parse_dims(args.dims))


def _sweep_command(args: argparse.Namespace) -> int:
    from einsumcc.options import parse_dims
    from einsumcc.pipeline import load_and_warn
    from einsumcc_sim.mapcmd import run_sweep

    load_and_warn(args.file)  # a mistake in the file is reported before any worker starts
    return run_sweep(args, args.file, parse_dims(args.dims))


BACKEND = SimBackend()
