"""einsumcc_sim: a cycle-level simulator of spatial arrays (a 2D PE array, a 1D PE array, a
global buffer and DRAM) driven by the cascade, a mapping and an architecture file.

The stages, in order: ``arch`` (architecture files), ``kernel`` (the cascade as per-point PE
programs), ``mapping`` (mapping files and the default mapping), ``lowering`` (the loop tree of
array ops and DRAM transfers, a ``program.SimProgram``), ``template`` (the cycle-level timing
of one array op), ``engine`` (scheduling with steady-state extrapolation), ``functional``
(values through the dataflow) and ``report``; ``api.simulate_cascade`` runs them for one
request.

Importing the package is cheap: its names load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from einsumcc_sim.api import map_cascade, simulate_cascade
    from einsumcc_sim.arch import Arch, load_arch
    from einsumcc_sim.mapper import MapResult
    from einsumcc_sim.report import SimReport

__all__ = ["Arch", "MapResult", "SimReport", "load_arch", "map_cascade", "simulate_cascade"]

_WHERE = {
    "Arch": "einsumcc_sim.arch",
    "load_arch": "einsumcc_sim.arch",
    "SimReport": "einsumcc_sim.report",
    "simulate_cascade": "einsumcc_sim.api",
    "map_cascade": "einsumcc_sim.api",
    "MapResult": "einsumcc_sim.mapper",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'einsumcc_sim' has no attribute {name!r}")
    return getattr(importlib.import_module(where), name)
