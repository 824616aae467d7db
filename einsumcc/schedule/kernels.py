"""Kernels from groups: a group's passes, cut at materialized tensors, become kernels of one
loop per pass; a loop recomputes the nodes of earlier passes it reads per tile."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from einsumcc.schedule.context import ScheduleContext
from einsumcc.schedule.fusion import FusedGroup, unit_of
from einsumcc.schedule.nodes import ReadKind
from einsumcc.schedule.phases import accumulates, per_tile, read_sites
from einsumcc.schedule.schedule import Axis, AxisRole, Kernel, Loop
from einsumcc.schedule.tiling import num_warps


@dataclass(frozen=True)
class PassRange:
    """Passes ``first..last`` of a group, run by one kernel (``1..0``: a kernel without
    loops)."""

    group: FusedGroup
    first: int
    last: int

    def computes(self, key: str) -> bool:
        """This kernel computes ``key`` (in one of its loops, before or after them)."""
        g, a, b = self.group, self.first, self.last
        return (key in g.phase and a <= g.phase[key] <= b) or (
            key in g.after and ((g.after[key] == 0 and a == 1) or a <= g.after[key] <= b)
        )


def pass_ranges(g: FusedGroup, cuts: set[int]) -> list[PassRange]:
    """The kernels of ``g``: its passes cut after each pass in ``cuts``."""
    if g.passes == 0:
        return [PassRange(g, 1, 0)]
    ranges: list[PassRange] = []
    start = 1
    for cut in sorted(cuts):
        ranges.append(PassRange(g, start, cut))
        start = cut + 1
    ranges.append(PassRange(g, start, max(g.passes, start - 1)))
    return ranges


def kernel_of(ranges: Sequence[PassRange]) -> dict[str, int]:
    """Node -> the index of the kernel computing it (the last such range)."""
    out: dict[str, int] = {}
    for index, r in enumerate(ranges):
        for n in r.group.nodes:
            if r.computes(n.key):
                out[n.key] = index
    return out


def build_kernel(
    ctx: ScheduleContext, r: PassRange, index: int, kernel_of: Mapping[str, int]
) -> tuple[Kernel, set[str]]:
    """Kernel ``index`` (reads and writes not filled in yet) and the nodes it evaluates."""
    g, a, b = r.group, r.first, r.last
    loop = g.loop
    before = tuple(n.key for n in g.nodes if n.key in g.after and g.after[n.key] == 0 and a == 1)
    evaluated: set[str] = set(before)
    loops: list[Loop] = []
    for k in range(a, b + 1):
        assert loop is not None
        lp = _loop(ctx, g, k, loop, index, kernel_of)
        evaluated |= set(lp.nodes) | set(lp.after)
        loops.append(lp)
    axes = kernel_axes(ctx, g, evaluated)
    kernel = Kernel(
        name=f"k{index}",
        axes=axes,
        grid=tuple(v for v in g.grid if any(a.var == v for a in axes)),
        before=before,
        loops=tuple(loops),
        reads=(),
        writes=(),
        stream=stream_rank(ctx, g),
        num_warps=num_warps(g),
    )
    return kernel, evaluated


def _loop(
    ctx: ScheduleContext, g: FusedGroup, k: int, loop: str, index: int, kernel_of: Mapping[str, int]
) -> Loop:
    """Loop ``k`` (pass ``k``) of kernel ``index`` over ``loop``."""
    prog = ctx.prog
    order = {n.key: i for i, n in enumerate(g.nodes)}
    members = {n.key for n in g.nodes if g.phase.get(n.key) == k}
    recomputed = _recomputed(ctx, g, members, loop, index, kernel_of)
    nodes = tuple(sorted(members | recomputed, key=order.__getitem__))
    accumulators = tuple(n for n in nodes if accumulates(prog.node(n), loop))
    carried = tuple(
        n
        for n in nodes
        if prog.node(n).recurrence == loop
        and prog.node(n).top
        and prog.node(n).iterative_variable == loop
    )
    after = tuple(n.key for n in g.nodes if n.key in g.after and g.after[n.key] == k)
    return Loop(
        number=k,
        var=loop,
        nodes=nodes,
        recomputed=tuple(sorted(recomputed, key=order.__getitem__)),
        accumulators=accumulators,
        carried=carried,
        stores=(),
        after=after,
    )


def _recomputed(
    ctx: ScheduleContext,
    g: FusedGroup,
    members: set[str],
    loop: str,
    index: int,
    kernel_of: Mapping[str, int],
) -> set[str]:
    """The nodes of earlier passes that ``members`` read per tile: evaluated again, with
    their whole recurrence unit, unless materialized by an earlier kernel."""
    keys = g.keys
    todo = list(members)
    recomputed: set[str] = set()
    while todo:
        n = ctx.prog.node(todo.pop())
        for p, kind in read_sites(ctx.prog, n, keys):
            if p.key in members or p.key in recomputed or kind is ReadKind.INIT:
                continue
            if not per_tile(p, loop) or kind is ReadKind.FINAL:
                continue
            if p.key in ctx.materialize and kernel_of[p.key] != index:
                continue
            unit = [q.key for q in g.nodes if unit_of(q) == unit_of(p)]
            if p.recurrence is None:
                unit = [p.key]
            for q in unit:
                if q not in members and q not in recomputed:
                    recomputed.add(q)
                    todo.append(q)
    return recomputed


def stream_rank(ctx: ScheduleContext, g: FusedGroup) -> str | None:
    """The rank the kernel streams: the loop's, or the parent of a split whose outer part
    is the loop and whose inner part is a block."""
    if g.loop is None:
        return None
    stream = ctx.rank(g.loop)
    for sp in ctx.c.splits:
        if stream in sp.children[:-1] and any(
            ctx.c.rank(ch).var in g.roles for ch in sp.children[sp.children.index(stream) + 1 :]
        ):
            return sp.parent
    return stream


def kernel_axes(ctx: ScheduleContext, g: FusedGroup, evaluated: set[str]) -> tuple[Axis, ...]:
    """The axes of the evaluated nodes: grid, then streamed, then whole (in rank order)."""
    used: list[str] = []
    for n in g.nodes:
        if n.key in evaluated:
            used.extend(v for v in n.space if v not in used)
    rank_order = ctx.rank_order()

    def make(v: str) -> Axis:
        role, block = g.roles[v]
        return Axis(v, ctx.rank(v), role, block, ctx.known[ctx.rank(v)])

    out = [make(v) for v in g.grid if v in used]
    out.extend(make(v) for v in used if g.roles[v][0] in (AxisRole.STREAM, AxisRole.ITERATE))
    wholes = sorted(
        (v for v in used if g.roles[v][0] is AxisRole.WHOLE), key=rank_order.__getitem__
    )
    out.extend(make(v) for v in wholes)
    return tuple(out)
