""".ein -> Triton source for every example (target: <= 100 ms for the 1-pass attention), without
Triton's own JIT: parse, check, schedule, lower and render, warm (best and median of 20).

    python benchmarks/triton_compile_speed.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from einsumcc.pipeline import load
from einsumcc.schedule import derive_schedule
from einsumcc_triton.module import generate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def compile_source(text: str) -> str:
    c = load(text)
    source, _ = generate(c, derive_schedule(c))
    return source


def main() -> None:
    print(".ein -> Triton module source (load + schedule + lower + render), warm")
    print(f"  {'example':<32} {'best':>9} {'median':>9} {'lines':>6}")
    for path in sorted(EXAMPLES.rglob("*.ein")):
        text = path.read_text()
        source = compile_source(text)  # warm: the LALR parser, sympy caches
        times = []
        for _ in range(20):
            start = time.perf_counter()
            compile_source(text)
            times.append(time.perf_counter() - start)
        name = path.relative_to(EXAMPLES).as_posix()
        print(
            f"  {name:<32} {min(times) * 1e3:7.1f} ms {statistics.median(times) * 1e3:6.1f} ms"
            f" {source.count(chr(10)):6d}"
        )


if __name__ == "__main__":
    main()
