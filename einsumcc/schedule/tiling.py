"""Tile sizes: the role and block of every variable of a group.

Grid ranks take tiles of :data:`GRID_TILE` (the first tiled one) or :data:`GRID_TILE_OTHER`,
streamed ranks :data:`STREAM_TILE` (smaller when a broadcast-multiply-reduce would exceed
:data:`REGISTER_BUDGET` values), whole ranks the next power of two of their extent; the inner
part of a split is its tile.  The ``tiles`` option overrides them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from einsumcc.ir.nodes import free_variables
from einsumcc.schedule.context import (
    GRID_TILE,
    GRID_TILE_OTHER,
    MIN_TILE,
    REGISTER_BUDGET,
    STREAM_TILE,
    TRITON_MAX_NUMEL,
    WIDE_TILE,
    ScheduleContext,
)
from einsumcc.schedule.contraction import MIN_DOT, contraction
from einsumcc.schedule.extents import next_pow2
from einsumcc.schedule.fusion import FusedGroup
from einsumcc.schedule.nodes import Node, NodeKind
from einsumcc.schedule.schedule import AxisRole

RoleMap = Mapping[str, tuple[AxisRole, int]]


def assign_roles(ctx: ScheduleContext, g: FusedGroup) -> dict[str, tuple[AxisRole, int]]:
    """Every variable of ``g``: grid, stream, iterate or whole, with its block."""
    space: list[str] = []
    for n in g.nodes:
        space.extend(v for v in n.space if v not in space)
    first_tiled = next((v for v in g.grid if v in g.tiled), None)
    roles: dict[str, tuple[AxisRole, int]] = {}
    for v in space:
        rank = ctx.rank(v)
        ext = ctx.known[rank]
        if v in g.grid:
            if v in g.tiled:
                default = GRID_TILE if v == first_tiled else GRID_TILE_OTHER
                if ext is not None:
                    default = min(default, next_pow2(ext))
                roles[v] = (AxisRole.GRID, ctx.tiles.get(rank, default))
            else:
                roles[v] = (AxisRole.GRID, 1)
        elif v == g.loop:
            if ctx.scalar_loop(v, set(space)):
                roles[v] = (AxisRole.ITERATE, 1)
            else:
                roles[v] = (AxisRole.STREAM, ctx.tiles.get(rank, STREAM_TILE))
        else:
            assert ext is not None, v
            roles[v] = (AxisRole.WHOLE, ctx.tiles.get(rank, next_pow2(ext)))
    return fit_registers(ctx, g.nodes, padded_rows(ctx, g, roles))


def dots(nodes: Sequence[Node], roles: RoleMap) -> int:
    """How many nodes are tile contractions (``tl.dot``) at these blocks."""
    lanes = {v: b for v, (_, b) in roles.items() if b > 1}
    return sum(contraction(n, lanes) is not None for n in nodes)


def padded_rows(
    ctx: ScheduleContext, g: FusedGroup, roles: RoleMap
) -> dict[str, tuple[AxisRole, int]]:
    """Few rows (a decode's queries, ``P < 16``) padded to :data:`MIN_DOT` masked rows when
    that turns products into ``tl.dot`` (tensor cores) instead of broadcast-multiply-reduce."""
    out = dict(roles)
    for v in g.grid:
        role, block = out[v]
        if v not in g.tiled or block >= MIN_DOT or ctx.rank(v) in ctx.tiles:
            continue
        trial = {**out, v: (role, MIN_DOT)}
        if dots(g.nodes, trial) > dots(g.nodes, out):
            out = trial
    return out


def footprint(nodes: Sequence[Node], roles: RoleMap, var: str | None = None) -> int:
    """Values in the largest register tile (only tiles with axis ``var``, if given)."""
    lanes = {v: b for v, (_, b) in roles.items() if b > 1}
    worst = 1
    for n in nodes:
        con = contraction(n, lanes)
        tiles: list[tuple[str, ...]]
        if con is not None:
            tiles = [(con.i, con.k), (con.k, con.j), (con.i, con.j)]
        else:
            used = set(n.space)
            if n.kind is NodeKind.MAP:
                used = set(n.variables) | free_variables(n.body)
            tiles = [tuple(used)]
        for axes in tiles:
            if var is not None and var not in axes:
                continue
            size = 1
            for v in axes:
                size *= lanes.get(v, 1)
            worst = max(worst, size)
    return worst


def fit_registers(
    ctx: ScheduleContext, nodes: Sequence[Node], roles: RoleMap
) -> dict[str, tuple[AxisRole, int]]:
    """Shrink default stream, then grid, tiles until the largest register value fits."""
    out = dict(roles)
    shrinkable = [
        v
        for v, (role, _) in out.items()
        if role is AxisRole.STREAM and ctx.rank(v) not in ctx.tiles
    ] + [
        v
        for v, (role, b) in out.items()
        if role is AxisRole.GRID and b > 1 and ctx.rank(v) not in ctx.tiles
    ]
    for v in shrinkable:
        role, b = out[v]
        while b > MIN_TILE and footprint(nodes, out, v) > REGISTER_BUDGET:
            b //= 2
            out[v] = (role, b)
    size = footprint(nodes, out)
    if size > TRITON_MAX_NUMEL:
        raise ctx.error(
            nodes[-1],
            f"a register value of {size} elements exceeds Triton's block limit of "
            f"{TRITON_MAX_NUMEL}",
            "use smaller tiles (--tile) or smaller extents",
        )
    return out


def num_warps(g: FusedGroup) -> int:
    return 8 if footprint(g.nodes, g.roles) >= WIDE_TILE else 4


def used_tiles(ctx: ScheduleContext, groups: Sequence[FusedGroup]) -> tuple[tuple[str, int], ...]:
    """The tile of every rank with a block above one, first group first, in rank order."""
    out: dict[str, int] = {}
    for g in groups:
        for v, (role, b) in g.roles.items():
            if (role in (AxisRole.GRID, AxisRole.STREAM) and b > 1) or (
                role is AxisRole.WHOLE and b > 1
            ):
                out.setdefault(ctx.rank(v), b)
    order = [r.name for r in ctx.c.ranks]
    return tuple(sorted(out.items(), key=lambda kv: order.index(kv[0])))
