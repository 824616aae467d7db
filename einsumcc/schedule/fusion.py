"""Kernel fusion: nodes grouped greedily, in dependency order, into groups that share one
launch grid, each with its grid variables and its streamed (loop) variable.

In a group:

* a *large* rank (extent unknown at compile time, above :data:`WHOLE_LIMIT`, or the outer part
  of a split) that is reduced, or an iterative rank, is the *streamed* rank: the kernel loops
  over it.  At most one per group;
* a variable that no node of the group reduces, that every node doing real work iterates over,
  and that every read inside the group sees at the same point, is a *grid* variable;
* every other variable is small and held *whole* in registers.

A node that would leave a large rank neither streamed nor on the grid starts a new group, and
so does a read of another point of a tensor computed in the group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from einsumcc.ir.nodes import free_variables
from einsumcc.schedule.context import WHOLE_LIMIT, ScheduleContext
from einsumcc.schedule.contraction import product
from einsumcc.schedule.nodes import Node, NodeKind, ReadKind
from einsumcc.schedule.schedule import AxisRole


@dataclass(frozen=True)
class FusedGroup:
    """The nodes of one kernel (before the kernel is cut at materialized tensors).

    Fusion sets ``nodes``, ``grid``, ``loop`` and ``tiled``; :mod:`~einsumcc.schedule.tiling`
    adds the ``roles`` and :mod:`~einsumcc.schedule.phases` the pass of every node.
    """

    nodes: tuple[Node, ...]
    grid: tuple[str, ...] = ()  # grid variables, fastest-varying first
    loop: str | None = None  # the streamed variable
    tiled: frozenset[str] = frozenset()  # grid variables tiled (not one per index)
    roles: Mapping[str, tuple[AxisRole, int]] = field(default_factory=dict)
    phase: Mapping[str, int] = field(default_factory=dict)  # loop nodes: pass number
    after: Mapping[str, int] = field(default_factory=dict)  # program nodes: after loop j
    passes: int = 0

    @property
    def keys(self) -> set[str]:
        return {n.key for n in self.nodes}


class Misfit(NamedTuple):
    """Why some nodes cannot be one kernel: the node at fault, the reason, a hint."""

    node: Node
    reason: str
    hint: str | None


def unit_of(n: Node) -> tuple[int, str | None]:
    return (n.stage, n.recurrence)


def units(nodes: Sequence[Node]) -> list[list[Node]]:
    """Consecutive nodes of one recurrence stage form one unit that is never split."""
    out: list[list[Node]] = []
    for n in nodes:
        if (
            out
            and n.recurrence is not None
            and out[-1][-1].recurrence == n.recurrence
            and out[-1][-1].stage == n.stage
        ):
            out[-1].append(n)
        else:
            out.append([n])
    return out


def partition(ctx: ScheduleContext) -> tuple[list[FusedGroup], list[str]]:
    """Greedy fusion: keep adding a ready unit (its producers placed) that the current
    kernel can take, in cascade order; when none fits, start a new kernel.  Also returns a
    note for every kernel that fusion had to start."""
    all_units = units(ctx.prog.nodes)
    deps = _unit_dependencies(ctx, all_units)
    groups: list[FusedGroup] = []
    notes: list[str] = []
    current: list[Node] = []
    info: FusedGroup | None = None
    placed: set[int] = set()
    remaining = list(range(len(all_units)))
    while remaining:
        ready = [i for i in remaining if deps[i] <= placed]
        first_failure: tuple[int, Misfit] | None = None
        for i in ready:
            trial = fuse(ctx, current + all_units[i])
            if isinstance(trial, FusedGroup):
                current, info = current + all_units[i], trial
                placed.add(i)
                remaining.remove(i)
                break
            if first_failure is None:
                first_failure = (i, trial)
        else:
            assert first_failure is not None
            i, (node, reason, hint) = first_failure
            if not current:
                raise ctx.error(
                    node, f"the Triton backend cannot compile {node.statement}: {reason}", hint
                )
            assert info is not None
            groups.append(info)
            unit = all_units[i]
            where = (
                unit[0].statement
                if unit[0].top
                else f"{unit[0].statement} (its part {unit[0].key})"
            )
            notes.append(
                f"kernel k{len(groups)} starts at {where}: in the previous kernel, {reason}"
            )
            current, info = [], None
    if current:
        assert info is not None
        groups.append(info)
    return groups, notes


def _unit_dependencies(ctx: ScheduleContext, all_units: list[list[Node]]) -> list[set[int]]:
    """The units each unit reads (an init value is no dependency)."""
    prog = ctx.prog
    index = {n.key: i for i, u in enumerate(all_units) for n in u}
    deps: list[set[int]] = []
    for i, u in enumerate(all_units):
        d: set[int] = set()
        for n in u:
            for acc in n.reads:
                p = prog.producer(acc.tensor)
                if p is not None and prog.read_kind(acc, n) is not ReadKind.INIT:
                    d.add(index[p.key])
            if n.survive is not None:
                d.add(index[n.survive])
        d.discard(i)
        deps.append(d)
    return deps


def fuse(ctx: ScheduleContext, nodes: list[Node]) -> FusedGroup | Misfit:
    """The group of ``nodes`` with its grid and loop, or why they cannot be one kernel."""
    gather = _gather(ctx, nodes)
    if gather is not None:
        return gather
    reduced: set[str] = set()
    space: set[str] = set()
    iterative: set[str] = set()
    for n in nodes:
        reduced |= set(n.reduced)
        space |= set(n.space)
        if n.recurrence is not None:
            iterative.add(n.recurrence)
    large = {v for v in space if ctx.large(v)}
    heavy = [n for n in nodes if n.kind is not NodeKind.MAP or set(n.space) & large]
    grid = {
        v
        for v in space
        if v not in reduced and v not in iterative and all(v in n.variables for n in heavy)
    }
    loop = {v for v in reduced if ctx.streamable(v, space)} | iterative
    rest = large - grid - loop
    if len(loop) > 1:
        culprit = next(
            (n for n in nodes if len(set(n.space) & loop) > 1),
            nodes[-1],
        )
        names = ", ".join(sorted(ctx.rank(v) for v in loop))
        return Misfit(
            culprit,
            f"it would stream two ranks ({names}) in one kernel; the Triton backend "
            "streams one rank per kernel",
            "give one of them an extent of at most "
            f"{WHOLE_LIMIT} (--dims) so that it is held whole, or reduce one rank per Einsum",
        )
    if rest:
        v = sorted(rest)[0]
        culprit = next((n for n in heavy if v not in n.variables), nodes[-1])
        return Misfit(culprit, f"rank {ctx.rank(v)} is neither streamed nor parallel here", None)
    stream = next(iter(loop)) if loop else None
    tiled = tiled_grid(ctx, nodes, grid, space, stream)
    return FusedGroup(tuple(nodes), tuple(grid_order(ctx, grid, tiled)), stream, frozenset(tiled))


def _gather(ctx: ScheduleContext, nodes: list[Node]) -> Misfit | None:
    """A read of another point of a tensor computed among ``nodes``."""
    keys = {n.key for n in nodes}
    for n in nodes:
        for acc in n.reads:
            p = ctx.prog.producer(acc.tensor)
            if p is None or p.key not in keys:
                continue
            if ctx.prog.read_kind(acc, n) is ReadKind.GATHER:
                return Misfit(
                    n,
                    f"{n.statement} reads {acc.tensor} at another point than the one computed",
                    None,
                )
    return None


def tiled_grid(
    ctx: ScheduleContext, nodes: list[Node], grid: set[str], space: set[str], loop: str | None
) -> set[str]:
    """The grid variables that get tiles instead of one program per index.

    A contraction's operand needs a register axis besides the contracted one to be a
    tl.dot: the rows of the query tile in attention, the rows and columns of a matmul.
    Such an axis is a grid variable that this operand has and the other one lacks (a
    variable both have, batch or heads, stays one program per index).  A kernel where no
    contraction asks for one tiles one grid variable, the innermost large one (the rows of
    a softmax or a LayerNorm)."""
    lanes = {v for v in space if v not in grid}
    if loop is not None and ctx.scalar_loop(loop, space):
        lanes.discard(loop)
    order = ctx.rank_order()
    tiled: set[str] = set()
    for n in nodes:
        if n.kind is not NodeKind.REDUCE or n.op != "sum":
            continue
        prod = product(n.body, frozenset(n.reduced))
        if len(prod.inner) != 2:
            continue
        for f, other in ((prod.inner[0], prod.inner[1]), (prod.inner[1], prod.inner[0])):
            free = free_variables(f.expr) - set(n.reduced)
            if free & (lanes | tiled):
                continue
            theirs = free_variables(other.expr)
            options = [v for v in free if v in grid and v not in theirs]
            if options:
                # prefer a large rank, then one with more than one index (a decode's single
                # query leaves the rows to the query heads of a group), then the one declared
                # last (the query rank)
                tiled.add(
                    max(
                        options,
                        key=lambda v: (ctx.large(v), ctx.known.get(ctx.rank(v)) != 1, order[v]),
                    )
                )
    if not tiled:
        large = [v for v in grid if ctx.large(v)]
        if large:
            tiled.add(max(large, key=order.__getitem__))
    return tiled


def grid_order(ctx: ScheduleContext, grid: set[str], tiled: set[str]) -> list[str]:
    """Tiled grid variables first (fastest-varying), then batch-like ones, innermost first."""
    order = ctx.rank_order()
    first = sorted((v for v in grid if v in tiled), key=order.__getitem__)
    batch = sorted((v for v in grid if v not in tiled), key=order.__getitem__, reverse=True)
    return first + batch
