"""What every stage of the schedule builder reads: the cascade, its compile-time extents, the
schedule options and the program of nodes, with the questions the stages ask about ranks.

The default tile sizes and limits live here too, since several stages share them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from einsumcc.analysis.passes import PassAnalysis
from einsumcc.diagnostics import EinError, Span
from einsumcc.ir.cascade import Cascade
from einsumcc.schedule.extents import next_pow2
from einsumcc.schedule.nodes import Node, NodeProgram

WHOLE_LIMIT = 256  # the largest extent held whole in registers by default
GRID_TILE = 128  # the first tiled grid rank (the rows of a tile contraction, e.g. queries)
GRID_TILE_OTHER = 64  # further tiled grid ranks (the columns of a matmul)
STREAM_TILE = 64
MIN_TILE = 16
REGISTER_BUDGET = 1 << 13  # values in the largest register tile, at default tiles
WIDE_TILE = 1 << 13  # kernels whose largest tile has this many values run 8 warps, else 4
TRITON_MAX_NUMEL = 1 << 20  # Triton's limit on the elements of one block


def is_large(c: Cascade, known: Mapping[str, int | None], var: str) -> bool:
    """Too large to hold whole: unknown at compile time or above :data:`WHOLE_LIMIT`."""
    n = known[c.var_ranks[var]]
    return n is None or next_pow2(n) > WHOLE_LIMIT


@dataclass(frozen=True)
class ScheduleContext:
    """The inputs of the schedule builder, fixed before its first stage."""

    c: Cascade
    known: Mapping[str, int | None]  # compile-time extents (None: read at run time)
    tiles: Mapping[str, int]  # tile overrides per rank
    materialize: tuple[str, ...]
    prog: NodeProgram
    pass_report: PassAnalysis

    @property
    def outer_parts(self) -> frozenset[str]:
        """Ranks that are the outer part of a split (each counts tiles of the next part)."""
        return frozenset(ch for s in self.c.splits for ch in s.children[:-1])

    def rank(self, var: str) -> str:
        return self.c.var_ranks[var]

    def large(self, var: str) -> bool:
        return is_large(self.c, self.known, var)

    def iterative(self, var: str) -> bool:
        """A recurrence iterates over ``var``."""
        return any(n.recurrence == var for n in self.prog.nodes)

    def streamable(self, var: str, space: set[str]) -> bool:
        """Traversed by a loop when reduced: large, or the outer part of a split whose inner
        part is iterated too (it counts tiles of the inner part, which is the block)."""
        return self.large(var) or self.streamable_outer(var, space)

    def streamable_outer(self, var: str, space: set[str]) -> bool:
        rank = self.rank(var)
        for sp in self.c.splits:
            if rank in sp.children[:-1]:
                inner = sp.children[sp.children.index(rank) + 1 :]
                if any(self.c.rank(ch).var in space for ch in inner):
                    return True
        return False

    def scalar_loop(self, var: str, space: set[str]) -> bool:
        """The loop over ``var`` takes one index per iteration: an iterative rank, or the
        outer part of a split whose inner part is the block."""
        return (
            self.iterative(var)
            or (not self.large(var) and self.streamable(var, space))
            or (self.rank(var) in self.outer_parts and self.streamable_outer(var, space))
        )

    def split_inner(self, rank: str) -> str:
        s = next(s for s in self.c.splits if rank in s.children)
        return s.children[-1]

    def span(self, rank: str) -> Span | None:
        return self.c.rank(rank).span

    def error(self, node: Node, message: str, hint: str | None = None) -> EinError:
        return EinError.at(node.span, message, self.c.source, hint=hint)

    def rank_order(self) -> dict[str, int]:
        """Rank variable -> its rank's position in the declaration order."""
        return {r.var: i for i, r in enumerate(self.c.ranks)}
