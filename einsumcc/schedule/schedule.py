"""The schedule: *how* a cascade runs, as a frozen, printable value.

A schedule partitions a cascade's nodes (see :mod:`einsumcc.schedule.nodes`) into kernels.
In a kernel every rank variable has one role:

``grid``
    parallel over programs: one program per tile of ``block`` indices (``block == 1``: one
    program per index, a batch or head rank);
``whole``
    held whole in registers: ``block`` is the next power of two of the extent, masked above it;
``stream``
    traversed by the kernel's loop ``block`` indices at a time, in ascending order;
``iterate``
    traversed by the kernel's loop one index at a time, in ascending order (iterative ranks,
    whose recurrences are sequential, and the outer part of a split, whose inner part is the
    tile).

A kernel runs its loops one after the other, one loop per pass over the streamed rank: a
pass's nodes are evaluated per iteration, nodes of earlier passes that it needs again are
recomputed (or, with ``materialize``, read back from global memory), reductions over the loop
variable accumulate in loop-carried state, and recurrences carry their current iterate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from einsumcc.analysis.passes import PassAnalysis
from einsumcc.ir.nodes import Condition
from einsumcc.schedule.nodes import NodeProgram


class AxisRole(enum.Enum):
    GRID = "grid"
    WHOLE = "whole"
    STREAM = "stream"
    ITERATE = "iterate"


@dataclass(frozen=True)
class Axis:
    """The role of one rank variable in one kernel."""

    var: str
    rank: str
    role: AxisRole
    block: int  # indices held per program (grid, whole) or per iteration (stream, iterate)
    extent: int | None  # the extent when known at compile time

    @property
    def lanes(self) -> bool:
        """Held as a block axis in registers (False: one index, a scalar)."""
        return self.block > 1 or (self.role is AxisRole.WHOLE and self.extent != 1)

    def describe(self) -> str:
        ext = f"{self.rank} = {self.extent}" if self.extent is not None else self.rank
        if self.role is AxisRole.GRID:
            if self.block == 1:
                return f"{self.var}: grid, one program per index ({ext})"
            return f"{self.var}: grid, tiles of {self.block} ({ext})"
        if self.role is AxisRole.WHOLE:
            pad = (
                f", masked to {self.extent}"
                if self.extent is not None and self.block != self.extent
                else ""
            )
            return f"{self.var}: whole in registers, block {self.block}{pad} ({ext})"
        if self.role is AxisRole.STREAM:
            return f"{self.var}: streamed in tiles of {self.block}, ascending ({ext})"
        return f"{self.var}: iterated one index at a time, ascending ({ext})"


@dataclass(frozen=True)
class ConditionSite:
    """A filter condition of a node, as a loop sees it."""

    node: str
    condition: Condition


@dataclass(frozen=True)
class TileClasses:
    """How a loop's tiles are classified at compile time.

    ``classified`` conditions are decided per tile: full tiles carry no mask code for them,
    partial tiles are masked.  ``masked`` conditions cannot be decided per tile (the loop
    variable does not occur, ``!=``, a coefficient of unknown sign): they are masked in every
    tile.  Empty tiles of ``filtered`` (every point removed by its filter) are skipped only when
    the schedule proved that they leave every loop-carried value unchanged; ``proof`` says why
    or why not.
    """

    classified: tuple[ConditionSite, ...] = ()
    masked: tuple[ConditionSite, ...] = ()
    boundary: bool = False  # the last stream tile may be partial (extent not a multiple)
    filtered: str | None = None
    skip_leading: bool = False
    skip_trailing: bool = False
    proof: str = ""
    # (v2) empty tiles of ``filtered`` are skipped at run time (its data filter's tile test,
    # or the affine classes) once the kernel checked that every row keeps a point
    data_skip: bool = False

    @property
    def trivial(self) -> bool:
        return not (self.classified or self.masked or self.boundary)


@dataclass(frozen=True)
class Loop:
    """One pass over the kernel's streamed rank."""

    number: int  # the pass number
    var: str  # the loop variable
    nodes: tuple[str, ...]  # evaluated per iteration, in order
    recomputed: tuple[str, ...]  # of ``nodes``: evaluated again for this pass
    accumulators: tuple[str, ...]  # reductions over ``var``: loop-carried, final after the loop
    carried: tuple[str, ...]  # recurrences over ``var``: the current iterate is loop-carried
    stores: tuple[str, ...]  # tensors written to global memory per iteration
    after: tuple[str, ...]  # evaluated once after the loop
    tiles: TileClasses = TileClasses()
    # of ``carried``: written to global memory once, after the loop, as the final iterate
    # only (later kernels read nothing else): a split-KV chunk's max, denominator, numerator
    finals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kernel:
    """One kernel launch."""

    name: str
    axes: tuple[Axis, ...]
    grid: tuple[str, ...]  # grid variables, fastest-varying first
    before: tuple[str, ...]  # nodes evaluated before the first loop
    loops: tuple[Loop, ...]
    reads: tuple[str, ...]  # global tensors read (inputs and scratch)
    writes: tuple[str, ...]  # global tensors written (outputs and scratch)
    stream: str | None  # the streamed rank (None: no loop)
    num_warps: int = 4

    def axis(self, var: str) -> Axis:
        return next(a for a in self.axes if a.var == var)

    def has_axis(self, var: str) -> bool:
        return any(a.var == var for a in self.axes)

    @property
    def nodes(self) -> tuple[str, ...]:
        out = list(self.before)
        for loop in self.loops:
            out.extend(n for n in loop.nodes if n not in loop.recomputed)
            out.extend(loop.after)
        return tuple(out)


@dataclass(frozen=True)
class Placement:
    """Where the values of one tensor live."""

    tensor: str
    where: str  # input | output | registers | loop-carried | global | view
    detail: str


@dataclass(frozen=True)
class Schedule:
    cascade: str
    kernels: tuple[Kernel, ...]
    placements: tuple[Placement, ...]
    extents: tuple[tuple[str, int | None], ...]  # compile-time extents (None: read at run time)
    tiles: tuple[tuple[str, int], ...]  # the tile of every tiled rank
    materialize: tuple[str, ...] = ()
    views: tuple[tuple[str, str], ...] = ()  # view -> the access it stands for
    passes: tuple[tuple[str, int], ...] = ()  # pass analysis of each streamed rank
    notes: tuple[str, ...] = ()
    program: NodeProgram | None = field(default=None, compare=False, repr=False)
    pass_report: PassAnalysis | None = field(default=None, compare=False, repr=False)

    def kernel(self, name: str) -> Kernel:
        return next(k for k in self.kernels if k.name == name)

    def placement(self, tensor: str) -> Placement:
        return next(p for p in self.placements if p.tensor == tensor)

    @property
    def extent_of(self) -> dict[str, int | None]:
        return dict(self.extents)

    @property
    def globals(self) -> tuple[str, ...]:
        """Intermediates kept in global memory between kernels (scratch buffers)."""
        return tuple(p.tensor for p in self.placements if p.where == "global")
