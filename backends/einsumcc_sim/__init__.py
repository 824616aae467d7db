"""einsumcc_sim: a cycle-level simulator of spatial arrays (a 2D PE array, a 1D PE array, a
global buffer and DRAM) driven by the cascade, a mapping and an architecture file.

The stages, in order: ``arch`` (architecture files), ``kernel`` (the cascade as per-point PE
programs), ``mapping`` (mapping files and the default mapping), ``program`` (the loop tree of
array ops and DRAM transfers), ``template`` (the cycle-level timing of one array op), ``engine``
(scheduling with steady-state extrapolation), ``functional`` (values through the dataflow) and
``report``.
"""

from __future__ import annotations

from einsumcc_sim.arch import Arch, load_arch

__all__ = ["Arch", "load_arch"]
