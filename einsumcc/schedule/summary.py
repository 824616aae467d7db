"""``einsumcc compile --report``: what each kernel does, as data (``--json``) or text.

Built from the same objects as ``--emit schedule`` (the :class:`Schedule` and its
:class:`TrafficReport`): per kernel its launch grid, per loop the (program, key tile) pairs
over the whole grid (``tiles_total``) and those executed after empty-tile skipping
(``tiles_visited``), and the bytes it reads and writes in global memory.  ``hbm_bytes`` sums
every kernel's reads and writes; ``compulsory_bytes`` is every input read once and every output
written once.  AOT figures (``aot``) are added by the backend when asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from einsumcc.ir.nodes import Role
from einsumcc.schedule.schedule import Schedule
from einsumcc.schedule.traffic import TrafficReport


def compulsory_bytes(s: Schedule, extents: Mapping[str, int]) -> int:
    assert s.program is not None
    c = s.program.cascade
    total = 0
    for t in c.tensors:
        if t.role not in (Role.INPUT, Role.OUTPUT):
            continue
        n = math.prod(extents[d.rank] + (1 if d.iterative else 0) for d in t.dims)
        total += n * t.dtype.itemsize
    return total


def summarize(s: Schedule, traffic: TrafficReport) -> dict[str, Any]:
    """The report as JSON-ready data."""
    extents = dict(traffic.extents)
    kernels = []
    for k, kt in zip(s.kernels, traffic.kernels, strict=True):
        loops = []
        for lp, (_, done, total) in zip(k.loops, kt.iterations, strict=True):
            entry: dict[str, Any] = {
                "rank": k.axis(lp.var).rank,
                "tiles_total": total,
                "tiles_visited": done,
            }
            if lp.tiles.data_skip:
                # a data filter's empty tiles are skipped at run time: ``done`` is an upper
                # bound (``compile(..., count_tiles=True)`` counts the executed ones)
                entry["run_time_skip"] = True
            loops.append(entry)
        kernels.append(
            {
                "name": k.name,
                "grid": [kt.programs],
                "num_warps": k.num_warps,
                "loops": loops,
                "hbm_read_bytes": kt.read,
                "hbm_write_bytes": kt.written,
            }
        )
    return {
        "cascade": s.program.cascade.name if s.program is not None else "",
        "extents": extents,
        "kernels": kernels,
        "hbm_bytes": traffic.read + traffic.written,
        "compulsory_bytes": compulsory_bytes(s, extents),
        # what the compiler decided and why (refined chunks, split-KV runs and their merge,
        # split reductions, the tile checked for a target), as the schedule's notes say it
        "notes": list(s.notes),
    }


def render_summary(data: Mapping[str, Any]) -> str:
    dims = ", ".join(f"{k}={v}" for k, v in data["extents"].items())
    lines = [f"report of {data['cascade']} at {dims}"]
    for k in data["kernels"]:
        lines.append(
            f"kernel {k['name']}: grid {k['grid'][0]} programs, {k['num_warps']} warps, "
            f"reads {k['hbm_read_bytes']:,} B, writes {k['hbm_write_bytes']:,} B"
        )
        for i, lp in enumerate(k["loops"], 1):
            total, done = lp["tiles_total"], lp["tiles_visited"]
            frac = f" ({done / total:.1%})" if total else ""
            lines.append(
                f"  loop {i} over {lp['rank']}: {done:,} of {total:,} (program, tile) pairs "
                f"visited{frac}"
                + (
                    ", at most: a data filter skips more at run time"
                    if lp.get("run_time_skip")
                    else ""
                )
            )
        aot = k.get("aot")
        if aot is not None:
            stages = aot.get("num_stages", "?")
            lines.append(
                f"  {aot['target']}: {aot.get('num_warps', '?')} warps, "
                f"{stages} stage{'' if stages == 1 else 's'}, {aot['registers']} registers, "
                f"{aot['spill_bytes']} B "
                f"spilled, {aot['shared_bytes']:,} B shared memory, {aot['wgmma']} wgmma, "
                f"{aot['mma']} mma, compiled in {aot['compile_s']:.1f} s"
            )
    hbm, comp = data["hbm_bytes"], data["compulsory_bytes"]
    ratio = f" ({hbm / comp:.2f}x)" if comp else ""
    lines.append(f"global memory: {hbm:,} B moved, {comp:,} B compulsory{ratio}")
    return "\n".join(lines) + "\n"
