"""The text form of a schedule (``einsumcc compile --emit schedule``, generated headers)."""

from __future__ import annotations

from collections.abc import Mapping

from einsumcc.analysis.passes import analyze_passes
from einsumcc.ir.dump import render_condition
from einsumcc.schedule.contraction import contraction
from einsumcc.schedule.nodes import NodeKind
from einsumcc.schedule.schedule import AxisRole, Kernel, Loop, Schedule
from einsumcc.schedule.traffic import TrafficReport


def _bytes(n: int) -> str:
    return f"{n:,} B"


def _extents(s: Schedule) -> list[str]:
    fixed = [f"{r} = {n}" for r, n in s.extents if n is not None]
    runtime = [r for r, n in s.extents if n is None]
    lines = []
    if fixed:
        lines.append("compile-time extents: " + ", ".join(fixed))
    if runtime:
        lines.append("run-time extents (read from the inputs' shapes): " + ", ".join(runtime))
    return lines


def _node_line(s: Schedule, k: Kernel, key: str, loop: Loop | None) -> str:
    prog = s.program
    assert prog is not None
    n = prog.node(key)
    lanes = {a.var: a.block for a in k.axes if a.lanes}
    axes = [v for v in (a.var for a in k.axes if a.lanes) if v in n.variables]
    shape = "[" + ", ".join(axes) + "]" if axes else "scalar"
    if n.kind is NodeKind.SURVIVE:
        what = f"any{{{', '.join(n.reduced)}}} of the filter of {n.statement}"
    elif n.kind is NodeKind.REDUCE:
        con = contraction(n, lanes)
        if con is not None:
            what = f"tl.dot over {con.k}"
        else:
            red = [v for v in n.reduced if v in lanes]
            what = f"{n.op} over {', '.join(red)} in registers" if red else f"{n.op}"
    else:
        what = "pointwise"
    notes = []
    if loop is not None:
        if key in loop.accumulators:
            notes.append(f"accumulated over {loop.var}, loop-carried")
        if key in loop.carried:
            notes.append(f"recurrence over {loop.var}, loop-carried")
        if key in loop.recomputed:
            notes.append("recomputed")
        if key in loop.stores:
            notes.append("stored per iteration")
        if key in loop.finals:
            notes.append("final iterate stored once")
    if n.filtered:
        notes.append("filtered, fill where no point survives")
    tail = f" ({'; '.join(notes)})" if notes else ""
    return f"{key:<10} {what}, {shape}{tail}"


def _tiles(loop: Loop) -> list[str]:
    t = loop.tiles
    out = []
    if t.trivial:
        return ["tiles: every tile is full (no filter along the loop, no partial tile)"]
    for site in t.classified:
        out.append(
            f"tiles: {site.node}'s filter {render_condition(site.condition)} is decided per "
            "tile: full tiles carry no mask code, partial tiles are masked"
        )
    for site in t.masked:
        out.append(
            f"tiles: {site.node}'s filter {render_condition(site.condition)} is masked in "
            "every tile"
        )
    if t.boundary:
        out.append("tiles: the last tile may be partial (masked)")
    if t.proof:
        out.append(f"empty tiles: {t.proof}")
    return out


def render_schedule(s: Schedule, traffic: TrafficReport | None = None) -> str:
    assert s.program is not None
    lines = [f"schedule of {s.cascade} (target triton)"]
    lines += _extents(s)
    if s.views:
        lines.append(
            "views (inlined, no data movement): "
            + "; ".join(f"{name} = {src}" for name, src in s.views)
        )
    if s.materialize:
        lines.append("materialized: " + ", ".join(s.materialize))
    if s.passes:
        lines.append("pass analysis: " + ", ".join(f"passes({r}) = {n}" for r, n in s.passes))
    lines.append(_launches(s))
    for note in s.notes:
        lines.append(f"note: {note}")
    for k in s.kernels:
        lines.append("")
        lines += _kernel(s, k)
    lines.append("")
    lines.append("placement:")
    width = max((len(p.tensor) for p in s.placements), default=4)
    for p in s.placements:
        lines.append(f"  {p.tensor:<{width}}  {p.where:<12} {p.detail}")
    if traffic is not None:
        lines.append("")
        lines.extend(render_traffic(s, traffic))
    return "\n".join(lines) + "\n"


