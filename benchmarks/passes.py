"""Pass-analysis speed on a 20-Einsum cascade (target <= 20 ms): the 1-pass attention followed by
an output projection, a residual and an RMSNorm over the feature rank.

    python benchmarks/passes.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from einsumcc.analysis.passes import analyze_passes
from einsumcc.pipeline import load

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXTRA = """
input  WO[D, F] : f16
input  X[D, P] : f16
output Y[D, P] : f16
O[d, p]   = WO[d, f] * AV[f, p]
RES[d, p] = O[d, p] + X[d, p]
SQ[d, p]  = RES[d, p] * RES[d, p]
SS[p]     = sum{d} SQ[d, p]
MS[p]     = SS[p] / D
INV[p]    = rsqrt(MS[p] + 1e-6)
Y[d, p]   = RES[d, p] * INV[p]
"""


def cascade_text() -> str:
    text = (EXAMPLES / "attention_1pass.ein").read_text()
    text = text.replace("output AV[F, P] : f16", "tensor AV[F, P] : f16\nrank D = 512")
    text = text.replace("expect passes(M) == 1", "")
    return text + EXTRA


def main() -> None:
    c = load(cascade_text())
    assert len(c.einsums) == 21, len(c.einsums)
    analyze_passes(c)
    times = []
    for _ in range(30):
        start = time.perf_counter()
        report = analyze_passes(c)
        times.append(time.perf_counter() - start)
    print(f"pass analysis of a {len(c.einsums)}-Einsum cascade over all {len(c.ranks)} ranks:")
    print(
        f"  best {min(times) * 1e3:.1f} ms, "
        f"median {statistics.median(times) * 1e3:.1f} ms (target <= 20 ms)"
    )
    one = []
    for _ in range(30):
        start = time.perf_counter()
        analyze_passes(c, "M")
        one.append(time.perf_counter() - start)
    print(
        f"  one rank (M): best {min(one) * 1e3:.1f} ms, "
        f"median {statistics.median(one) * 1e3:.1f} ms"
    )
    print("  passes:", report.passes)


if __name__ == "__main__":
    main()
