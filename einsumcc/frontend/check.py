"""Semantic checks: syntax tree → cascade IR, or every error found at once.

The checker is a sequence of small parts, each with one job, sharing a :class:`Context`
(the name tables and the diagnostics):

* :mod:`~einsumcc.frontend.declarations`: scopes and name clashes;
* :mod:`~einsumcc.frontend.extents`: rank extents and splits;
* :mod:`~einsumcc.frontend.constants`: params, fills and folding;
* :mod:`~einsumcc.frontend.tensors`: dimensions and dtype rules;
* :mod:`~einsumcc.frontend.indices`: index typing (exact affine expressions);
* :mod:`~einsumcc.frontend.values`, :mod:`~einsumcc.frontend.einsums` and
  :mod:`~einsumcc.frontend.filters`: right-hand sides, the Einstein rule, scoping, filters;
* :mod:`~einsumcc.frontend.structure`: inits and tensor roles;
* :mod:`~einsumcc.frontend.assemble`: the dependency structure, the Cascade and warnings.

Errors are collected and raised together, sorted by position.  Checking imports neither
sympy, networkx nor numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from einsumcc.diagnostics import Diagnostic, Source
from einsumcc.frontend import assemble
from einsumcc.frontend import syntax as s
from einsumcc.frontend.assemble import EXPECTATIONS
from einsumcc.frontend.constants import Constants
from einsumcc.frontend.context import Context
from einsumcc.frontend.declarations import Declarations
from einsumcc.frontend.einsums import Einsums
from einsumcc.frontend.extents import Extents
from einsumcc.frontend.indices import Indices
from einsumcc.frontend.points import PointValues
from einsumcc.frontend.structure import Inits, Roles
from einsumcc.frontend.tensors import Tensors
from einsumcc.frontend.values import Values
from einsumcc.ir.cascade import Cascade

__all__ = ["EXPECTATIONS", "Checked", "check_program"]


@dataclass(frozen=True)
class Checked:
    cascade: Cascade
    warnings: tuple[Diagnostic, ...]


def check_program(program: s.Program, source: Source | None = None) -> Checked:
    """Check ``program`` and build its IR.  Raises :class:`EinError` listing every error."""
    ctx = Context(program, source)
    Declarations(ctx).collect()
    extents = Extents(ctx)
    extents.resolve()
    constants = Constants(ctx, extents)
    constants.resolve_params()
    indices = Indices(ctx)
    Tensors(ctx, constants, indices).resolve()
    values = Values(ctx, constants, indices)
    Einsums(ctx, indices, values).check()
    Inits(ctx, constants, PointValues(ctx, constants, values)).check()
    Roles(ctx).check()
    stages = assemble.check_dependencies(ctx)
    expects = assemble.check_expects(ctx)
    ctx.sink.raise_if_errors()
    cascade = assemble.build(ctx, stages, expects)
    assemble.warn_fills(ctx, constants, cascade)
    assemble.warn_split_mixing(ctx, cascade)
    ctx.sink.raise_if_errors()
    return Checked(cascade, tuple(sorted(ctx.sink.warnings, key=Diagnostic.sort_key)))
