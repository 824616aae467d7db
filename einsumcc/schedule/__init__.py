"""Schedules: how a cascade runs (kernels, grids, tiles, loops, placement), as data.

>>> from einsumcc import load
>>> from einsumcc.schedule import derive_schedule
>>> s = derive_schedule(load("examples/attention_3pass.ein"))
>>> [len(k.loops) for k in s.kernels]
[3]
"""

from __future__ import annotations

from einsumcc.schedule.build import build_schedule
from einsumcc.schedule.default import compile_extents, derive_schedule
from einsumcc.schedule.report import render_schedule, traffic_for
from einsumcc.schedule.schedule import (
    Axis,
    AxisRole,
    Kernel,
    Loop,
    Placement,
    Schedule,
    TileClasses,
)
from einsumcc.schedule.traffic import TrafficReport, analyze_traffic

__all__ = [
    "Axis",
    "AxisRole",
    "Kernel",
    "Loop",
    "Placement",
    "Schedule",
    "TileClasses",
    "TrafficReport",
    "analyze_traffic",
    "build_schedule",
    "compile_extents",
    "derive_schedule",
    "render_schedule",
    "traffic_for",
]
