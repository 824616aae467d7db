"""Simulated cycles of cascades before and after ``einsumcc derive``, on the FuseMax arch.

    python benchmarks/derive.py [--sizes 4096,65536] [--tile 256] [--json]

Each cascade is derived to its minimum number of passes over its rank (tiles of ``--tile``
elements, FlashAttention's form for attention) and both are simulated with
``einsumcc.simulate(..., arch="fusemax")`` and the default mapping.  Reported, never asserted:
cycles, DRAM bytes and the speedup of the derived cascade.  The pass counts are the analysis'.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import einsumcc  # noqa: E402

# (file, rank, the other extents at each size)
CASES = [
    ("examples/attention_3pass.ein", "M", {"P": 4096}),
    ("examples/attention_2pass.ein", "M", {"P": 4096}),
    ("examples/softmax.ein", "M", {"P": 4096}),
    ("examples/layernorm.ein", "D", {"N": 4096}),
    ("examples/rmsnorm.ein", "D", {"N": 4096}),
    ("tests/derive/cascades/attention_lse.ein", "M", {"P": 4096}),
    ("tests/derive/cascades/differential.ein", "M", {"P": 4096}),
]


def run(sizes: list[int], tile: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for path, rank, others in CASES:
        c = einsumcc.load(ROOT / path)
        has_split = c.split_of(rank) is not None
        d = einsumcc.derive(c, rank, tile=None if has_split else (f"{rank}0", tile))
        for n in sizes:
            dims = {rank: n, **others}
            start = time.perf_counter()
            a = einsumcc.simulate(c, arch="fusemax", **dims)
            b = einsumcc.simulate(d.cascade, arch="fusemax", **dims)
            rows.append(
                {
                    "cascade": c.name,
                    "rank": rank,
                    "extent": n,
                    "passes": [d.passes_before, d.passes_after],
                    "cycles": [a.cycles, b.cycles],
                    "dram_bytes": [a.dram_bytes, b.dram_bytes],
                    "speedup": round(a.cycles / b.cycles, 3) if b.cycles else None,
                    "seconds": round(time.perf_counter() - start, 2),
                }
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4096,65536", help="extents of the derived rank")
    ap.add_argument("--tile", type=int, default=256, help="tile of the derived rank (M0)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = run([int(s) for s in args.sizes.split(",")], args.tile)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'cascade':<24} {'rank':>4} {'extent':>7} {'passes':>7} {'cycles (original)':>18} "
        f"{'cycles (derived)':>17} {'speedup':>8} {'DRAM MB':>17}"
    )
    for r in rows:
        p, cy, dr = r["passes"], r["cycles"], r["dram_bytes"]
        assert isinstance(p, list)
        assert isinstance(cy, list)
        assert isinstance(dr, list)
        print(
            f"{r['cascade']:<24} {r['rank']:>4} {r['extent']:>7} {p[0]:>3} -> {p[1]:<1} "
            f"{cy[0]:>18,} {cy[1]:>17,} {r['speedup']:>8} "
            f"{dr[0] / 1e6:>8.1f} -> {dr[1] / 1e6:<7.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
