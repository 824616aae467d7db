"""Startup time: the median of whole-process runs of ``einsumcc check`` and ``einsumcc --help``.

    python benchmarks/startup.py [--runs 15] [--einsumcc PATH/TO/einsumcc]

Each run is a fresh Python process (what a user waits for at the prompt), timed from spawn to
exit.  The issue's target is a median of at most 0.4 s for ``check`` on a small file on the
2-core development machines (goal 0.2 s).  Also prints which heavy modules a ``check`` imports.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sympy", "networkx", "numpy", "torch", "triton", "matplotlib", "lark")


def _time(cmd: list[str], runs: int) -> tuple[float, float]:
    subprocess.run(cmd, capture_output=True, check=False)  # warm the file cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--einsumcc", default=shutil.which("einsumcc") or "einsumcc")
    args = ap.parse_args()
    small = str(ROOT / "examples" / "matmul.ein")
    attention = str(ROOT / "examples" / "attention_1pass.ein")
    cases = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("einsumcc --help", [args.einsumcc, "--help"]),
        ("einsumcc check matmul.ein", [args.einsumcc, "check", small]),
        ("einsumcc check attention_1pass.ein", [args.einsumcc, "check", attention]),
    ]
    print(f"{'command':<40} {'median':>8} {'best':>8}   ({args.runs} runs each)")
    for label, cmd in cases:
        median, best = _time(cmd, args.runs)
        print(f"{label:<40} {median:>7.3f}s {best:>7.3f}s")
    probe = (
        f"import sys; from einsumcc.cli import main; main(['check', {small!r}]); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    python = Path(args.einsumcc).parent / "python"  # the interpreter of that installation
    exe = str(python) if python.exists() else sys.executable
    out = subprocess.run(  # from /, so that the probe imports the installed einsumcc
        [exe, "-c", probe], capture_output=True, text=True, check=False, cwd="/"
    )
    loaded = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "?"
    print(f"modules a check imports (of {', '.join(HEAVY)}): {loaded or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
