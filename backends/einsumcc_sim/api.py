"""One simulate request, end to end: ``simulate_cascade`` (the library's entry point, which
``einsumcc.simulate`` calls) and :func:`simulate_request`, which ``einsumcc simulate`` runs.

A request loads the architecture and the mapping (the default mapping is chosen at the
request's dims), lowers and runs what it needs once (a :class:`~einsumcc_sim.work.Work`
memo shared by the default-mapping search and the simulation) and returns one
:class:`~einsumcc_sim.report.SimReport`, which carries the work it took.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc_sim.arch import Arch, load_arch
from einsumcc_sim.mapping import Mapping as SimMapping
from einsumcc_sim.mapping import load_mapping
from einsumcc_sim.model import ModelOptions, model_options
from einsumcc_sim.report import SimReport, default_for, simulate
from einsumcc_sim.work import Work

if TYPE_CHECKING:
    from einsumcc_sim.mapper import MapResult


@dataclass(frozen=True)
class Request:
    """What to simulate a cascade on, and how (the options of ``einsumcc simulate``)."""

    arch: str | Path | Arch = "fusemax"
    mapping: str | Path | None = None  # None: the default mapping, chosen at the dims
    model: str | ModelOptions = "faithful"
    timing: str = "default"
    exact: bool = False
    overrides: tuple[str, ...] = ()
    params: tuple[tuple[str, object], ...] = ()

    @property
    def options(self) -> ModelOptions:
        return model_options(self.model) if isinstance(self.model, str) else self.model

    @property
    def is_default(self) -> bool:
        return self.mapping is None or str(self.mapping) == "default"


def _arch(spec: str | Path | Arch, overrides: Sequence[str]) -> Arch:
    if isinstance(spec, Arch):
        if overrides:
            raise EinError.plain(
                "architecture overrides need an architecture preset or file, not an Arch",
                hint="pass arch by name or path, or apply the changes to the Arch",
            )
        return spec
    return load_arch(spec, overrides)


def setup(
    cascade: Cascade, req: Request, dims: Mapping[str, int], work: Work
) -> tuple[Arch, SimMapping]:
    """The architecture and the mapping of a request (the default one fitted at ``dims``)."""
    arch = _arch(req.arch, req.overrides)
    spec = "default" if req.mapping is None else req.mapping
    mapping = load_mapping(spec, cascade, arch, dict(req.params))
    extra = mapping.overrides_for(req.model)
    if extra:
        arch = _arch(req.arch, [*extra, *req.overrides])
    if req.is_default:
        # --exact and --timing scalesim map a GEMM by the array's dataflow, as SCALE-Sim does
        explore = not req.exact and req.timing == "default"
        mapping = default_for(cascade, arch, dims, req.timing, req.options, work, explore)
    return arch, mapping


def check_faithful(model: ModelOptions, needed: bool) -> None:
    """``--exact``, ``--functional`` and ``--timing scalesim`` need the faithful model."""
    if needed and model.name != "faithful":
        raise EinError.plain(
            f"--exact, --functional and --timing scalesim simulate the faithful cycle-level "
            f"model, not --model {model.name}",
            hint="drop --model or use --model faithful",
        )


def simulate_request(
    cascade: Cascade,
    req: Request,
    dims: Mapping[str, int],
    work: Work,
    *,
    functional: bool = False,
) -> SimReport:
    """The report of a request; under the faithful model with SCALE-Sim's fold-serial
    timing beside it (``scalesim_gap``).  ``functional``: a functional run follows (it
    needs the faithful model too)."""
    model = req.options
    arch, mapping = setup(cascade, req, dims, work)
    check_faithful(model, req.exact or functional or req.timing != "default")
    report = simulate(
        cascade, arch, mapping, dims, timing=req.timing, exact=req.exact, model=model, work=work
    )
    if model.name == "faithful":
        other_timing = "default" if req.timing == "scalesim" else "scalesim"
        other = simulate(
            cascade, arch, mapping, dims, timing=other_timing, exact=req.exact, work=work
        )
        sc, df = (report, other) if req.timing == "scalesim" else (other, report)
        gap = {
            "scalesim_cycles": sc.cycles,
            "default_cycles": df.cycles,
            "ratio": sc.cycles / df.cycles if df.cycles else 0.0,
            "gap_cycles": sc.cycles - df.cycles,
        }
        report = dataclasses.replace(report, scalesim_gap=gap)
    return dataclasses.replace(report, work=work.as_dict())


def simulate_cascade(
    cascade: Cascade,
    arch: str | Path | Arch = "fusemax",
    mapping: str | Path | None = None,
    dims: Mapping[str, int] | None = None,
    *,
    model: str = "faithful",
    timing: str = "default",
    exact: bool = False,
    overrides: Sequence[str] = (),
    params: Mapping[str, object] | None = None,
) -> SimReport:
    """Simulate ``cascade`` on ``arch`` (a preset name, a TOML path or an :class:`Arch`)
    mapped by ``mapping`` (None: the default mapping; a preset name; a TOML path) at
    ``dims``: the same report as ``einsumcc simulate`` (``.to_dict()`` is its ``--json``)."""
    if model not in ("faithful", "artifact"):
        raise EinError.plain(
            f"model {model!r}: expected 'faithful' or 'artifact'",
            hint="compare both with einsumcc simulate --model both",
        )
    req = Request(
        arch,
        mapping,
        model,
        timing,
        exact,
        tuple(overrides),
        tuple(sorted((params or {}).items())),
    )
    return simulate_request(cascade, req, dict(dims or {}), Work())


def map_cascade(
    cascade: Cascade,
    arch: str | Path | Arch = "fusemax",
    dims: Mapping[str, int] | None = None,
    *,
    objective: str = "cycles",
    budget: int | None = None,
    time: float | None = None,
    model: str = "faithful",
    overrides: Sequence[str] = (),
    progress: Callable[[int], object] | None = None,
) -> MapResult:
    """Search the mappings of ``cascade`` on ``arch`` at ``dims`` for the best by
    ``objective`` (``cycles``, ``energy`` or ``edp``) within ``budget`` simulations and
    ``time`` seconds (neither: 60 s): what ``einsumcc map`` prints (``.to_dict()`` is its
    ``--json``)."""
    from einsumcc_sim.mapper import search

    arch_ = _arch(arch, overrides)
    seconds = time if time is not None else (None if budget is not None else 60.0)
    return search(
        cascade,
        arch_,
        dict(dims or {}),
        objective=objective,
        budget=budget,
        seconds=seconds,
        model=model_options(model),
        progress=progress,
    )
