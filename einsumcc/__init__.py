"""einsumcc: attention algorithms as cascades of extended Einsums.

The Python API mirrors the command line: :func:`load` a cascade, then :func:`passes`
(``einsumcc analyze passes``), :func:`evaluate` (``einsumcc run``, the numpy oracle),
:func:`compile` (``einsumcc compile``) and :func:`simulate` (``einsumcc simulate``).  The
reports are frozen values; the command line prints its text and ``--json`` from the same
objects.

>>> import einsumcc
>>> c = einsumcc.load("rank K = 2\\ninput A[K]\\noutput Z[]\\nZ[] = sum{k} A[k]\\n")
>>> c.outputs[0].name
'Z'
>>> float(einsumcc.evaluate(c, {"A": [1.0, 2.0]})["Z"])
3.0

``import einsumcc`` imports neither sympy, networkx, numpy, torch nor triton: each is imported
by the verb that needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import einsumcc.derive as _derive_stage  # noqa: F401 - loaded first: `derive` below is the API
from einsumcc import backend, pipeline
from einsumcc.diagnostics import EinError, Source
from einsumcc.ir.cascade import Cascade

if TYPE_CHECKING:
    import numpy as np

    from einsumcc.analysis.cost import CostReport
    from einsumcc.analysis.passes import PassReport
    from einsumcc.derive import Derivation

__version__ = "0.1.0"
__all__ = [
    "Cascade",
    "EinError",
    "__version__",
    "backends",
    "compile",
    "cost",
    "derive",
    "evaluate",
    "example",
    "load",
    "map",
    "passes",
    "simulate",
]

Spec = Cascade | str | Path | Source


def example(name: str) -> Source:
    """A `.ein` file shipped with einsumcc (``examples/`` in the source tree), for :func:`load`.

    >>> einsumcc.load(einsumcc.example("attention_1pass.ein")).name
    'attention_1pass'
    """
    return pipeline.bundled(name)


def load(spec: Spec, **dims: int) -> Cascade:
    """Parse and check a cascade: a path, `.ein` text, or :func:`example`.

    Keyword extents become the cascade's defaults for every verb below (checked now: an
    unknown rank or an extent that does not divide is an :class:`EinError`).

    >>> c = einsumcc.load(einsumcc.example("attention_1pass.ein"), M=1024, P=256)
    >>> dict(c.dims)
    {'M': 1024, 'P': 256}
    >>> einsumcc.load(einsumcc.example("attention_1pass.ein"), Q=3)
    Traceback (most recent call last):
    ...
    einsumcc.diagnostics.EinError: error: --dims names unknown rank 'Q'
    hint: ranks of attention_1pass: E, F, M, P, M0, M1
    """
    return pipeline.with_dims(pipeline.as_cascade(spec), dims)


def passes(cascade: Spec, rank: str) -> PassReport:
    """The lower bound on the passes over ``rank`` that any mapping makes (FuseMax §III).

    >>> r = einsumcc.passes(einsumcc.load(einsumcc.example("attention_3pass.ein")), "M")
    >>> r
    <PassReport attention_3pass M: 3 passes>
    >>> r.count, r.per_einsum["SN"]
    (3, 2)
    >>> print(r.witnesses[0])
    pass 2: GM (line 18) reduces M fully; SN (line 19) needs GM while re-reading the M fiber of QK
    >>> r.to_dict()["passes"]                # the object `analyze passes --rank M --json` prints
    {'M': 3}
    """
    return pipeline.passes(pipeline.as_cascade(spec=cascade), rank)


def derive(cascade: Spec, rank: str, *, tile: tuple[str, int] | None = None) -> Derivation:
    """Rewrite a cascade into an equivalent one with fewer passes over ``rank``
    (``einsumcc derive``): division deferral, running max with exp correction factors,
    moments, sink folding, fusion.  The frozen :class:`~einsumcc.derive.Derivation` holds the
    derived cascade and its `.ein` text, the rewrites with their sympy certificates, the pass
    bounds before and after and why each remaining pass exists.  ``tile=("M0", 64)`` walks
    the rank by tiles of 64 (FlashAttention's form); without it, one element per step.

    >>> d = einsumcc.derive(einsumcc.example("attention_3pass.ein"), "M")
    >>> d.passes_before, d.passes_after, d.proved
    (3, 1, True)
    >>> print(d.cascade.outputs[0].name, [a.rewrite for a in d.rewrites][-1])
    AV fusion
    >>> d.check(dims={"M": 16, "P": 4}).ok       # the oracle, random and ±80 scores
    True
    >>> einsumcc.derive(einsumcc.example("softmax.ein"), "M").passes_after
    2
    """
    return pipeline.derive(pipeline.as_cascade(cascade), rank, tile)


def cost(cascade: Spec) -> CostReport:
    """Operation counts and compulsory traffic per Einsum (``einsumcc analyze cost``)."""
    return pipeline.cost(pipeline.as_cascade(cascade))


def evaluate(
    cascade: Spec, inputs: Mapping[str, object] | None = None, *, seed: int = 0, **dims: int
) -> dict[str, np.ndarray]:
    """Run the numpy oracle: outputs by name (float64).  Inputs not given are seeded random
    values, as ``einsumcc run --seed``.

    >>> out = einsumcc.evaluate(einsumcc.example("attention_1pass.ein"), M=256, P=128)
    >>> out["AV"].shape
    (64, 128)
    """
    return pipeline.evaluate(pipeline.as_cascade(cascade), inputs, dims, seed)


def compile(cascade: Spec, target: str = "triton", **options: Any) -> Any:
    """Compile a cascade into a callable taking torch tensors (in declaration order) and
    returning the outputs.  Integer keywords are extents fixed at compile time; ``tiles=``
    and ``materialize=`` are passed to the schedule.  Ranks without an extent are read from
    the inputs' shapes at every call.  Needs the ``triton`` extra.

    >>> k = einsumcc.compile(einsumcc.example("attention_1pass.ein"), M=256)  # doctest: +SKIP
    >>> (av,) = k(q, k_, v)                                                  # doctest: +SKIP
    """
    dims = {k: v for k, v in options.items() if isinstance(v, int) and not isinstance(v, bool)}
    rest = {k: v for k, v in options.items() if k not in dims}
    return pipeline.compile(pipeline.as_cascade(cascade), target, dims, **rest)


def simulate(
    cascade: Spec,
    arch: str = "fusemax",
    mapping: str | None = None,
    *,
    target: str = "sim",
    **options: Any,
) -> backend.SimReport:
    """Simulate a cascade on an accelerator (``einsumcc simulate``): ``arch`` is a preset
    (``fusemax``, ``flat``, ``systolic``) or an architecture TOML file, ``mapping`` a preset or
    a mapping TOML file (None: the default mapping).  Integer keywords are extents; others
    (``model=``, ``timing=``, ``exact=``, ``overrides=``, ``params=``) are the simulator's
    options.  ``.to_dict()`` equals ``einsumcc simulate --json``.

    >>> c = einsumcc.load(einsumcc.example("matmul.ein"), M=64, N=64, K=64)
    >>> r = einsumcc.simulate(c, arch="systolic")
    >>> r.cycles == r.to_dict()["cycles"] and r.dram_bytes > 0
    True
    """
    dims = {k: v for k, v in options.items() if isinstance(v, int) and not isinstance(v, bool)}
    rest = {k: v for k, v in options.items() if k not in dims}
    return pipeline.simulate(pipeline.as_cascade(cascade), arch, mapping, dims, target, **rest)


def map(
    cascade: Spec,
    arch: str = "fusemax",
    *,
    objective: str = "cycles",
    budget: int | None = None,
    time: float | None = None,
    target: str = "sim",
    **dims: int,
) -> Any:
    """Search the mappings of a cascade onto an architecture (``einsumcc map``) for the best by
    ``objective`` (``cycles``, ``energy`` or ``edp``), within ``budget`` simulations or
    ``time`` seconds.  The frozen result has ``.best`` (cycles, energy, the mapping), the
    Pareto front of cycles and energy, the mappings considered and simulated, and
    ``.to_dict()``, the object ``einsumcc map --json`` prints.

    >>> c = einsumcc.load(einsumcc.example("matmul.ein"), M=64, N=64, K=64)
    >>> r = einsumcc.map(c, arch="systolic", budget=4)
    >>> r.best.cycles <= einsumcc.simulate(c, arch="systolic").cycles
    True
    """
    return pipeline.map(pipeline.as_cascade(cascade), arch, dims, target, objective=objective,
                        budget=budget, time=time)  # fmt: skip


def backends() -> list[str]:
    """The names of the installed backends (entry points ``einsumcc.backends``).

    >>> [n for n in einsumcc.backends() if n in ("sim", "triton")]
    ['sim', 'triton']
    """
    return backend.names()