def _launches(s: Schedule) -> str:
    """The kernel launches, and for one streaming kernel what the pass analysis says."""
    prog = s.program
    assert prog is not None
    nk = len(s.kernels)
    launches = f"{nk} kernel launch{'es' if nk != 1 else ''}"
    streamed = [k.stream for k in s.kernels if k.stream is not None]
    if not (nk == 1 and streamed):
        return launches
    rank = streamed[0]
    report = s.pass_report or analyze_passes(prog.cascade, rank)
    passes = report.rank(rank).passes
    if passes == 1:
        return (
            f"{launches}: the pass analysis gives 1 pass over the streamed rank {rank}, "
            "so the whole cascade is one kernel that streams it once per program"
        )
    loops = len(s.kernels[0].loops)
    return (
        f"{launches} with {loops} loops: the pass analysis gives {passes} passes over "
        f"the streamed rank {rank}; each loop re-reads its inputs and recomputes what "
        "it needs from earlier passes (--materialize stores intermediates instead)"
    )


def _kernel(s: Schedule, k: Kernel) -> list[str]:
    grid = " x ".join(
        f"tiles of {k.axis(v).block} of {k.axis(v).rank}"
        if k.axis(v).lanes
        else f"each index of {k.axis(v).rank}"
        for v in k.grid
    )
    lines = [f"kernel {k.name}: {k.num_warps} warps, one program per {grid or 'launch'}"]
    for a in k.axes:
        lines.append(f"  {a.describe()}")
    if k.stream is not None:
        loop_axis = next(a for a in k.axes if a.role in (AxisRole.STREAM, AxisRole.ITERATE))
        lines.append(
            f"  streamed rank: {k.stream} ({loop_axis.var} ascending), "
            f"{len(k.loops)} loop{'s' if len(k.loops) != 1 else ''}, one per pass"
        )
    for key in k.before:
        lines.append(f"  before the loops: {_node_line(s, k, key, None)}")
    for lp in k.loops:
        lines.append(f"  loop {lp.number} (pass {lp.number}) over {lp.var}:")
        for key in lp.nodes:
            lines.append(f"    {_node_line(s, k, key, lp)}")
        lines.extend(f"    {x}" for x in _tiles(lp))
        for key in lp.after:
            lines.append(f"    after the loop: {_node_line(s, k, key, None)}")
    lines.append(f"  reads: {', '.join(k.reads) or 'nothing'}")
    lines.append(f"  writes: {', '.join(k.writes) or 'nothing'}")
    return lines


def render_traffic(s: Schedule, t: TrafficReport) -> list[str]:
    dims = ", ".join(f"{k}={v}" for k, v in t.extents)
    lines = [f"traffic at {dims} (bytes each kernel requests from global memory):"]
    for kt in t.kernels:
        its = ", ".join(
            f"loop {n}: {a:,} of {b:,} iterations" + (" (empty tiles skipped)" if a < b else "")
            for n, a, b in kt.iterations
        )
        lines.append(
            f"  kernel {kt.kernel}: {kt.programs:,} programs" + (f"; {its}" if its else "")
        )
        for tt in kt.tensors:
            parts = []
            if tt.read:
                parts.append(f"reads {_bytes(tt.read)}")
            if tt.written:
                parts.append(f"writes {_bytes(tt.written)}")
            reuse = f" - {tt.reuse}" if tt.reuse else ""
            lines.append(
                f"    {tt.tensor:<8} {', '.join(parts)} (tensor: {_bytes(tt.size)}){reuse}"
            )
        lines.append(f"    total: reads {_bytes(kt.read)}, writes {_bytes(kt.written)}")
    lines.append(f"  all kernels: reads {_bytes(t.read)}, writes {_bytes(t.written)}")
    if s.passes:
        lines.append(
            "  next to the pass analysis: " + ", ".join(f"passes({r}) = {n}" for r, n in s.passes)
        )
    return lines


def traffic_for(s: Schedule, dims: Mapping[str, int] | None) -> TrafficReport | None:
    """The traffic at ``dims`` when they bind every rank, else None."""
    from einsumcc.schedule.traffic import analyze_traffic

    extents = {r: n for r, n in s.extents if n is not None}
    extents.update(dims or {})
    prog = s.program
    assert prog is not None
    # derived extents
    from einsumcc.schedule.extents import compile_extents

    full = compile_extents(prog.cascade, extents)
    if any(v is None for v in full.values()):
        return None
    return analyze_traffic(s, {k: v for k, v in full.items() if v is not None})
