"""einsumcc's simulator against SCALE-Sim v3, side by side on this machine.

For one GEMM (QKᵀ of one head, E = 64) and array, it runs SCALE-Sim 3.0.0 (in its own venv with
numpy<2.4, which 3.0.0 needs) and einsumcc's simulator in ``--exact`` and fast mode with
``--timing scalesim``, checks that the cycle counts agree (ours = SCALE-Sim's "Total Cycles" +
1), and reports simulated cycles per second and their ratios.  Then it times the fast mode on
QKᵀ at M = P = 1M, E = 64 on a 256x256 array.

    python benchmarks/sim_vs_scalesim.py [--m 1024] [--big 8192] [--array 128] [--dataflow ws]

SCALE-Sim is installed into ``$SCALESIM_VENV`` (default: a folder in the temp directory); if
that fails (no network), its part is skipped with a message and only our figures are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from einsumcc import load
from einsumcc_sim import template as templates
from einsumcc_sim.arch import load_arch
from einsumcc_sim.mapping import default_mapping
from einsumcc_sim.report import simulate

ROOT = Path(__file__).resolve().parent.parent
MATMUL = ROOT / "examples" / "matmul.ein"

CFG = """\
[general]
run_name = bench

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 4096
FilterSramSzkB: 4096
OfmapSramSzkB: 1024
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: {cols}
Dataflow: {df}
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {cols}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {cols}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: USER
UseRamulatorTrace: False
"""

DRIVER = textwrap.dedent(
    """
    import csv, sys, time
    from scalesim.scale_sim import scalesim
    t0 = time.perf_counter()  # the simulation only, as for einsumcc below
    cfg, topo, layout, out = sys.argv[1:5]
    s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                 layout=layout, input_type_gemm=True)
    s.run_scale(top_path=out)
    wall = time.perf_counter() - t0
    import glob
    rep = glob.glob(out + "/*/COMPUTE_REPORT.csv")[0]
    rows = list(csv.reader(open(rep)))
    head = [h.strip() for h in rows[0]]
    total = int(float(rows[1][head.index("Total Cycles")]))
    print(total, wall)
    """
)


def scalesim_venv() -> Path | None:
    venv = Path(os.environ.get("SCALESIM_VENV", Path(tempfile.gettempdir()) / "einsumcc-scalesim"))
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import scalesim, numpy; assert numpy.__version__ < '2.4'"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return venv
    print(f"installing scalesim==3.0.0 with numpy<2.4 into {venv} ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "scalesim==3.0.0", "numpy<2.4"],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"SKIP SCALE-Sim: could not install it ({type(exc).__name__}); ours only")
        return None
    return venv


def run_scalesim(
    venv: Path, m: int, n: int, k: int, rows: int, cols: int, df: str
) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "cfg.cfg").write_text(CFG.format(rows=rows, cols=cols, df=df))
        (d / "topo.csv").write_text(f"Layer, M, N, K,\nqkt, {m}, {n}, {k},\n")
        (d / "layout.csv").write_text("Layer, IfmapLayout, FilterLayout,\n")
        (d / "driver.py").write_text(DRIVER)
        t0 = time.perf_counter()
        out = subprocess.run(
            [str(venv / "bin" / "python"), str(d / "driver.py"), str(d / "cfg.cfg"),
             str(d / "topo.csv"), str(d / "layout.csv"), str(d / "out")],
            capture_output=True, text=True, check=True, cwd=d,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        total = int(out.stdout.split()[-2])
        return total, wall


def ours(
    m: int, n: int, k: int, rows: int, cols: int, df: str, exact: bool, timing: str
) -> tuple[int, float]:
    templates.affine.cache_clear()  # every timed run builds its op templates from scratch
    templates.exact.cache_clear()
    c = load(MATMUL)
    a = load_arch(
        "systolic", [f"array2d.rows={rows}", f"array2d.cols={cols}", f"array2d.dataflow={df}"]
    )
    t0 = time.perf_counter()  # lowering and simulation; parsing the .ein is not timed
    r = simulate(c, a, default_mapping(c, a), {"M": m, "N": n, "K": k}, timing=timing, exact=exact)
    return r.cycles, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=1024, help="M = N of the QKᵀ GEMM (E = 64)")
    ap.add_argument("--big", type=int, default=8192, help="a larger M = N for the fast mode")
    ap.add_argument("--array", type=int, default=128)
    ap.add_argument("--dataflow", default="ws", choices=("os", "ws", "is"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    k, r, df = 64, args.array, args.dataflow
    venv = scalesim_venv()
    rows = []
    for m in (args.m, args.big):
        res: dict[str, object] = {
            "gemm": f"QKt M=N={m}, K={k}",
            "array": f"{r}x{r}",
            "dataflow": df,
        }
        fa_cycles, fa_wall = min(
            (ours(m, m, k, r, r, df, False, "scalesim") for _ in range(3)), key=lambda x: x[1]
        )
        res |= {
            "einsumcc_cycles": fa_cycles,
            "fast_wall_s": fa_wall,
            "fast_cycles_per_s": fa_cycles / fa_wall,
        }
        if m == args.m:
            ex_cycles, ex_wall = min(
                (ours(m, m, k, r, r, df, True, "scalesim") for _ in range(3)), key=lambda x: x[1]
            )
            assert ex_cycles == fa_cycles
            res |= {"exact_wall_s": ex_wall, "exact_cycles_per_s": ex_cycles / ex_wall}
        if venv is not None:
            total, wall = run_scalesim(venv, m, m, k, r, r, df)
            rate = total / wall
            res |= {
                "scalesim_total_cycles": total,
                "scalesim_wall_s": wall,
                "scalesim_cycles_per_s": rate,
                "cycles_match (ours = total + 1)": total + 1 == fa_cycles,
                "fast_speedup": fa_cycles / fa_wall / rate,
            }
            if "exact_wall_s" in res:
                res["exact_speedup"] = res["exact_cycles_per_s"] / rate  # type: ignore[operator]
        rows.append(res)
    big_cycles, big_wall = min(
        (ours(1 << 20, 1 << 20, 64, 256, 256, "os", False, "default") for _ in range(3)),
        key=lambda x: x[1],
    )
    rows.append({"gemm": "QKt M=P=1M, E=64 (default timing)", "array": "256x256",
                 "einsumcc_cycles": big_cycles, "fast_wall_s": big_wall})  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for res in rows:
        print()
        for key, v in res.items():
            print(f"{key:>32}: {v:,.4g}" if isinstance(v, float) else f"{key:>32}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
