"""einsumcc: attention algorithms as cascades of extended Einsums.

>>> import einsumcc
>>> c = einsumcc.load("rank K = 2\\ninput A[K]\\noutput Z[]\\nZ[] = sum{k} A[k]\\n")
>>> c.outputs[0].name
'Z'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc.pipeline import load
from einsumcc.reference import evaluate

if TYPE_CHECKING:
    from einsumcc_triton import Compiled

__version__ = "0.1.0"
__all__ = ["Cascade", "EinError", "__version__", "compile", "evaluate", "load"]


def compile(
    cascade: Cascade | str | Path,
    target: str = "triton",
    *,
    tiles: dict[str, int] | None = None,
    materialize: Sequence[str] = (),
    **dims: int,
) -> Compiled:
    """Compile a cascade (a path, `.ein` text or a Cascade) into a callable.

    ``einsumcc.compile("attention_1pass.ein", target="triton", E=64)`` returns a callable that
    takes the inputs as torch tensors in declaration order and returns the outputs.  Keyword
    extents are fixed at compile time; ranks left without one are read from the inputs'
    shapes at every call.  torch and triton are imported only here, never by ``import
    einsumcc``.
    """
    if target != "triton":
        raise EinError.plain(
            f"einsumcc.compile: unknown target '{target}'",
            hint="the compiled target is 'triton'; einsumcc.evaluate runs the numpy oracle",
        )
    from einsumcc_triton import compile as compile_triton

    return compile_triton(cascade, dims or None, tiles=tiles, materialize=materialize)
