"""The driver: text → syntax → checked IR.  Later stages (analysis, schedule, backends) start
from the :class:`~einsumcc.ir.cascade.Cascade` this returns.

>>> c = load("rank K = 4\\ninput A[K]\\noutput Z[]\\nZ[] = sum{k} A[k]\\n")
>>> [e.name for e in c.einsums]
['Z']
"""

from __future__ import annotations

from pathlib import Path

from einsumcc.diagnostics import Diagnostic, Source
from einsumcc.frontend.check import check_program
from einsumcc.frontend.parser import parse_source
from einsumcc.ir.cascade import Cascade


def source_of(spec: str | Path) -> Source:
    """A path to a `.ein` file, or `.ein` text itself (anything containing a newline)."""
    if isinstance(spec, Path) or ("\n" not in spec and spec.endswith(".ein")):
        return Source.from_path(spec)
    if "\n" not in spec and Path(spec).is_file():
        return Source.from_path(spec)
    return Source("<string>", spec)


def load_with_warnings(spec: str | Path) -> tuple[Cascade, tuple[Diagnostic, ...]]:
    """Parse and check a cascade; returns it with the warnings found on the way."""
    source = source_of(spec)
    program = parse_source(source)  # syntax errors: EinError with the first error's position
    checked = check_program(program, source)  # semantic errors: all of them, sorted
    return checked.cascade, checked.warnings


def load(spec: str | Path) -> Cascade:
    """Parse and check a cascade from a path or from `.ein` text."""
    return load_with_warnings(spec)[0]
