"""The driver: the whole flow of einsumcc on one screen.

    text ──parse──▶ syntax ──check──▶ Cascade (the IR) ──▶ analysis   (passes, cost)
                                                   ├──▶ oracle     (numpy reference)
                                                   ├──▶ schedule ──▶ backend "triton"
                                                   └──▶ mapping  ──▶ backend "sim"

Each stage is a function from frozen values to frozen values: ``parse_source`` (Source →
syntax), ``check_program`` (syntax → Cascade), ``analyze_passes`` / ``analyze_cost``
(Cascade → reports), ``evaluate`` (Cascade, arrays → arrays), ``derive_schedule`` (Cascade →
Schedule).  Backends are plugins found by name (:mod:`einsumcc.backend`); the core never
imports them.  The public API (:mod:`einsumcc`) and the command line (:mod:`einsumcc.cli`) are
thin layers over these functions.

>>> c = load("rank K = 4\\ninput A[K]\\noutput Z[]\\nZ[] = sum{k} A[k]\\n")
>>> [e.name for e in c.einsums]
['Z']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from einsumcc import backend
from einsumcc.diagnostics import Diagnostic, EinError, Source, print_diagnostics
from einsumcc.frontend.check import check_program
from einsumcc.frontend.parser import parse_source
from einsumcc.ir.cascade import Cascade

if TYPE_CHECKING:
    import numpy as np

    from einsumcc.analysis.cost import CostReport
    from einsumcc.analysis.passes import PassReport
    from einsumcc.derive import Derivation


def source_of(spec: str | Path | Source) -> Source:
    """A path to a `.ein` file, or `.ein` text itself (anything containing a newline)."""
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, Path):
        return Source.from_path(spec)
    one_line = "\n" not in spec
    if one_line and (spec.endswith(".ein") or "/" in spec or " " not in spec.strip()):
        return Source.from_path(spec)  # a path: a missing file or a folder is an error here
    return Source("<string>", spec)


def bundled(name: str) -> Source:
    """A `.ein` file shipped with the package (``examples/`` in the source tree)."""
    text = resources.files("einsumcc.examples").joinpath(name).read_text("utf-8")
    return Source(f"examples/{name}", text)


def load_with_warnings(spec: str | Path | Source) -> tuple[Cascade, tuple[Diagnostic, ...]]:
    """Parse and check a cascade; returns it with the warnings found on the way."""
    source = source_of(spec)
    program = parse_source(source)  # syntax errors: EinError with the first error's position
    checked = check_program(program, source)  # semantic errors: all of them, sorted
    return checked.cascade, checked.warnings


def load(spec: str | Path | Source) -> Cascade:
    """Parse and check a cascade from a path or from `.ein` text."""
    return load_with_warnings(spec)[0]


def load_and_warn(spec: str | Path | Source) -> Cascade:
    """:func:`load`, printing the warnings on stderr (what every command does)."""
    cascade, warnings = load_with_warnings(spec)
    if warnings:
        print_diagnostics(warnings, cascade.source)
    return cascade


# ---------------------------------------------------------------- the verbs, on a Cascade


def as_cascade(spec: Cascade | str | Path | Source) -> Cascade:
    """A Cascade as given, or loaded from a path or `.ein` text."""
    return spec if isinstance(spec, Cascade) else load(spec)


def dims_of(cascade: Cascade, dims: Mapping[str, int]) -> dict[str, int]:
    """The extents a verb runs at: the cascade's own (``load(..., M=1024)``), then ``dims``."""
    return {**dict(cascade.dims), **dims}


def with_dims(cascade: Cascade, dims: Mapping[str, int]) -> Cascade:
    """``cascade`` with default extents ``dims``, checked against its ranks now."""
    if not dims:
        return cascade
    from einsumcc.ir.bind import bind

    merged = dims_of(cascade, dims)
    bind(cascade, merged)  # unknown ranks, extents that do not divide: an EinError now
    return replace(cascade, dims=tuple(sorted(merged.items())))


def passes(cascade: Cascade, rank: str) -> PassReport:
    from einsumcc.analysis.passes import analyze_passes

    if rank not in cascade.var_ranks.values():
        raise EinError.plain(
            f"{cascade.name} has no rank '{rank}'",
            hint="ranks: " + ", ".join(r.name for r in cascade.ranks),
        )
    return analyze_passes(cascade, rank).rank(rank)


def derive(cascade: Cascade, rank: str, tile: tuple[str, int] | None = None) -> Derivation:
    """Rewrite ``cascade`` to fewer passes over ``rank`` (:mod:`einsumcc.derive`)."""
    from einsumcc.derive import derive as run

    if rank not in cascade.var_ranks.values():
        raise EinError.plain(
            f"{cascade.name} has no rank '{rank}'",
            hint="ranks: " + ", ".join(r.name for r in cascade.ranks),
        )
    if tile is not None and tile[1] <= 0:
        raise EinError.plain(f"--tile {tile[0]}={tile[1]}: the tile size must be positive")
    return run(cascade, rank, tile)


def cost(cascade: Cascade) -> CostReport:
    from einsumcc.analysis.cost import analyze_cost

    return analyze_cost(cascade)


def evaluate(
    cascade: Cascade, inputs: Mapping[str, object] | None, dims: Mapping[str, int], seed: int = 0
) -> dict[str, np.ndarray]:
    from einsumcc.reference import evaluate as oracle
    from einsumcc.reference import random_inputs

    dims = dims_of(cascade, dims)
    given = dict(inputs or {})
    if len(given) < len(cascade.inputs):
        given = {**random_inputs(cascade, dims, seed=seed), **given}
    return oracle(cascade, given, dims)


def compile(cascade: Cascade, target: str, dims: Mapping[str, int], **options: Any) -> Any:
    compiler = backend.compiler(target)
    return compiler.compile(cascade, dims_of(cascade, dims), **options)


def simulate(
    cascade: Cascade,
    arch: str,
    mapping: str | None,
    dims: Mapping[str, int],
    target: str = "sim",
    **options: Any,
) -> backend.SimReport:
    simulator = backend.simulator(target)
    return simulator.simulate(cascade, arch, mapping, dims_of(cascade, dims), **options)


def map(
    cascade: Cascade, arch: str, dims: Mapping[str, int], target: str = "sim", **options: Any
) -> Any:
    return backend.mapper(target).map(cascade, arch, dims_of(cascade, dims), **options)
