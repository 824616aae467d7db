"""Static GPU report, no GPU needed: every example's kernels compiled ahead of time for sm_90
(and sm_80) with Triton's cache bypassed, then ptxas -v.  Per kernel: compile time, shared
memory, registers, spill bytes and the number of wgmma (Hopper) / mma.sync (Ampere) tensor-core
instructions in the PTX, at the default tiles.

    python benchmarks/triton_static.py [--arch 90 --arch 80]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from einsumcc.pipeline import load
from einsumcc.schedule import derive_schedule
from einsumcc_triton import compile
from einsumcc_triton.aot import aot_compile_many

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, action="append", help="80, 90, ... (default: 90 80)")
    args = parser.parse_args()
    archs = args.arch or [90, 80]
    directory = Path(tempfile.mkdtemp(prefix="einsumcc-static-"))
    jobs = []
    names = []
    gen = {}
    for path in sorted(EXAMPLES.rglob("*.ein")):
        start = time.perf_counter()
        c = load(path)
        s = derive_schedule(c)
        k = compile(c, directory=directory)
        gen[path] = (time.perf_counter() - start, s)
        for arch in archs:
            jobs.append((k, arch))
            names.append((path.relative_to(EXAMPLES).as_posix(), arch))
    results = aot_compile_many(jobs, fresh=True)
    print(
        "AOT compilation of every example's kernels (Triton cache bypassed; default tiles; "
        "registers and spills from ptxas -v)"
    )
    head = (
        f"  {'example':<28} {'sm':>3} {'kernel':<34} {'warps':>5} {'compile':>8} "
        f"{'smem':>8} {'regs':>5} {'spill st':>8} {'spill ld':>8} {'wgmma':>6} {'mma':>5}"
    )
    print(head)
    print("  " + "-" * (len(head) - 2))
    for (name, arch), stats in zip(names, results, strict=True):
        for st in stats:
            print(
                f"  {name:<28} {arch:>3} {st.kernel:<34} {st.num_warps:>5} "
                f"{st.compile_seconds:7.2f}s {st.shared_bytes:>8} {st.registers:>5} "
                f"{st.spill_stores:>8} {st.spill_loads:>8} {st.wgmma:>6} {st.mma:>5}"
            )
    print()
    print(".ein -> Triton source (first, cold call per example, including file reading):")
    for path, (seconds, s) in gen.items():
        tiles = ", ".join(f"{r}={b}" for r, b in s.tiles)
        print(
            f"  {path.relative_to(EXAMPLES).as_posix():<28} {seconds * 1e3:7.1f} ms  tiles {tiles}"
        )


if __name__ == "__main__":
    main()
