"""Errors for illegal schedule options: ``tiles`` and ``materialize`` before the schedule is
built, then the tiles that the kernels cannot honour."""

from __future__ import annotations

from collections.abc import Sequence

from einsumcc.diagnostics import EinError
from einsumcc.ir.nodes import Role
from einsumcc.schedule.context import TRITON_MAX_NUMEL, ScheduleContext
from einsumcc.schedule.extents import next_pow2, suggest
from einsumcc.schedule.fusion import FusedGroup
from einsumcc.schedule.schedule import AxisRole


def check_options(ctx: ScheduleContext) -> None:
    _check_tile_values(ctx)
    _check_materialize(ctx)


def _check_tile_values(ctx: ScheduleContext) -> None:
    ranks = [r.name for r in ctx.c.ranks]
    for name, value in ctx.tiles.items():
        if name not in ranks:
            raise EinError.plain(
                f"--tile names unknown rank '{name}'",
                hint=suggest(name, ranks) or "ranks of " + ctx.c.name + ": " + ", ".join(ranks),
            )
        if value < 1 or value & (value - 1):
            raise EinError.at(
                ctx.span(name),
                f"--tile {name}={value}: a tile is a power of two (a Triton block shape)",
                ctx.c.source,
                hint=f"for example --tile {name}={next_pow2(max(value, 1))}",
            )
        if value > TRITON_MAX_NUMEL:
            raise EinError.at(
                ctx.span(name),
                f"--tile {name}={value} exceeds Triton's block limit of {TRITON_MAX_NUMEL}",
                ctx.c.source,
            )


def _check_materialize(ctx: ScheduleContext) -> None:
    tensors = {t.name for t in ctx.c.tensors}
    views = {name for name, _ in ctx.prog.views}
    for name in ctx.materialize:
        if name not in tensors:
            raise EinError.plain(
                f"--materialize names unknown tensor '{name}'",
                hint=suggest(name, tensors),
            )
        t = ctx.c.tensor(name)
        if t.role is not Role.INTERMEDIATE:
            raise EinError.at(
                t.span,
                f"--materialize {name}: {name} is an {t.role.value}, already in global memory",
                ctx.c.source,
                hint="materialize names intermediates that a later pass reads",
            )
        if name in views:
            raise EinError.at(
                t.span,
                f"--materialize {name}: {name} is a view of another tensor and is never computed",
                ctx.c.source,
            )


def check_tiles(ctx: ScheduleContext, groups: Sequence[FusedGroup]) -> None:
    """Every tile override names a rank that some kernel tiles, with a legal block."""
    for rank, value in ctx.tiles.items():
        var = ctx.c.rank(rank).var
        roles = [g.roles[var] for g in groups if var in g.roles]
        if not roles:
            split = ctx.c.split_of(rank)
            hint = (
                f"{rank} is traversed as {' x '.join(split.children)}: tile "
                f"{split.children[-1]} instead"
                if split is not None
                else None
            )
            raise EinError.at(
                ctx.span(rank),
                f"--tile {rank}={value}: no kernel iterates over {rank}",
                ctx.c.source,
                hint=hint,
            )
        tiled = any(var in g.tiled for g in groups)
        for role, _ in roles:
            _check_tile_role(ctx, rank, value, role, tiled)


def _check_tile_role(
    ctx: ScheduleContext, rank: str, value: int, role: AxisRole, tiled: bool
) -> None:
    ext = ctx.known[rank]
    if role is AxisRole.ITERATE:
        why = (
            f"{rank} is iterative: its recurrence runs one iterate at a time"
            if ctx.iterative(ctx.c.rank(rank).var)
            else f"{rank} is the outer part of a split: it counts tiles of "
            f"{ctx.split_inner(rank)}, which is its tile"
        )
        raise EinError.at(
            ctx.span(rank),
            f"--tile {rank}={value}: {why}",
            ctx.c.source,
            hint=f"tile {ctx.split_inner(rank)} instead" if rank in ctx.outer_parts else None,
        )
    if role is AxisRole.GRID and not tiled:
        raise EinError.at(
            ctx.span(rank),
            f"--tile {rank}={value}: {rank} is a batch rank here, one program per index",
            ctx.c.source,
        )
    if role is AxisRole.WHOLE and ext is not None and value < ext:
        raise EinError.at(
            ctx.span(rank),
            f"--tile {rank}={value}: {rank} = {ext} is held whole in registers, so "
            f"its tile must be at least {ext}",
            ctx.c.source,
            hint=f"change the extent instead: --dims {rank}={value}",
        )
