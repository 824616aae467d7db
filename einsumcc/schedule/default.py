"""The default schedule of a cascade, derived from its structure and its pass analysis.

1. **Nodes.** Views are inlined and reductions become nodes of their own
   (:func:`einsumcc.schedule.nodes.prepare`).
2. **Kernels.** Nodes are grouped greedily, in dependency order, into groups that can share
   one launch grid.  In a group:

   * a *large* rank (extent unknown at compile time, above :data:`WHOLE_LIMIT`, or the outer
     part of a split) that is reduced, or an iterative rank, is the *streamed* rank: the
     kernel loops over it.  At most one per group;
   * a variable that no node of the group reduces, that every node doing real work iterates
     over, and that every read inside the group sees at the same point, is a *grid* variable:
     programs run in parallel over its tiles (large ranks) or indices (small ranks, e.g.
     batch and heads);
   * every other variable is small and held *whole* in registers.

   A node that would leave a large rank neither streamed nor on the grid starts a new group,
   and so does a read of another point of a tensor computed in the group (``T[m + 1]``): such
   tensors go through global memory between kernels.
3. **Loops.** In a group, each node gets a pass number over the streamed rank (the FuseMax
   procedure of :mod:`einsumcc.analysis.passes`, node by node): one loop per pass.  A loop
   recomputes the nodes of earlier passes it reads per tile, unless the schedule option
   ``materialize`` names them: then the kernel ends after the pass that computes them, they
   are written to global memory and the next kernel reads them back.
4. **Tiles.** Grid ranks take tiles of :data:`GRID_TILE`, streamed ranks :data:`STREAM_TILE`
   (smaller when a broadcast-multiply-reduce would exceed :data:`REGISTER_BUDGET` values),
   whole ranks the next power of two of their extent; the inner part of a split is its tile.
   ``tiles`` overrides them.

The stages are modules of their own, threaded by :func:`einsumcc.schedule.build.build_schedule`:
:mod:`~einsumcc.schedule.extents` (compile-time extents), :mod:`~einsumcc.schedule.nest`
(reductions over several large ranks), :mod:`~einsumcc.schedule.validate` (option errors),
:mod:`~einsumcc.schedule.fusion` (2), :mod:`~einsumcc.schedule.tiling` (4),
:mod:`~einsumcc.schedule.phases` (3), :mod:`~einsumcc.schedule.kernels` (loops and kernels),
:mod:`~einsumcc.schedule.placement` (where tensors live, what kernels read and write) and
:mod:`~einsumcc.schedule.tiles` (tile classes of every loop).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from einsumcc.ir.cascade import Cascade
from einsumcc.schedule.build import build_schedule
from einsumcc.schedule.extents import compile_extents
from einsumcc.schedule.schedule import Schedule

__all__ = ["compile_extents", "derive_schedule"]


def derive_schedule(
    cascade: Cascade,
    dims: Mapping[str, int] | None = None,
    *,
    tiles: Mapping[str, int] | None = None,
    materialize: Sequence[str] = (),
) -> Schedule:
    """The default schedule of ``cascade`` with compile-time ``dims`` and ``tiles`` overrides.

    Raises :class:`EinError` for illegal overrides and for cascades the Triton backend cannot
    compile, pointing at the rank or Einsum involved.
    """
    return build_schedule(cascade, dims, tiles=tiles, materialize=materialize)
