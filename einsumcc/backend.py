"""Backends are plugins: what a backend offers, and how the core finds one.

A backend is an object registered under the entry-point group ``einsumcc.backends`` in its
distribution's metadata (``pyproject.toml``)::

    [project.entry-points."einsumcc.backends"]
    triton = "einsumcc_triton.plugin:BACKEND"

The core never imports a backend's modules: it loads the registered object through
``importlib.metadata`` and uses only the protocols below.  Every backend has a name and may add
command-line subcommands; what else it can do is told by the capability protocols it satisfies
(:class:`Compiler`, :class:`Runner`, :class:`Simulator`, :class:`Mapper`,
:class:`Tour`).

>>> "sim" in names() and "triton" in names()
True
>>> get("no-such-backend")
Traceback (most recent call last):
...
einsumcc.diagnostics.EinError: error: no backend 'no-such-backend' is installed (installed: ...)
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from einsumcc.diagnostics import EinError

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np

    from einsumcc.ir.cascade import Cascade

    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

GROUP = "einsumcc.backends"

# Backends that ship with einsumcc but need an optional extra: the install hint for each.
EXTRAS = {"triton": "pip install torch==2.13.0 && pip install 'einsumcc[triton]'"}

Handler = Callable[[argparse.Namespace], int]


@runtime_checkable
class Backend(Protocol):
    """Every backend: a name, a one-line summary, and the subcommands it adds.

    ``add_commands`` registers argparse subparsers on ``sub``, each with
    ``set_defaults(handler=...)``, a function from the parsed arguments to the exit status.  It
    runs for every invocation of ``einsumcc`` (``--help`` included), so it must import nothing
    heavy.
    """

    name: str
    summary: str

    def add_commands(self, sub: Subcommands) -> None: ...


@runtime_checkable
class Compiler(Protocol):
    """A backend that compiles a cascade into a callable (``einsumcc.compile``)."""

    def compile(self, cascade: Cascade, dims: Mapping[str, int], **options: Any) -> Any: ...


@runtime_checkable
class Runner(Protocol):
    """A backend that ``einsumcc run --target NAME`` can evaluate a cascade on.

    ``add_run_options`` adds the options the target reads to ``einsumcc run`` (it must accept
    that they are absent when another target is chosen); ``run_options`` names them, so that
    the core can reject them for a target that ignores them.
    """

    run_options: tuple[str, ...]

    def add_run_options(self, p: argparse.ArgumentParser) -> None: ...

    def run(
        self,
        cascade: Cascade,
        inputs: Mapping[str, np.ndarray],
        dims: Mapping[str, int],
        args: argparse.Namespace,
    ) -> dict[str, np.ndarray]: ...


@runtime_checkable
class Simulator(Protocol):
    """A backend that times a cascade on a modelled machine (``einsumcc.simulate``)."""

    def simulate(
        self,
        cascade: Cascade,
        arch: str,
        mapping: str | None,
        dims: Mapping[str, int],
        **options: Any,
    ) -> SimReport: ...


@runtime_checkable
class Mapper(Protocol):
    """A backend that searches mappings of a cascade onto a machine (``einsumcc.map``)."""

    def map(self, cascade: Cascade, arch: str, dims: Mapping[str, int], **options: Any) -> Any: ...


@runtime_checkable
class Tour(Protocol):
    """A backend that shows itself in ``einsumcc demo``: ``tour`` prints its section."""

    tour_order: int

    def tour(self) -> None: ...


@runtime_checkable
class SimReport(Protocol):
    """What a simulation reports (frozen; ``to_dict()`` equals ``simulate --json``)."""

    @property
    def cycles(self) -> int: ...

    @property
    def energy_pj(self) -> float: ...

    @property
    def utilization(self) -> Mapping[str, float]: ...

    @property
    def dram_bytes(self) -> int: ...

    @property
    def per_einsum(self) -> Mapping[str, Any]: ...

    def to_dict(self) -> dict[str, Any]: ...


@functools.cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def names() -> list[str]:
    """The registered backends' names, sorted."""
    return sorted(_entry_points())


@functools.cache
def get(name: str) -> Backend:
    """The backend registered as ``name``; a clear error when it is not installed."""
    ep = _entry_points().get(name)
    if ep is None:
        installed = ", ".join(names()) or "none"
        hint = EXTRAS.get(name)
        raise EinError.plain(
            f"no backend '{name}' is installed (installed: {installed})",
            hint=f"it comes with an extra: {hint}" if hint else None,
        )
    backend = ep.load()
    if not isinstance(backend, Backend):
        raise EinError.plain(
            f"the backend registered as '{name}' ({ep.value}) is not an einsumcc backend",
            hint="an entry point of einsumcc.backends names an object with name, summary "
            "and add_commands (einsumcc.backend.Backend)",
        )
    return backend


@functools.cache
def _load_all() -> tuple[tuple[Backend, ...], tuple[str, ...]]:
    found: list[Backend] = []
    problems: list[str] = []
    for n in names():
        try:
            found.append(get(n))
        except Exception as exc:  # a broken plugin must not take the core down with it
            problems.append(f"backend '{n}' failed to load ({type(exc).__name__}: {exc})")
    return tuple(found), tuple(problems)


def loaded() -> list[Backend]:
    """Every registered backend that loads (in name order); see :func:`problems`."""
    return list(_load_all()[0])


def problems() -> list[str]:
    """Why registered backends failed to load, one line each (empty when all load)."""
    return list(_load_all()[1])


def _capable(name: str, capability: Any, verb: str) -> Any:
    backend = get(name)
    if not isinstance(backend, capability):
        able = [b.name for b in loaded() if isinstance(b, capability)]
        raise EinError.plain(
            f"the '{name}' backend cannot {verb}",
            hint=f"backends that can: {', '.join(able) or 'none installed'}",
        )
    return backend


def compiler(name: str) -> Compiler:
    """Backend ``name`` as a :class:`Compiler`, or a clear error."""
    found: Compiler = _capable(name, Compiler, "compile")
    return found


def runner(name: str) -> Runner:
    """Backend ``name`` as a :class:`Runner` (``einsumcc run --target``), or a clear error."""
    found: Runner = _capable(name, Runner, "run a cascade")
    return found


def mapper(name: str) -> Mapper:
    """Backend ``name`` as a :class:`Mapper`, or a clear error."""
    found: Mapper = _capable(name, Mapper, "search mappings")
    return found


def simulator(name: str) -> Simulator:
    """Backend ``name`` as a :class:`Simulator`, or a clear error."""
    found: Simulator = _capable(name, Simulator, "simulate")
    return found
