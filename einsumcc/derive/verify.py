"""The whole result against the original on the numpy oracle.

Random inputs first, then the same inputs scaled so that the largest value the cascade
computes along the rank before any statistic (the scores of attention) reaches ±80, and then
±800: there the derived form must be finite exactly where the original is (a running max
keeps ``exp`` bounded as the global max did; a naive ``exp(s) * exp(-G)`` would overflow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from einsumcc.ir.cascade import Cascade

if TYPE_CHECKING:
    from einsumcc.derive.engine import Derivation

RTOL = 1e-7


@dataclass(frozen=True)
class Case:
    label: str
    scale: float
    peak: float  # the largest magnitude along the rank before any statistic
    max_rel_error: float
    finite_agree: bool

    @property
    def ok(self) -> bool:
        return self.finite_agree and self.max_rel_error <= RTOL

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        finite = "finite where the original is" if self.finite_agree else "FINITENESS DIFFERS"
        return (
            f"{self.label}: inputs x{self.scale:.3g} (values along the rank up to "
            f"±{self.peak:.3g}): worst relative error {self.max_rel_error:.2e}, {finite}: "
            f"{verdict}"
        )


@dataclass(frozen=True)
class OracleCheck:
    dims: tuple[tuple[str, int], ...]
    cases: tuple[Case, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.dims)
        return "\n".join([f"oracle check at {shown}:", *(f"  {c}" for c in self.cases)])


def _unit(c: Cascade, rank: str) -> int:
    """The product of the fixed extents of the ranks ``rank`` is split into (1: no split)."""
    split = c.split_of(rank)
    size = 1
    for k in split.children if split is not None else ():
        r = c.rank(k)
        size *= int(r.extent) if r.extent is not None and r.extent.is_number else 1
    return size


def check_dims(d: Derivation) -> dict[str, int]:
    """Extents for the check: the declared ones, and small ones for the others, the first
    that both cascades accept (splits must divide); a split or tiled rank gets three tiles."""
    from einsumcc.diagnostics import EinError
    from einsumcc.ir.bind import bind

    c = d.original
    unbound = [r.name for r in c.ranks if r.extent is None]
    units = {u: _unit(c, u) for u in unbound}
    if d.tile:
        units[d.rank] = d.tile[1]
    first: dict[str, int] = {}
    for n in (6, 8, 16, 32, 64, 128, 256):
        for k in (3, 6, 16):
            dims = {u: (k * units[u] if units[u] > 1 else n) for u in unbound}
            if d.rank in dims and units[d.rank] == 1:
                dims[d.rank] = 4 * n
            if d.tile:
                dims[d.rank] = k * d.tile[1]
            first = first or dims
            try:
                bind(c, dims)
                bind(d.cascade, dims)
            except EinError:
                continue
            return dims
    return first


def _peak(c: Cascade, rank: str, values: dict[str, np.ndarray]) -> float:
    """The largest magnitude among the tensors computed along the rank before a statistic."""
    from einsumcc.derive.symbolic import Symbolic

    sym = Symbolic(c, rank)
    best = 0.0
    for t in c.tensors:
        if t.role.value != "tensor" or sym.depends(t.name) or t.is_iterative:
            continue
        if not t.dtype.is_float:
            continue
        ranks = {c.var_ranks[v] for v in sym.family}
        if not set(t.ranks) & ranks:
            continue
        a = np.asarray(values[t.name])
        finite = a[np.isfinite(a) & (np.abs(a) < 1e20)]  # not a masked fill such as -1e30
        if finite.size:
            best = max(best, float(np.max(np.abs(finite))))
    if best == 0.0:
        for t in (t for t in c.inputs if t.dtype.is_float):
            a = np.asarray(values[t.name])
            best = max(best, float(np.max(np.abs(a)))) if a.size else best
    return best


def _scaled(
    c: Cascade, rank: str, inputs: dict[str, np.ndarray], dims: dict[str, int], target: float
) -> tuple[float, float]:
    """The input scale at which the peak reaches ``target`` (a few fixed-point steps)."""
    import math

    from einsumcc.reference import evaluate

    def peak_at(scale: float) -> float:
        scaled = _scale(c, inputs, scale)
        return _peak(c, rank, {**scaled, **evaluate(c, scaled, dims, intermediates=True)})

    scale, peak = 1.0, peak_at(1.0)
    degree = 1.0  # how the peak grows with the inputs' scale (2 for scores Q·K)
    for _ in range(6):
        if peak == 0.0 or abs(peak - target) <= 1e-6 * target:
            break
        new = scale * (target / peak) ** (1 / degree)
        if not (math.isfinite(new) and new > 0):
            break
        new_peak = peak_at(new)
        if new_peak > 0 and abs(math.log(new / scale)) > 1e-9:
            degree = max(0.25, math.log(new_peak / peak) / math.log(new / scale))
        scale, peak = new, new_peak
    return scale, peak


def _scale(c: Cascade, inputs: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
    """Float inputs times ``scale``; integer and boolean ones (ids, masks) as they are."""
    return {k: v * scale if c.tensor(k).dtype.is_float else v for k, v in inputs.items()}


def _compare(want: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> tuple[float, bool]:
    worst, agree = 0.0, True
    for name, ref in want.items():
        ref = np.asarray(ref, dtype=np.float64)
        out = np.asarray(got[name], dtype=np.float64)
        if not np.array_equal(np.isfinite(ref), np.isfinite(out)):
            agree = False
        both = np.isfinite(ref) & np.isfinite(out)
        if not both.any():
            continue
        scale = max(float(np.max(np.abs(ref[both]))), 1e-300)
        worst = max(worst, float(np.max(np.abs(out[both] - ref[both]))) / scale)
    return worst, agree


def compare(d: Derivation, seed: int = 0, dims: dict[str, int] | None = None) -> OracleCheck:
    from einsumcc.reference import evaluate, random_inputs

    dims = {**check_dims(d), **(dims or {})}
    cases: list[Case] = []
    for k, s in enumerate((seed, seed + 1)):
        inputs = random_inputs(d.original, dims, seed=s)
        bases = [("random inputs", 1.0, 0.0)]
        if k == 0:
            for target in (80.0, 800.0):
                scale, peak = _scaled(d.original, d.rank, inputs, dims, target)
                bases.append((f"scores ±{target:g}", scale, peak))
        for label, scale, peak in bases:
            x = _scale(d.original, inputs, scale)
            want = evaluate(d.original, x, dims)
            got = evaluate(d.cascade, x, dims)
            err, agree = _compare(want, got)
            if not peak:
                peak = _peak(
                    d.original, d.rank, {**x, **evaluate(d.original, x, dims, intermediates=True)}
                )
            cases.append(Case(f"seed {s}, {label}", scale, peak, err, agree))
    return OracleCheck(tuple(sorted(dims.items())), tuple(cases))
