"""Front-end speed: parse + check + lower of the 1-pass attention (target <= 50 ms warm),
and the numpy oracle on every example at M = P = 1024.

    python benchmarks/frontend.py
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from einsumcc.diagnostics import Source
from einsumcc.frontend.check import check_program
from einsumcc.frontend.parser import parse_source
from einsumcc.pipeline import load
from einsumcc.reference import evaluate, random_inputs

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def best_of(fn, repeat: int = 20) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    path = EXAMPLES / "attention_1pass.ein"
    source = Source(str(path), path.read_text())
    start = time.perf_counter()
    check_program(parse_source(source), source)
    cold = time.perf_counter() - start
    parse_best, parse_median = best_of(lambda: parse_source(source))
    total_best, total_median = best_of(lambda: check_program(parse_source(source), source))
    print("front end, examples/attention_1pass.ein (14 Einsums)")
    print(f"  first call (builds the LALR parser): {cold * 1e3:7.1f} ms")
    print(f"  parse, warm: best {parse_best * 1e3:.1f} ms, median {parse_median * 1e3:.1f} ms")
    print(
        f"  parse + check + lower, warm: best {total_best * 1e3:.1f} ms, "
        f"median {total_median * 1e3:.1f} ms (target <= 50 ms)"
    )
    print("\nnumpy oracle, M = P = 1024")
    for p in [*sorted(EXAMPLES.glob("attention_*.ein")), EXAMPLES / "softmax.ein"]:
        c = load(p)
        dims = {r.name: 1024 for r in c.ranks if r.name in {"M", "P"}}
        inputs = random_inputs(c, dims, seed=0)
        best, _median = best_of(
            lambda c=c, inputs=inputs, dims=dims: evaluate(c, inputs, dims), repeat=3
        )
        heads = 1
        for r in ("B", "H"):
            if any(x.name == r for x in c.ranks):
                from einsumcc.ir.bind import bind

                heads *= bind(c, dims).extents[r]
        print(
            f"  {p.name:<24} best {best * 1e3:7.1f} ms   ({heads} head{'s' if heads > 1 else ''})"
        )


if __name__ == "__main__":
    main()
