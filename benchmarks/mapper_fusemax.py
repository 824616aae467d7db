"""The mapper on the FuseMax cascades (issue 18): from no mapping, ``map_cascade`` against
every mapping preset that applies, and the default mapping of ``simulate``.

    python benchmarks/mapper_fusemax.py [--dims M=16384,P=16384] [--time 240] [--arch fusemax]

Prints, per cascade of ``examples/fusemax/``: the best preset's cycles, the mapper's best
(cycles, mappings considered and simulated, mappings per second) and the default mapping's
cycles, with their ratios.  It asserts nothing: the search's reach depends on the machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from einsumcc import EinError, load
from einsumcc.options import parse_dims
from einsumcc_sim import map_cascade, simulate_cascade
from einsumcc_sim.names import MAPPING_PRESETS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="M=16384,P=16384")
    ap.add_argument("--arch", default="fusemax")
    ap.add_argument("--time", type=float, default=240.0, help="seconds of search per cascade")
    args = ap.parse_args()
    dims = parse_dims([args.dims])
    for path in sorted((ROOT / "examples" / "fusemax").glob("*.ein")):
        cascade = load(path.read_text())
        presets = {}
        for name in MAPPING_PRESETS:
            try:
                presets[name] = simulate_cascade(cascade, args.arch, name, dims).cycles
            except EinError:
                continue
        best_name = min(presets, key=presets.__getitem__)
        found = map_cascade(cascade, args.arch, dims, time=args.time)
        t0 = time.perf_counter()
        default = simulate_cascade(cascade, args.arch, None, dims)
        t_default = time.perf_counter() - t0
        print(f"{path.name} on {args.arch} at {args.dims}")
        print(f"  best preset   {best_name:<16} {presets[best_name]:>16,} cycles")
        print(
            f"  map           {found.best.cycles:>33,} cycles "
            f"({found.best.cycles / presets[best_name]:.3f}x): {found.considered} considered, "
            f"{found.simulated} simulated, {found.seconds:.0f} s, "
            f"{found.mappings_per_second:.1f} mappings/s"
        )
        print(
            f"  default       {default.cycles:>33,} cycles "
            f"({default.cycles / presets[best_name]:.3f}x) in {t_default:.1f} s "
            f"({default.mapping})"
        )


if __name__ == "__main__":
    main()
