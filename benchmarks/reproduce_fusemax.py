"""Speed of `einsumcc reproduce fusemax` (issue 6): the whole command on the full grid
(4 models x 6 lengths x 5 designs, imports and figures included), and single 1M-token points.

    python benchmarks/reproduce_fusemax.py [--jobs 2] [--repeat 3]

Prints wall times (best of --repeat); it asserts nothing: timings depend on the machine.
The targets of the issue: the full command in at most 15 s on a 2-core machine, one 1M-token
point in at most 2 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the console script installed next to this interpreter (what a user runs)
_SCRIPT = Path(sys.executable).with_name("einsumcc")
EINSUMCC = [str(_SCRIPT)] if _SCRIPT.exists() else [shutil.which("einsumcc") or "einsumcc"]


def best(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, --jobs {args.jobs}")
    with tempfile.TemporaryDirectory() as out:
        for model in ("artifact", "faithful"):
            cmd = [*EINSUMCC, "reproduce", "fusemax", "--out", out, "--jobs", str(args.jobs),
                   "--quiet", "--model", model]  # fmt: skip
            print(f"reproduce fusemax --model {model:<8} (120 points, CSVs, 5 figures): "
                  f"{best(cmd, args.repeat):6.2f} s")  # fmt: skip
    # one 1M-token point per design, as a user runs it (a process: imports included) ...
    points = [
        ("attention_1pass", "fusemax", "fusemax", [], "M0=256,"),
        ("attention_1pass", "fusemax", "fusemax-arch", [], "M0=256,"),
        ("attention_1pass", "flat", "fusemax-cascade", [], "M0=256,"),
        ("attention_3pass", "flat", "flat-offchip", ["--param", "block=1024"], ""),
        ("attention_3pass", "flat", "unfused", [], ""),
    ]
    for ein, arch, mapping, extra, m0 in points:
        cmd = [*EINSUMCC, "simulate", f"examples/fusemax/{ein}.ein", "--arch", arch,
               "--mapping", mapping, *extra, "--model", "artifact", "--json",
               "--dims", f"{m0}M=1048576,P=1048576"]  # fmt: skip
        print(f"simulate BERT 1M {mapping:<16} (process)  {best(cmd, args.repeat):6.2f} s")
    # ... and in-process (what one job of the reproduction spends)
    sys.path.insert(0, str(ROOT / "backends"))
    from einsumcc_fusemax.experiment import Point, simulate_point
    from einsumcc_fusemax.results import DESIGNS
    from einsumcc_fusemax.workload import load_models

    for m in load_models():
        for d in DESIGNS:
            times = [simulate_point(Point(d.key, m, 1 << 20))[1] for _ in range(args.repeat)]
            print(f"point {m.name:<5} 1M {d.key:<8} (in process)  {min(times):6.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
