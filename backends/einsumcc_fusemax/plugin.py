"""The FuseMax reproduction as an einsumcc plugin (entry point ``einsumcc.backends:
fusemax``): ``einsumcc reproduce fusemax`` and its section of ``einsumcc demo``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from einsumcc.backend import Subcommands


class FuseMaxBackend:
    name = "fusemax"
    summary = "FuseMax's evaluation (MICRO 2024) re-run on the simulator"
    tour_order = 30

    def add_commands(self, sub: Subcommands) -> None:
        from einsumcc_fusemax.command import add_parser

        add_parser(sub).set_defaults(handler=_reproduce_command)

    def tour(self) -> None:
        from einsumcc_fusemax.tour import tour

        tour()


def _reproduce_command(args: argparse.Namespace) -> int:
    from einsumcc_fusemax.command import run

    return run(args)


BACKEND = FuseMaxBackend()
