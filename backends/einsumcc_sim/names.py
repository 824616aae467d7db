"""Cheap constants for the command line: preset names and option choices.

Importing this module imports nothing heavy (no numpy, no sympy, no engine), so that the
``einsumcc`` command can build its argument parser quickly.
"""

from __future__ import annotations

ARCH_PRESETS = ("fusemax", "flat", "systolic")
MAPPING_PRESETS = ("unfused", "flat", "flat-offchip", "fusemax-cascade", "fusemax-arch", "fusemax")
MODELS = ("faithful", "artifact")
TIMINGS = ("default", "scalesim")
