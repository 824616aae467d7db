"""Static GPU report, no GPU needed: every example's kernels compiled ahead of time for sm_90
(and sm_80) with Triton's cache bypassed, then ptxas -v.  Per kernel: compile time, shared
memory, registers, spill bytes and the number of wgmma (Hopper) / mma.sync (Ampere) tensor-core
instructions in the PTX, at the default tiles; then a few-query shape (P = 16) and a long one
(P = 4096) of a two-softmax cascade (differential attention), split-KV decode as declared, and
the one-pass and sink cascades at P = 1 (split-KV chosen by the compiler) and the three-pass
cascade at P = 1 (its reductions split).

The last column checks the acceptance rule: no spill, at most 30 s per kernel, and on sm_90 a
kernel that multiplies tiles (``tl.dot``) with a query tile of at least 64 uses wgmma.

    python benchmarks/triton_static.py [--arch 90 --arch 80] [--extra-only]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from einsumcc.diagnostics import EinError
from einsumcc.pipeline import load
from einsumcc.schedule import AxisRole
from einsumcc_triton import compile
from einsumcc_triton.aot import KernelStats, aot_compile_many
from einsumcc_triton.launch import Compiled

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CASCADES = ROOT / "tests" / "backends" / "cascades"
MAX_COMPILE_S = 30.0

EXTRA = [
    ("differential P=16", CASCADES / "differential.ein", {"M": 4096, "P": 16}),
    ("differential P=4096", CASCADES / "differential.ein", {"M": 4096, "P": 4096}),
    ("decode P=1", EXAMPLES / "attention_decode.ein", {"M": 65536, "P": 1}),
    ("decode P=16", EXAMPLES / "attention_decode.ein", {"M": 65536, "P": 16}),
    ("1pass P=1 (split-KV)", EXAMPLES / "attention_1pass.ein", {"M": 65536, "P": 1}),
    ("sink P=1 (split-KV)", EXAMPLES / "attention_sink.ein", {"M": 65536, "P": 1}),
    ("3pass P=1 (split-K)", EXAMPLES / "attention_3pass.ein", {"M": 65536, "P": 1}),
]


def _kernel_source(source: str, name: str) -> str:
    start = source.index(f"def {name}(")
    nxt = re.search(r"\n(@triton\.jit|def )", source[start + 1 :])
    return source[start : start + 1 + nxt.start()] if nxt else source[start:]


def _dot_rows(k: Compiled, kernel: str) -> int:
    """The smallest tile of a grid rank of the schedule's kernel (the rows of its products)."""
    sk = next(x for x in k.schedule.kernels if kernel.endswith(f"_{x.name}"))
    tiles = [a.block for a in sk.axes if a.role is AxisRole.GRID and a.block > 1]
    return min(tiles) if tiles else 1


def verdict(k: Compiled, st: KernelStats) -> str:
    problems = []
    if st.spills:
        problems.append("spills")
    if st.compile_seconds > MAX_COMPILE_S:
        problems.append("slow")
    uses_dot = "tl.dot(" in _kernel_source(k.source, st.kernel)
    if st.arch >= 90 and uses_dot and _dot_rows(k, st.kernel) >= 64 and st.wgmma == 0:
        problems.append("no wgmma")
    return "ok" if not problems else ", ".join(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--arch", type=int, action="append", help="80, 90, ... (default: 90 80)")
    parser.add_argument("--extra-only", action="store_true", help="only the extra shapes")
    args = parser.parse_args()
    archs = args.arch or [90, 80]
    directory = Path(tempfile.mkdtemp(prefix="einsumcc-static-"))
    cases: list[tuple[str, Path, dict[str, int] | None]] = []
    if not args.extra_only:
        cases += [
            (p.relative_to(EXAMPLES).as_posix(), p, None) for p in sorted(EXAMPLES.rglob("*.ein"))
        ]
    cases += [(label, path, dims) for label, path, dims in EXTRA]
    jobs: list[tuple[Compiled, int]] = []
    names: list[tuple[str, int, Compiled]] = []
    gen: dict[str, tuple[float, str]] = {}
    skipped: list[str] = []
    for label, path, dims in cases:
        start = time.perf_counter()
        try:
            k = compile(load(path), dims, directory=directory)
        except EinError as exc:
            skipped.append(f"  {label}: {str(exc).splitlines()[0]}")
            continue
        tiles = ", ".join(f"{r}={b}" for r, b in k.schedule.tiles)
        gen[label] = (time.perf_counter() - start, tiles)
        for arch in archs:
            jobs.append((k, arch))
            names.append((label, arch, k))
    results = aot_compile_many(jobs, fresh=True)
    print(
        "AOT compilation (Triton cache bypassed; default tiles; registers and spills from "
        "ptxas -v; spill = bytes of spill stores + loads)"
    )
    head = (
        f"  {'case':<28} {'sm':>3} {'kernel':<34} {'warps':>5} {'compile':>8} "
        f"{'smem':>8} {'regs':>5} {'spill':>6} {'wgmma':>6} {'mma':>5}  check"
    )
    print(head)
    print("  " + "-" * (len(head) - 2))
    for (name, arch, k), stats in zip(names, results, strict=True):
        for st in stats:
            print(
                f"  {name:<28} {arch:>3} {st.kernel:<34} {st.num_warps:>5} "
                f"{st.compile_seconds:7.2f}s {st.shared_bytes:>8} {st.registers:>5} "
                f"{st.spills:>6} {st.wgmma:>6} {st.mma:>5}  {verdict(k, st)}"
            )
    if skipped:
        print("\nnot compiled (the backend rejects them with a diagnostic):")
        print("\n".join(skipped))
    print()
    print(".ein -> Triton source (first, cold call per case, including file reading):")
    for label, (seconds, tiles) in gen.items():
        print(f"  {label:<28} {seconds * 1e3:7.1f} ms  tiles {tiles}")


if __name__ == "__main__":
    main()
