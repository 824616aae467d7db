"""The spatial-array simulator: SCALE-Sim's cycle counts, exact vs fast, functional vs oracle."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import sympy

from einsumcc import load
from einsumcc.analysis.cost import analyze_cost, substitute
from einsumcc.cli import main
from einsumcc.diagnostics import EinError
from einsumcc.reference import evaluate, random_inputs
from einsumcc_sim.arch import load_arch
from einsumcc_sim.functional import run_functional
from einsumcc_sim.mapping import default_mapping, load_mapping
from einsumcc_sim.report import plot_timeline, simulate

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
HERE = Path(__file__).resolve().parent
VARIANTS = sorted((HERE / "variants").glob("*.ein"))


def small(n: int, df: str = "os") -> list[str]:
    return [f"array2d.rows={n}", f"array2d.cols={n}", f"array1d.pes={n}", f"array2d.dataflow={df}"]


def scalesim_total(df: str, R: int, C: int, M: int, N: int, K: int) -> int:
    """SCALE-Sim v3's stall-free fold-serial count (simulator-anchors.md §1.2): folds x per_fold
    (its reported "Total Cycles" is one less)."""
    if df == "os":
        return math.ceil(M / R) * math.ceil(N / C) * (R + C + K - 2)
    if df == "ws":
        return math.ceil(K / R) * math.ceil(N / C) * (2 * R + C + M - 2)
    return math.ceil(K / R) * math.ceil(M / C) * (2 * R + C + N - 2)


ARRAYS = [(8, 8), (16, 32), (32, 16), (5, 7)]
SHAPES = [(64, 64, 64), (100, 37, 50), (7, 129, 33), (1, 17, 3)]


@pytest.mark.parametrize("df", ["os", "ws", "is"])
@pytest.mark.parametrize(("R", "C"), ARRAYS)
@pytest.mark.parametrize(("M", "N", "K"), SHAPES)
def test_scalesim_fold_serial_cycles(capsys, df, R, C, M, N, K):
    argv = [
        "simulate", str(EX / "matmul.ein"), "--arch", "systolic",
        "--set", f"array2d.rows={R}", "--set", f"array2d.cols={C}",
        "--set", f"array2d.dataflow={df}", "--timing", "scalesim",
        "--dims", f"M={M},N={N},K={K}", "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out["cycles"], int)
    assert out["cycles"] == scalesim_total(df, R, C, M, N, K)
    assert out["scalesim_gap"]["default_cycles"] <= out["cycles"]


@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_scalesim_ignores_dram_bandwidth(df):
    c = load(EX / "matmul.ein")
    dims = {"M": 40, "N": 24, "K": 20}
    counts = set()
    for bw in ("1e6", "1e12"):
        a = load_arch("systolic", [*small(8, df), f"dram.bandwidth={bw}"])
        counts.add(simulate(c, a, default_mapping(c, a), dims, timing="scalesim").cycles)
    assert counts == {scalesim_total(df, 8, 8, 40, 24, 20)}
    # the default timing does stall on a slow DRAM
    slow = load_arch("systolic", [*small(8, df), "dram.bandwidth=1e6"])
    assert simulate(c, slow, default_mapping(c, slow), dims).cycles > max(counts)


def test_default_timing_overlaps_folds():
    c = load(EX / "matmul.ein")
    a = load_arch("systolic", small(16, "os"))
    dims = {"M": 256, "N": 256, "K": 64}
    fold_serial = simulate(c, a, default_mapping(c, a), dims, timing="scalesim").cycles
    overlapped = simulate(c, a, default_mapping(c, a), dims).cycles
    folds = 16 * 16
    assert fold_serial == folds * (16 + 16 + 64 - 2)
    # fill and skew paid once: at least folds x T, far below fold-serial
    assert folds * 64 <= overlapped < fold_serial


GRID = [
    ("matmul.ein", {"M": 37, "N": 29, "K": 11}),
    ("matmul.ein", {"M": 64, "N": 40, "K": 24}),
    ("attention_3pass.ein", {"M": 32, "P": 16, "E": 8, "F": 8}),
    ("attention_1pass.ein", {"M": 32, "P": 16, "E": 8, "F": 8, "M0": 8}),
]


@pytest.mark.parametrize(("name", "dims"), GRID)
@pytest.mark.parametrize("n", [4, 8, 16])
@pytest.mark.parametrize("timing", ["default", "scalesim"])
def test_exact_and_fast_agree(name, dims, n, timing):
    c = load(EX / name)
    for df in ("os", "ws"):
        a = load_arch("fusemax", [*small(n, df), "dram.bandwidth=4e9"])
        m = default_mapping(c, a)
        fast = simulate(c, a, m, dims, timing=timing)
        ex = simulate(c, a, m, dims, timing=timing, exact=True)
        assert fast.cycles == ex.cycles
        assert fast.pe_cycles == ex.pe_cycles
        assert (fast.dram_read_bytes, fast.dram_write_bytes) == (
            ex.dram_read_bytes,
            ex.dram_write_bytes,
        )
        assert fast.energy_breakdown_pj == pytest.approx(ex.energy_breakdown_pj)
        # the exact mode's per-cycle busy count adds up to the same PE-cycles
        for arr in ("2d", "1d"):
            assert int(ex.busy_per_cycle[arr].sum()) == ex.pe_cycles[arr]
            assert ex.busy_per_cycle[arr].max(initial=0) <= ex.pes[arr]


def test_extrapolation_is_exact_where_it_jumps():
    c = load(EX / "matmul.ein")
    for df in ("os", "ws", "is"):
        a = load_arch("systolic", [*small(4, df), "dram.bandwidth=3e9"])
        m = default_mapping(c, a)
        dims = {"M": 97, "N": 61, "K": 9}
        fast = simulate(c, a, m, dims)
        assert fast.periods, "the fold loops should reach a steady state"
        assert fast.cycles == simulate(c, a, m, dims, exact=True).cycles


def test_one_million_token_qk_is_fast():
    c = load(EX / "matmul.ein")
    a = load_arch("systolic", ["array2d.rows=256", "array2d.cols=256"])
    r = simulate(c, a, default_mapping(c, a), {"M": 1 << 20, "N": 1 << 20, "K": 64})
    # every MAC is accounted for, though almost all folds were extrapolated
    assert r.pe_cycles["2d"] == (1 << 40) * 64
    assert r.cycles >= (1 << 40) * 64 // (256 * 256)
    assert r.dram_write_bytes == (1 << 40) * 4


FUNCTIONAL = [
    ("matmul.ein", {"M": 13, "N": 11, "K": 9}),
    ("attention_3pass.ein", {"M": 16, "P": 8, "E": 8, "F": 8}),
    ("attention_1pass.ein", {"M": 32, "P": 8, "E": 8, "F": 8, "M0": 8}),
]


@pytest.mark.parametrize(("name", "dims"), FUNCTIONAL)
@pytest.mark.parametrize("df", ["os", "ws", "is"])
def test_functional_equals_oracle_on_8x8(name, dims, df):
    c = load(EX / name)
    a = load_arch("fusemax", small(8, df))
    inputs = random_inputs(c, dims, seed=3)
    want = evaluate(c, inputs, dims)
    got = run_functional(c, a, default_mapping(c, a), dims, inputs)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("name", "dims"), FUNCTIONAL)
def test_a_corrupted_pe_changes_the_result(name, dims):
    c = load(EX / name)
    a = load_arch("fusemax", small(8))
    inputs = random_inputs(c, dims, seed=3)
    want = evaluate(c, inputs, dims)
    got = run_functional(c, a, default_mapping(c, a), dims, inputs, faults=[("2d", 1, 2)])
    assert any(not np.allclose(got[k], v) for k, v in want.items())


def test_fusemax_like_mapping_file():
    c = load(EX / "attention_1pass.ein")
    a = load_arch("fusemax", small(8))
    m = load_mapping(HERE / "fusemax_like.toml", c, a)
    dims = {"M": 64, "P": 16, "E": 8, "F": 8, "M0": 8}
    fast, ex = simulate(c, a, m, dims), simulate(c, a, m, dims, exact=True)
    assert fast.cycles == ex.cycles
    default = simulate(c, a, default_mapping(c, a), dims)
    assert fast.cycles < default.cycles  # the registers-and-link binding beats the default
    inputs = random_inputs(c, dims, seed=0)
    got = run_functional(c, a, m, dims, inputs)
    np.testing.assert_allclose(got["AV"], evaluate(c, inputs, dims)["AV"], rtol=1e-12)


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: p.stem)
@pytest.mark.parametrize("arch", ["fusemax", "flat", "systolic"])
def test_variants_simulate_with_the_default_mapping(path, arch):
    c = load(path)
    dims = {r.name: 16 for r in c.ranks if r.extent is None}
    a = load_arch(arch, small(8))
    m = default_mapping(c, a)
    fast = simulate(c, a, m, dims)
    assert fast.cycles == simulate(c, a, m, dims, exact=True).cycles > 0
    inputs = random_inputs(c, dims, seed=1)
    want = evaluate(c, inputs, dims)
    got = run_functional(c, a, m, dims, inputs)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["matmul.ein", "attention_3pass.ein", "attention_1pass.ein"])
def test_op_counts_match_the_cost_analysis(name):
    c = load(EX / name)
    dims = {"M": 64, "P": 32, "N": 16, "K": 8}
    dims = {k: v for k, v in dims.items() if k in {r.name for r in c.ranks}}
    a = load_arch("fusemax", small(8))
    r = simulate(c, a, default_mapping(c, a), dims)
    ext = dict(__import__("einsumcc.ir.bind", fromlist=["bind"]).bind(c, dims).extents)
    cost = analyze_cost(c)
    macs = sum(substitute(e.ops.get("mac", sympy.Integer(0)), ext) for e in cost.einsums)
    sim_macs = sum(v for k, v in r.energy_breakdown_pj.items() if k.endswith(".mac"))
    mac_pj = dict(a.energy)["array2d.mac"]
    exps = sum(substitute(e.ops.get("exp", sympy.Integer(0)), ext) for e in cost.einsums)
    muls = sum(substitute(e.ops.get("mul", sympy.Integer(0)), ext) for e in cost.einsums)
    # on FuseMax a mul is one MAC action and an exp six
    assert sim_macs == pytest.approx((macs + muls + 6 * exps) * mac_pj)


def test_text_report_and_plot(tmp_path, capsys):
    out = tmp_path / "t.png"
    argv = [
        "simulate",
        str(EX / "attention_1pass.ein"),
        "--dims",
        "M=512,P=256",
        "--plot",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "utilization" in text
    assert "SLNV" in text
    assert out.stat().st_size > 1000


def test_plot_marks_the_steady_state(tmp_path):
    c = load(EX / "matmul.ein")
    a = load_arch("systolic", small(4))
    r = simulate(c, a, default_mapping(c, a), {"M": 64, "N": 64, "K": 9})
    assert r.periods
    plot_timeline(r, tmp_path / "g.png")
    assert (tmp_path / "g.png").exists()


# ---------------------------------------------------------------- errors


def test_arch_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "a.toml"
    from einsumcc_sim.arch import preset_text

    bad.write_text(preset_text("systolic").replace("rows = 128", 'rows = "many"'))
    with pytest.raises(
        EinError, match=r"a\.toml:\d+:\d+: error: array2d\.rows: expected an integer"
    ):
        load_arch(bad)
    with pytest.raises(EinError, match=r"no key 'array2d\.bogus'"):
        load_arch("systolic", ["array2d.bogus=1"])
    with pytest.raises(EinError, match=r"array2d\.dataflow: expected one of os, ws, is"):
        load_arch("systolic", ["array2d.dataflow=xs"])
    with pytest.raises(EinError, match=r"no such preset or file"):
        load_arch("tpu9000")


def test_overrides_reach_every_required_key():
    a = load_arch(
        "fusemax",
        [
            "clock_hz=1e9", "array2d.rows=64", "array2d.cols=32", "array2d.dataflow=ws",
            "array1d.pes=32", "buffer.bytes=1048576", "dram.bandwidth=1e11",
        ],
    )  # fmt: skip
    assert (a.clock_hz, a.array2d.rows, a.array2d.cols, a.array2d.dataflow) == (10**9, 64, 32, "ws")
    assert (a.array1d and a.array1d.cols, a.buffer.bytes, a.dram_bandwidth) == (32, 1 << 20, 10**11)


def _mapping(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m.toml"
    p.write_text(text)
    return p


def test_mapping_errors(tmp_path):
    c = load(EX / "matmul.ein")
    a = load_arch("systolic", small(8))
    dims = {"M": 16, "N": 16, "K": 16}
    m = load_mapping(_mapping(tmp_path, '[einsum.Z]\nrows = "M"\ncols = "M"\n'), c, a)
    with pytest.raises(EinError, match="rank M is spatial on two array dimensions"):
        simulate(c, a, m, dims)
    c3 = load(EX / "attention_3pass.ein")
    m = load_mapping(
        _mapping(tmp_path, '[einsum.SN]\narray = "2d"\nrows = "M"\ncols = "P"\n'), c3, a
    )
    with pytest.raises(EinError, match="the 2d array of systolic has no 'add' op"):
        simulate(c3, a, m, {"M": 16, "P": 16})
    tiny = load_arch("systolic", [*small(8), "buffer.bytes=64"])
    with pytest.raises(EinError, match="more than the 64-byte global buffer"):
        simulate(c, tiny, default_mapping(c, tiny), dims)
    with pytest.raises(EinError, match="'Q' is not a rank"):
        load_mapping(_mapping(tmp_path, '[einsum.Z]\nrows = "Q"\n'), c, a)


def test_buffer_overflow_spills_to_dram():
    c = load(EX / "attention_3pass.ein")
    dims = {"M": 256, "P": 64, "E": 8, "F": 8}
    roomy = load_arch("fusemax", small(8))
    tight = load_arch("fusemax", [*small(8), "buffer.bytes=40000"])
    r1 = simulate(c, roomy, default_mapping(c, roomy), dims)
    r2 = simulate(c, tight, default_mapping(c, tight), dims)
    assert r1.spill_fraction == 0 < r2.spill_fraction < 1
    assert r2.dram_read_bytes > r1.dram_read_bytes
    assert r2.dram_write_bytes > r1.dram_write_bytes


@pytest.mark.parametrize("name", ["attention_2pass.ein", "attention_3pass.ein", "softmax.ein"])
@pytest.mark.parametrize("df", ["os", "ws"])
def test_extrapolation_over_a_loop_that_reuses_one_tile_throughout(name, df):
    # one query row per iteration of P, and K, V of a single tile, fetched at the first
    # iteration and reused by every later one: the loop over P is still periodic
    c = load(EX / name)
    a = load_arch("fusemax", [*small(16, df), "dram.bandwidth=4e9"])
    m = default_mapping(c, a, None, (("p", 1),))
    dims = {k: v for k, v in {"M": 16, "P": 64, "E": 8, "F": 8, "M0": 8}.items()
            if k in {r.name for r in c.ranks}}  # fmt: skip
    fast = simulate(c, a, m, dims)
    assert "group loop over P" in {p.loop for p in fast.periods}
    ex = simulate(c, a, m, dims, exact=True)
    assert (fast.cycles, fast.pe_cycles) == (ex.cycles, ex.pe_cycles)


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: p.stem)
@pytest.mark.parametrize("df", ["os", "ws"])
def test_variants_with_an_outer_loop_agree_exactly(path, df):
    # tiles of the outer loop run back to back: a result kept for the other array and a
    # result written to DRAM are double-buffered, so producers wait for the tile two back
    from einsumcc_sim.mapping import fitted_loops

    c = load(path)
    dims = {r.name: 16 for r in c.ranks if r.extent is None}
    a = load_arch("fusemax", [*small(4, df), "dram.bandwidth=2e9"])
    loops = fitted_loops(c)  # none when no rank is common to every Einsum: the output's
    outer = (
        tuple((v, 1 if t == 1 else 2) for v, t in loops[-1])
        if loops
        else ((c.rank(c.outputs[0].dims[0].rank).var, 2),)
    )
    m = default_mapping(c, a, None, outer)
    fast = simulate(c, a, m, dims)
    ex = simulate(c, a, m, dims, exact=True)
    assert (fast.cycles, fast.pe_cycles) == (ex.cycles, ex.pe_cycles)
