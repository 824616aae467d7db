"""The launch cost model (einsumcc_triton.tuning) against ptxas, no GPU needed.

For every example at its default tiles, for FuseMax's declared 256-key chunks and for the
one-pass attention at head dimensions 128 and 256, at 32, 64 and 128 queries, each target's
candidates (4/8 warps x 1/3 stages) are compiled ahead of time; the table gives the model's
registers and shared memory next to ptxas', whether the model predicted a spill and whether
ptxas reported one, and marks the model's choice with '*'.

    python benchmarks/triton_tuning.py [--arch 90 --arch 80] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

from einsumcc.pipeline import load
from einsumcc_triton import compile
from einsumcc_triton.aot import aot_compile_many
from einsumcc_triton.launch import Compiled
from einsumcc_triton.tuning import TARGETS, estimate, kernel_shape, ranked

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FUSEMAX = EXAMPLES / "fusemax" / "attention_1pass.ein"
ONE_PASS = EXAMPLES / "attention_1pass.ein"


def cases(quick: bool) -> list[tuple[str, Path, dict[str, int], dict[str, int]]]:
    out = []
    names = ["attention_1pass", "attention_causal", "attention_decode"] if quick else None
    for p in sorted(EXAMPLES.glob("*.ein")):
        if names is None or p.stem in names:
            out.append((p.stem, p, {}, {}))
    for rows in (32, 64, 128):
        out.append((f"fusemax M0=256 P-tile {rows}", FUSEMAX, {"M0": 256}, {"P": rows}))
    for d in (128, 256):
        for rows in (32, 64, 128):
            wide = {"E": d, "F": d}
            out.append((f"1pass E=F={d} P-tile {rows}", ONE_PASS, wide, {"P": rows}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--arch", type=int, action="append", help="90, 80 (default both)")
    parser.add_argument("--quick", action="store_true", help="three examples only")
    args = parser.parse_args()
    archs = args.arch or [90, 80]
    directory = Path(tempfile.mkdtemp(prefix="einsumcc-tuning-"))
    jobs: list[tuple[Compiled, int]] = []
    rows = []
    for label, path, dims, tiles in cases(args.quick):
        k = compile(load(path), dims or None, tiles=tiles, directory=directory)
        for arch in archs:
            for i, sk in enumerate(k.schedule.kernels):
                best = ranked(k.schedule, sk, arch)[0]
                shape = kernel_shape(k.schedule, sk)
                for warps in (4, 8):
                    for stages in (1, 3):
                        est = estimate(shape, TARGETS[arch], warps, stages)
                        infos = list(k.kernels)
                        infos[i] = dataclasses.replace(infos[i], configs=((arch, warps, stages),))
                        jobs.append((dataclasses.replace(k, kernels=(infos[i],)), arch))
                        chosen = (best.num_warps, best.num_stages) == (warps, stages)
                        rows.append((label, arch, sk.name, est, chosen))
    results = aot_compile_many(jobs)
    print(
        f"{'case':<28} {'sm':>3} {'kernel':<6} {'cfg':>5}  {'regs model/ptxas':>16} "
        f"{'shared model/ptxas':>20}  spill model/ptxas"
    )
    agree = total = 0
    for (label, arch, kname, est, chosen), (st,) in zip(rows, results, strict=True):
        mark = "*" if chosen else " "
        predicted, measured = est.spills, st.spills > 0
        total += 1
        agree += predicted == measured
        print(
            f"{label:<28} {arch:>3} {kname:<6} {mark}{est.num_warps}w{est.num_stages}s "
            f"{est.registers:>7} /{st.registers:>4}   {est.shared_bytes:>9,} /{st.shared_bytes:>9,}"
            f"  {'yes' if predicted else 'no':>3} / {st.spills} B"
        )
    print(f"\nspill predicted as ptxas reports it: {agree} of {total} configurations")


if __name__ == "__main__":
    main()
