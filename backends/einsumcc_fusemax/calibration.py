"""The two energies per architecture that the FuseMax artifact does not give.

The artifact's energies come from Accelergy at 45 nm (spec fusemax.md §9.5).  Its tables
lack the global buffer's access energy at the sizes simulated (16 MiB for FuseMax, 32 MiB
for FLAT, 4096-bit rows) and the 2D register files'.  Each is one global constant in the
architecture file (``energy.buffer_read``/``buffer_write`` and ``energy.array2d.rf_*``),
fitted once, for all points at once, to the artifact's total energies: a non-negative least
squares of the relative error over every row of the designs on that architecture
(+Architecture and +Binding on ``fusemax``; FLAT, +Cascade and unfused on ``flat``), with
the counts of this simulator and every other energy of the table fixed.  Nothing is fitted
per point, per model or per length.

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
