"""einsumcc's Triton backend: cascades compiled to fused Triton kernels.

The pipeline, one stage per module::

    Cascade --derive_schedule--> Schedule --lower--> kernel AST --render--> Python source
            --launch--> a module written to the cache and imported (interpreter on CPU)

>>> import einsumcc_triton                                     # doctest: +SKIP
>>> k = einsumcc_triton.compile("examples/attention_1pass.ein")  # doctest: +SKIP
>>> out = k(Q, K, V)                                            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# the command line imports this package (through einsumcc_triton.command) for every command:
# numpy, sympy, networkx, torch and triton are imported on first use, not here
if TYPE_CHECKING:
    from einsumcc.ir.cascade import Cascade
    from einsumcc.schedule import Schedule
    from einsumcc_triton.launch import Compiled
    from einsumcc_triton.module import generate

__all__ = ["Compiled", "compile", "compile_schedule", "generate"]


def __getattr__(name: str) -> Any:
    if name == "Compiled":
        from einsumcc_triton.launch import Compiled

        return Compiled
    if name == "generate":
        from einsumcc_triton.module import generate

        return generate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def compile_schedule(
    cascade: Cascade | str | Path,
    dims: Mapping[str, int] | None = None,
    *,
    tiles: Mapping[str, int] | None = None,
    materialize: Sequence[str] = (),
    split_kv: int | None = None,
) -> tuple[Cascade, Schedule]:
    """The cascade as compiled (chunks refined, split-KV runs) and its schedule.

    ``split_kv`` runs the recurrence over chunks as that many independent runs merged after
    (1: one run; None: chosen from the grid at ``dims``, see :mod:`einsumcc_triton.split`).
    """
    from einsumcc.diagnostics import EinError
    from einsumcc.ir.cascade import Cascade
    from einsumcc.pipeline import load
    from einsumcc.schedule import derive_schedule
    from einsumcc.schedule.refine import refine_chunks
    from einsumcc_triton.split import split_kv as split_runs

    c = cascade if isinstance(cascade, Cascade) else load(cascade)
    c, notes = refine_chunks(c, dims, tiles)
    split, split_notes, derived = split_runs(c, dims, tiles, materialize, split_kv)
    try:
        s = derived or derive_schedule(split, dims, tiles=tiles, materialize=materialize)
    except EinError as e:
        if split is c or split_kv is not None:
            raise
        # a split the scheduler cannot take is not worth an error: compile the cascade as is
        split_notes = (
            f"runs not split: the split schedule is refused ({e.diagnostics[0].message})",
        )
        split = c
        s = derive_schedule(c, dims, tiles=tiles, materialize=materialize)
    return split, dataclasses.replace(s, notes=notes + split_notes + s.notes)


def compile(
    cascade: Cascade | str | Path,
    dims: Mapping[str, int] | None = None,
    *,
    tiles: Mapping[str, int] | None = None,
    materialize: Sequence[str] = (),
    directory: Path | None = None,
    count_tiles: bool = False,
    split_kv: int | None = None,
) -> Compiled:
    """Compile a cascade (a path, `.ein` text or a Cascade) to Triton kernels.

    ``dims`` fixes extents at compile time; ranks left without an extent are read from the
    inputs' shapes at every call.  ``tiles`` overrides tile sizes (``{"P": 128}``) and
    ``materialize`` names intermediates written to global memory between passes instead of
    being recomputed.  ``split_kv`` runs a recurrence over chunks as that many runs merged
    after (flash-decoding; 1: one run; None: chosen from the grid when ``dims`` bind it).
    Raises :class:`einsumcc.EinError` for illegal options and for
    cascades the backend cannot compile.  ``count_tiles`` (tests) instruments the kernels:
    after a call, ``compiled.fn.tile_counts[i]`` is the number of iterations that loop ``i``
    (in schedule order) ran, summed over the programs.
    """
    from einsumcc_triton.launch import Compiled, write_module
    from einsumcc_triton.module import generate

    c, s = compile_schedule(cascade, dims, tiles=tiles, materialize=materialize, split_kv=split_kv)
    source, lowered = generate(c, s, dims, count_tiles)
    path = write_module(source, lowered.launcher, directory)
    return Compiled(c, s, source, path, lowered.launcher, lowered.kernels)
