"""Refine a cascade's declared chunks when a smaller chunk compiles better and provably gives
the same result.

FuseMax's one-pass cascade declares ``M0 = 256`` keys per chunk (one per row of its 2D array).
On a GPU a chunk is a register tile: 256 keys leave room for 32 queries only, too few rows for
Hopper's ``wgmma`` (64 per warp group).  When the pass analysis' cousin
:func:`einsumcc.analysis.refinement.refinement` proves that the recurrence over the chunks
gives the same result for any chunk size, the inner part is compiled at :data:`STREAM_TILE`
keys (64) instead, the FlashAttention tile.  The schedule's notes say so, and why not when it
is not done.  Extents or tiles the user gives for the split's parts are kept as given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from einsumcc.analysis.refinement import refinement
from einsumcc.ir.affine import Affine
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import Rank
from einsumcc.schedule.context import STREAM_TILE


def refine_chunks(
    c: Cascade, dims: Mapping[str, int] | None = None, tiles: Mapping[str, int] | None = None
) -> tuple[Cascade, tuple[str, ...]]:
    """``c`` with each provably refinable chunk cut to :data:`STREAM_TILE`, and notes."""
    pinned = set(dims or {}) | set(tiles or {}) | {name for name, _ in c.dims}
    notes: list[str] = []
    for split in c.splits:
        if len(split.children) != 2 or pinned & set(split.children):
            continue
        inner = split.children[-1]
        declared = c.rank(inner).affine_extent
        size = None if declared is None else declared.number
        if size is None or size <= STREAM_TILE or size % STREAM_TILE:
            continue
        verdict = refinement(c, split)
        if not verdict.proved:
            notes.append(
                f"{inner} = {size} is kept as declared ({verdict.reason}); a 64-row tile "
                f"product needs {inner} <= {STREAM_TILE} for registers"
            )
            continue
        ranks = tuple(
            Rank(r.name, Affine.const(STREAM_TILE), r.span) if r.name == inner else r
            for r in c.ranks
        )
        c = dataclasses.replace(c, ranks=ranks)
        notes.append(
            f"{inner} refined from {size} to {STREAM_TILE} keys per chunk: {verdict.reason}; "
            f"--dims {inner}={size} keeps the declared chunks"
        )
    return c, tuple(notes)
