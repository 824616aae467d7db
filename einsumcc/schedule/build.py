"""The schedule builder: the stages of :mod:`einsumcc.schedule.default` in order.

Each stage is a function of frozen values (the :class:`~einsumcc.schedule.context.ScheduleContext`,
the groups so far) to new ones; the builder threads them and collects the notes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from einsumcc.analysis.passes import analyze_passes
from einsumcc.ir.cascade import Cascade
from einsumcc.schedule.context import WHOLE_LIMIT, ScheduleContext, is_large
from einsumcc.schedule.extents import compile_extents
from einsumcc.schedule.fusion import FusedGroup, partition
from einsumcc.schedule.kernels import PassRange, build_kernel, kernel_of, pass_ranges
from einsumcc.schedule.nest import nest_reductions
from einsumcc.schedule.nodes import prepare
from einsumcc.schedule.phases import assign_phases, split_points
from einsumcc.schedule.placement import (
    KernelEvaluation,
    placements,
    render_access,
    with_reads_and_writes,
)
from einsumcc.schedule.schedule import Kernel, Schedule
from einsumcc.schedule.tiles import classify_loops
from einsumcc.schedule.tiling import assign_roles, used_tiles
from einsumcc.schedule.validate import check_options, check_tiles


def build_schedule(
    cascade: Cascade,
    dims: Mapping[str, int] | None = None,
    *,
    tiles: Mapping[str, int] | None = None,
    materialize: Sequence[str] = (),
) -> Schedule:
    """The default schedule of ``cascade`` (see :func:`einsumcc.schedule.derive_schedule`)."""
    ctx = make_context(cascade, dims, tiles, materialize)
    groups, notes = partition(ctx)
    groups = [_planned(ctx, g) for g in groups]
    notes += _runtime_extent_notes(ctx, groups)
    check_tiles(ctx, groups)
    ranges: list[PassRange] = []
    for g in groups:
        cuts, cut_notes = split_points(ctx, g)
        notes += cut_notes
        ranges += pass_ranges(g, cuts)
    kernels, ev = _kernels(ctx, ranges)
    places = placements(ctx, kernels, ev)
    global_names = {p.tensor for p in places if p.where == "global"}
    final = [with_reads_and_writes(ctx, k, i, ev, global_names) for i, k in enumerate(kernels)]
    schedule = Schedule(
        cascade=ctx.c.name,
        kernels=tuple(final),
        placements=tuple(places),
        extents=tuple((r.name, ctx.known[r.name]) for r in ctx.c.ranks),
        tiles=used_tiles(ctx, groups),
        materialize=ctx.materialize,
        views=tuple((name, render_access(src)) for name, src in ctx.prog.views),
        passes=_pass_summary(ctx, groups),
        pass_report=ctx.pass_report,
        notes=tuple(notes),
        program=ctx.prog,
    )
    return classify_loops(schedule)


def make_context(
    c: Cascade,
    dims: Mapping[str, int] | None,
    tiles: Mapping[str, int] | None,
    materialize: Sequence[str],
) -> ScheduleContext:
    """The builder's inputs: extents, the program (large reductions nested), checked options."""
    known = compile_extents(c, dims)
    prog = nest_reductions(prepare(c), lambda v: is_large(c, known, v))
    ctx = ScheduleContext(c, known, dict(tiles or {}), tuple(materialize), prog, analyze_passes(c))
    check_options(ctx)
    return ctx


def _planned(ctx: ScheduleContext, g: FusedGroup) -> FusedGroup:
    """``g`` with the roles of its variables and the pass of each node."""
    g = dataclasses.replace(g, roles=assign_roles(ctx, g))
    phases = assign_phases(ctx, g)
    return dataclasses.replace(g, phase=phases.phase, after=phases.after, passes=phases.passes)


def _runtime_extent_notes(ctx: ScheduleContext, groups: Sequence[FusedGroup]) -> list[str]:
    """A hint for each rank streamed only for want of a compile-time extent."""
    loops: dict[str, int] = {}
    for g in groups:
        if g.loop is not None:
            loops[g.loop] = loops.get(g.loop, 0) + g.passes
    if len(groups) <= 1 or len(loops) <= 1:
        return []
    notes: list[str] = []
    most = max(loops.values())
    for v in sorted(loops):
        rank = ctx.rank(v)
        if ctx.known[rank] is None and loops[v] < most and not ctx.iterative(v):
            notes.append(
                f"{rank} has no extent at compile time, so it is streamed; "
                f"--dims {rank}=N holds it whole in registers when N <= {WHOLE_LIMIT}, "
                "which may need fewer kernels"
            )
    return notes


def _kernels(
    ctx: ScheduleContext, ranges: Sequence[PassRange]
) -> tuple[list[Kernel], KernelEvaluation]:
    owner = kernel_of(ranges)
    kernels: list[Kernel] = []
    evaluated: list[set[str]] = []
    for index, r in enumerate(ranges):
        k, ev = build_kernel(ctx, r, index, owner)
        kernels.append(k)
        evaluated.append(ev)
    return kernels, KernelEvaluation(owner, evaluated)


def _pass_summary(
    ctx: ScheduleContext, groups: Sequence[FusedGroup]
) -> tuple[tuple[str, int], ...]:
    """The pass analysis of each streamed rank (and of the parent of a split part)."""
    out: dict[str, int] = {}
    for g in groups:
        if g.loop is None:
            continue
        rank = ctx.rank(g.loop)
        if rank in out:
            continue
        out[rank] = ctx.pass_report.rank(rank).passes
        parent = next((s.parent for s in ctx.c.splits if rank in s.children), None)
        if parent is not None and parent not in out:
            out[parent] = ctx.pass_report.rank(parent).passes
    return tuple(out.items())
