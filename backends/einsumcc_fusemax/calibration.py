"""The calibrated energy model: an explicit, labelled option, not the default.

The default energies are *sourced* (the artifact's Accelergy table for compute and DRAM,
CACTI 7 for the buffer and the register files; ``benchmarks/energy_tables.py``).  The
calibrated model replaces two of them per architecture, the global buffer's access energy
and the 2D register file's, by constants fitted to the artifact's total energies: a
non-negative least squares of the relative error over every row of the designs on that
architecture (+Architecture and +Binding on ``fusemax``; FLAT, +Cascade and unfused on
``flat``), with the counts of this simulator and every other energy sourced.  The fitted
figures live in the presets' ``[energy.calibrated]`` tables, used only with
``energy.model = "calibrated"`` and named in every output that uses them.

The fit is checked leave-one-model-out (:func:`leave_one_model_out`): fitted without one
model's rows, how far is it off on them?  BERT, TrXL and T5 share their shapes, so only XLM
is a genuinely new shape to the fit.

>>> [round(x, 6) for x in fit([(2.0, 1.0, 1.0, 10.0), (4.0, 1.0, 2.0, 16.0)])]
[2.5, 4.0]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from einsumcc_fusemax.results import Row

FAMILIES = {"fusemax": ("arch", "binding"), "flat": ("flat", "cascade", "unfused")}


def fit(samples: Iterable[tuple[float, float, float, float]]) -> tuple[float, float]:
    """Non-negative (e_buffer, e_rf) minimizing the relative error over samples of
    (buffer accesses, 2D register-file accesses, energy of everything else, target)."""
    rows, y = [], []
    for acc, rf, rest, target in samples:
        rows.append([acc / target, rf / target])
        y.append((target - rest) / target)
    a, b = np.asarray(rows, dtype=float), np.asarray(y, dtype=float)
    best: tuple[float, np.ndarray] | None = None
    for mask in itertools.product((False, True), repeat=2):
        idx = [i for i in range(2) if mask[i]]
        x = np.zeros(2)
        if idx:
            sol, *_ = np.linalg.lstsq(a[:, idx], b, rcond=None)
            if (sol < 0).any():
                continue
            x[idx] = sol
        r = float(np.linalg.norm(a @ x - b))
        if best is None or r < best[0]:
            best = (r, x)
    assert best is not None
    return float(best[1][0]), float(best[1][1])


def samples(
    ours: Mapping[str, Sequence[Row]], artifact: Mapping[str, Sequence[Row]], family: str
) -> list[tuple[float, float, float, float]]:
    """(buffer accesses, 2D RF accesses, other energy, artifact energy) per shared point."""
    out = []
    for key in FAMILIES[family]:
        ref = {(r.model, r.seq): r for r in artifact.get(key, ())}
        for r in ours.get(key, ()):
            theirs = ref.get((r.model, r.seq))
            if theirs is None:
                continue
            x = dict(r.extra)
            rest = r.energy - x.get("energy.buffer", 0.0) - x.get("energy.2d.rf", 0.0)
            out.append(
                (
                    x.get("count.buffer_accesses", 0.0),
                    x.get("count.rf2d_accesses", 0.0),
                    rest,
                    theirs.energy,
                )
            )
    return out


def calibrate(
    ours: Mapping[str, Sequence[Row]], artifact: Mapping[str, Sequence[Row]]
) -> dict[str, tuple[float, float]]:
    """The fitted (buffer access pJ, 2D register-file access pJ) per architecture."""
    return {fam: fit(samples(ours, artifact, fam)) for fam in FAMILIES}


def predict(sample: tuple[float, float, float, float], x: tuple[float, float]) -> float:
    """The energy of a sample under the fitted (buffer, 2D register file) pJ."""
    acc, rf, rest, _ = sample
    return rest + x[0] * acc + x[1] * rf


def leave_one_model_out(
    ours: Mapping[str, Sequence[Row]], artifact: Mapping[str, Sequence[Row]], family: str
) -> list[tuple[str, tuple[float, float], float]]:
    """Per model left out: the fit without its rows, and the worst relative error of that
    fit on its rows (signed, the largest in magnitude)."""
    out = []
    models = sorted({r.model for key in FAMILIES[family] for r in ours.get(key, ())})
    for held in models:
        x = fit(samples(_rows(ours, held, False), artifact, family))
        test = samples(_rows(ours, held, True), artifact, family)
        errs = [(predict(s, x) - s[3]) / s[3] for s in test]
        out.append((held, x, max(errs, key=abs)))
    return out


def _rows(rows: Mapping[str, Sequence[Row]], model: str, of_it: bool) -> dict[str, list[Row]]:
    """The rows of ``model`` (``of_it``), or all the others."""
    return {k: [r for r in v if (r.model == model) == of_it] for k, v in rows.items()}
