"""The fuzz campaign: mutated `.ein` files through ``einsumcc check`` (and ``run`` when they
check), mutated mapping files through ``einsumcc simulate``.

    python -m tests.fuzz.campaign --ein 20000 --mapping 2000 [--seed 0] [--memory-gb 3]

Runs in this process under an address-space limit (a memory blow-up becomes a MemoryError,
which the command line would report as an internal error, so it counts as bad) with a 10 s
alarm per input (a hang).  Prints the counts by exit status and every bad outcome with the
seed that reproduces it; exits 1 if there was any.
"""

from __future__ import annotations

import argparse
import collections
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.fuzz.harness import Outcome, run_cli
from tests.fuzz.mutate import EIN_POOL, TOML_POOL, extreme, mutate

ROOT = Path(__file__).resolve().parents[2]
EIN_FILES = sorted((ROOT / "examples").rglob("*.ein"))
MAPPINGS = sorted((ROOT / "backends" / "einsumcc_sim" / "presets" / "mappings").glob("*.toml"))
# the cascade each mapping preset is written for, and small extents that simulate quickly
MAPPED = {
    "fusemax": ("examples/fusemax/attention_1pass.ein", "B=1,H=1,M=256,P=256"),
    "fusemax-arch": ("examples/fusemax/attention_1pass.ein", "B=1,H=1,M=256,P=256"),
    "fusemax-cascade": ("examples/fusemax/attention_1pass.ein", "B=1,H=1,M=256,P=256"),
    "flat": ("examples/fusemax/attention_3pass.ein", "B=1,H=1,M=256,P=256"),
    "flat-offchip": ("examples/fusemax/attention_3pass.ein", "B=1,H=1,M=256,P=256"),
    "unfused": ("examples/fusemax/attention_3pass.ein", "B=1,H=1,M=256,P=256"),
}
SMALL_DIMS = "M=64,P=32,K=16,N=16,B=1,H=1,G=1,R=1"


def ein_case(seed: int, folder: Path) -> tuple[str, list[list[str]]]:
    """The mutant for ``seed`` and the commands to run on it."""
    rng = random.Random(seed)
    if rng.random() < 0.05:
        text = extreme(rng)
    else:
        text = mutate(EIN_FILES[seed % len(EIN_FILES)].read_text("utf-8"), rng, EIN_POOL)
    path = folder / f"mutant_{seed}.ein"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    return text, [["check", str(path)], ["run", str(path), "--dims", SMALL_DIMS]]


def mapping_case(seed: int, folder: Path) -> tuple[str, list[list[str]]]:
    rng = random.Random(seed)
    preset = MAPPINGS[seed % len(MAPPINGS)]
    text = mutate(preset.read_text("utf-8"), rng, TOML_POOL)
    path = folder / f"mutant_{seed}.toml"
    path.write_text(text, encoding="utf-8")
    cascade, dims = MAPPED[preset.stem]
    arch = "flat" if preset.stem.startswith("flat") else "fusemax"
    argv = ["simulate", str(ROOT / cascade), "--arch", arch, "--mapping", str(path)]
    return text, [[*argv, "--dims", dims, "--model", "artifact"]]


Case = Callable[[int, Path], tuple[str, list[list[str]]]]


def campaign(
    case: Case, seeds: range, seconds: int = 10, progress: bool = False
) -> Iterator[tuple[int, list[str], Outcome]]:
    """Every (seed, argv, outcome); a command after a failing ``check`` is skipped."""
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            _, commands = case(seed, Path(tmp))
            for argv in commands:
                outcome = run_cli(argv, seconds)
                yield seed, argv, outcome
                if outcome.status != 0:
                    break
            if progress and seed % 500 == 0:
                print(f"  ... {seed - seeds.start} done", file=sys.stderr, flush=True)


def report(name: str, results: list[tuple[int, list[str], Outcome]], seconds: float) -> int:
    statuses = collections.Counter(str(o.status) for _, _, o in results)
    bad = [(s, a, o) for s, a, o in results if o.bad]
    files = len({s for s, _, _ in results})
    print(f"{name}: {files} mutated files, {len(results)} commands in {seconds:.0f} s")
    print("  exit statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    for seed, argv, o in bad[:50]:
        lines = o.stderr.strip().splitlines() or [""]
        shown = next((ln for ln in lines if "internal error" in ln or "Error" in ln), lines[-1])
        print(f"  BAD seed {seed}: einsumcc {argv[0]} -> {o.status}: {shown[:200]}")
    print(f"  bad outcomes: {len(bad)}")
    return len(bad)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ein", type=int, default=20000)
    ap.add_argument("--mapping", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-gb", type=float, default=3.0)
    args = ap.parse_args()
    limit = int(args.memory_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    bad = 0
    for name, case, n in (("ein", ein_case, args.ein), ("mapping", mapping_case, args.mapping)):
        start = time.perf_counter()
        results = list(campaign(case, range(args.seed, args.seed + n), progress=True))
        bad += report(name, results, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)
    print(f"peak resident memory: {peak:.2f} GB (limit {args.memory_gb} GB of address space)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
