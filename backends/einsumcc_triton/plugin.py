"""The Triton backend as an einsumcc plugin (entry point ``einsumcc.backends: triton``).

It adds ``einsumcc compile``, the ``triton`` target of ``einsumcc run`` and
``einsumcc.compile``.  Importing this module imports neither torch nor triton.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from einsumcc.diagnostics import EinError

if TYPE_CHECKING:
    import numpy as np

    from einsumcc.backend import Subcommands
    from einsumcc.ir.cascade import Cascade

INSTALL = "pip install torch==2.13.0 && pip install 'einsumcc[triton]'"


def require_torch_and_triton(what: str) -> None:
    """A clear error, naming the extra to install, when torch or triton is missing."""
    missing = [m for m in ("torch", "triton") if importlib.util.find_spec(m) is None]
    if missing:
        raise EinError.plain(
            f"{what} needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            "not installed",
            hint=f"install the triton extra: {INSTALL}",
        )


class TritonBackend:
    name = "triton"
    summary = "fused Triton kernels callable from torch (the interpreter when there is no GPU)"
    run_options = ("tile", "materialize", "split_kv")
    tour_order = 20

    def add_commands(self, sub: Subcommands) -> None:
        from einsumcc.options import add_dims
        from einsumcc_triton.command import add_parser

        add_parser(sub, add_dims).set_defaults(handler=_compile_command)

    def add_run_options(self, p: argparse.ArgumentParser) -> None:
        from einsumcc_triton.command import add_schedule_options

        add_schedule_options(p)

    def run(
        self,
        cascade: Cascade,
        inputs: Mapping[str, np.ndarray],
        dims: Mapping[str, int],
        args: argparse.Namespace,
    ) -> dict[str, np.ndarray]:
        from einsumcc_triton.command import parse_names, parse_tiles, run_triton

        require_torch_and_triton("--target triton")
        tiles = parse_tiles(getattr(args, "tile", None))
        materialize = parse_names(getattr(args, "materialize", None))
        split = getattr(args, "split_kv", None)
        return run_triton(cascade, inputs, dims, tiles, materialize, split)

    def compile(self, cascade: Cascade, dims: Mapping[str, int], **options: Any) -> Any:
        require_torch_and_triton("einsumcc.compile(target='triton')")
        from einsumcc_triton import compile as compile_triton

        return compile_triton(cascade, dims or None, **options)

    def tour(self) -> None:
        from einsumcc_triton.tour import tour

        tour()


def _compile_command(args: argparse.Namespace) -> int:
    from einsumcc.options import parse_dims
    from einsumcc.pipeline import load_and_warn
    from einsumcc_triton.command import cmd_compile

    return cmd_compile(args, load_and_warn, parse_dims)


BACKEND = TritonBackend()
