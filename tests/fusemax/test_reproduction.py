"""The FuseMax reproduction on the simulator (issue 6): the designs as mappings, the paper's
closed forms (here, and only here, as checks), the artifact's rows, the energy model, the
cost models and the command line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from einsumcc import EinError, load
from einsumcc.cli import main
from einsumcc.reference import evaluate, random_inputs
from einsumcc_fusemax.experiment import Point, run_point, setup, simulate_point
from einsumcc_fusemax.grid import attribute, render_attribution
from einsumcc_fusemax.results import (
    DESIGNS,
    ENERGY_BOUNDS,
    PAPER,
    compare,
    compare_einsums,
    design,
    read_csv,
    reference_dir,
    summarize,
)
from einsumcc_fusemax.workload import load_models
from einsumcc_sim.arch import load_arch
from einsumcc_sim.functional import run_functional
from einsumcc_sim.mapping import load_mapping
from einsumcc_sim.model import ARTIFACT, ablations, describe, model_options
from einsumcc_sim.program import lower
from einsumcc_sim.report import simulate

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples" / "fusemax"
REF = reference_dir()
needs_reference = pytest.mark.skipif(REF is None, reason="../shared/reference is not present")
MODELS = {m.name: m for m in load_models()}
CLOCK = 940e6
BW = 400 * 2**30
K, M_ = 1 << 10, 1 << 20


def cycles(design: str, model: str, seq: int, cost: str = "artifact") -> float:
    _, row, _ = run_point(Point(design, MODELS[model], seq), cost)
    return row.latency * CLOCK


def tiles(model: str, seq: int) -> int:
    """N of spec fusemax.md §6.6: attention points over the 256 x 256 array."""
    m = MODELS[model]
    return m.batch * m.heads * seq * seq // 65536


# ---------------------------------------------------------------- the paper's closed forms


@pytest.mark.parametrize(("model", "seq"), [("BERT", K), ("BERT", 64 * K), ("XLM", 16 * K)])
def test_binding_is_one_1d_array_busy_per_tile(model, seq):
    """§6.6: N * [max(E+1, F+1+F/M1) + 9 + F] cycles, the 1D array never idle."""
    e = f = MODELS[model].head_dim
    m1 = seq // 256
    want = tiles(model, seq) * (max(e + 1, f + 1 + f / m1) + 9 + f)
    assert cycles("binding", model, seq) == pytest.approx(want, rel=0.01)


@pytest.mark.parametrize(("e", "f"), [(128, 64), (64, 32), (128, 32), (64, 128), (32, 96)])
@pytest.mark.parametrize("seq", [16 * K, 128 * K])
def test_binding_follows_f_when_e_differs(e, f, seq):
    """Issue 18: §6.6's N * [max(E+1, F+1+F/M1) + 9 + F] with E != F on a 128 x 128 array
    (shapes no artifact row has): BQK | SLNV alternate only while both have steps."""
    cascade = load((EX / "attention_1pass.ein").read_text())
    over = ["array2d.rows=128", "array2d.cols=128", "array1d.pes=128"]
    dims = {"B": 1, "H": 2, "E": e, "F": f, "M0": 128, "M": seq, "P": seq}
    from einsumcc_sim import simulate_cascade

    got = simulate_cascade(cascade, "fusemax", "fusemax", dims, model="artifact", overrides=over)
    n, m1 = 2 * seq * seq // (128 * 128), seq // 128
    assert got.cycles == pytest.approx(n * (max(e + 1, f + 1 + f / m1) + 9 + f), rel=0.01)


@pytest.mark.parametrize(("model", "seq"), [("BERT", K), ("XLM", 256 * K)])
def test_architecture_stalls_for_the_drain_every_tile(model, seq):
    """§7.3: N * [max(E+1, 1+F/M1) + 256 + 9 + max(F, 2F)]."""
    e = f = MODELS[model].head_dim
    m1 = seq // 256
    want = tiles(model, seq) * (max(e + 1, 1 + f / m1) + 256 + 9 + 2 * f)
    assert cycles("arch", model, seq) == pytest.approx(want, rel=0.001)


@pytest.mark.parametrize(("model", "seq"), [("T5", 4 * K), ("XLM", M_)])
def test_cascade_is_bound_by_the_1d_array(model, seq):
    """§7.3: max(mem, (E+F) N, (1024 + 5 + 2F + F/M1) N)."""
    e = f = MODELS[model].head_dim
    n = tiles(model, seq)
    want = max(n * (e + f), n * (1024 + 5 + 2 * f + f / (seq // 256)))
    assert cycles("cascade", model, seq) == pytest.approx(want, rel=0.001)


def test_flat_softmax_bound_and_memory_bound():
    """§7.2: 1024 N cycles while the logits fit; traffic / bandwidth once they are in DRAM."""
    assert cycles("flat", "TrXL", 16 * K) == pytest.approx(1024 * tiles("TrXL", 16 * K), rel=1e-3)
    _, row, _ = run_point(Point("flat", MODELS["BERT"], 256 * K))
    assert row.latency == pytest.approx(row.traffic / BW, rel=0.01)
    assert row.util_1d == pytest.approx(1024 * tiles("BERT", 256 * K) / CLOCK / row.latency)


def unit(model: str, seq: int) -> int:
    m = MODELS[model]
    return m.batch * m.heads * seq * m.head_dim * 2  # bytes of Q (or K, V, AV)


@pytest.mark.parametrize(
    ("model", "seq", "units"),
    [
        ("BERT", K, 13),  # Q, K, V re-read per 256-wide tile; AV once
        ("BERT", 4 * K, 49 + 7 * 64 / 129),  # + spills: 7 accesses of the logits, s = 1/129
        ("XLM", K, 10),  # V on chip
        ("BERT", 256 * K, 16898),  # logits in DRAM: 4 |QK| + Q + AV + K, V per 1024 rows
    ],
)
def test_flat_traffic_follows_from_placement_and_capacity(model, seq, units):
    _, row, _ = run_point(Point("flat", MODELS[model], seq))
    assert row.traffic == pytest.approx(units * unit(model, seq), rel=1e-4)


def test_flat_spills_are_derived_from_the_buffer():
    """FLAT's search reports 1/129 (BERT 4K) and 19/275 (XLM 4K) spilled; the simulator gets
    the same fractions from the buffer's capacity, and none with a buffer twice as big."""
    for model, want in (("BERT", 1 / 129), ("XLM", 19 / 275)):
        s = setup(Point("flat", MODELS[model], 4 * K))
        prog = lower(s.cascade, s.arch, s.mapping, s.dims, model=ARTIFACT)
        assert prog.spill_fraction == pytest.approx(want, rel=1e-3)
    s = setup(Point("flat", MODELS["XLM"], 4 * K), overrides=["buffer.bytes=67108864"])
    assert lower(s.cascade, s.arch, s.mapping, s.dims, model=ARTIFACT).spill_fraction == 0


def test_fusemax_traffic_closed_form():
    """§9.4: 2 [BHPE + P2 BHME + P2 BHMF + BHPF], P2 from the buffer-fitted P1."""
    for model, seq in (("BERT", M_), ("XLM", 64 * K)):
        m = MODELS[model]
        rep, _ = simulate_point(Point("binding", m, seq))
        p1 = (128 if m.head_dim == 64 else 64) if seq >= 64 * K else seq // 256
        p2 = seq // 256 // p1
        bh, e = m.batch * m.heads, m.head_dim
        want = 2 * (bh * seq * e + p2 * bh * seq * e + p2 * bh * seq * e + bh * seq * e)
        assert rep.dram_read_bytes + rep.dram_write_bytes == want


def test_unfused_phases_add_up():
    """§7.1: the three phases one after another, each max(memory, compute)."""
    u = unit("BERT", K)
    qk = (2 * u + 16 * u) / BW * CLOCK  # Q, K in, QK out: memory bound
    softmax = 1024 * tiles("BERT", K)  # the 1D array, one element per cycle per Einsum
    assert cycles("unfused", "BERT", K) == pytest.approx(2 * qk + softmax, rel=0.01)


# ---------------------------------------------------------------- the artifact's rows


# the grid fixture (every point, sourced energies) is in conftest.py


@needs_reference
@pytest.mark.parametrize("d", DESIGNS, ids=lambda d: d.key)
def test_every_artifact_row_is_reproduced(grid, d):
    assert REF is not None
    ref = read_csv(REF / f"attn-{d.key}.csv")
    devs = compare(d, grid[d.key], ref)
    assert len({(x.model, x.seq) for x in devs}) == 24
    bad = [str(x) for x in devs if not x.ok]
    assert not bad, "\n".join(bad)
    # the per-Einsum 2D utilization columns too: relative where small (LM, SLD ~0.0015-0.0072)
    per = compare_einsums(d, grid[d.key], ref)
    assert len(per) == 24 * len(d.einsums)
    bad = [str(x) for x in per if not x.ok]
    assert not bad, "\n".join(bad)


@needs_reference
def test_headline_ratios(grid):
    """Speedups within 5% of the paper's; energy ratios within the two designs' energy
    bounds added (first order: each design's energy may be off by its own bound)."""
    s = summarize(grid)
    for key, paper in PAPER.items():
        base = key.rsplit("_", 1)[1]
        rel = 0.05 if key.startswith("speedup") else ENERGY_BOUNDS["binding"] + ENERGY_BOUNDS[base]
        assert s[key] == pytest.approx(paper, rel=rel), key


# the calibrated energy option: tests/fusemax/test_energy.py


# ---------------------------------------------------------------- the mappings compute it


SMALL = ["array2d.rows=8", "array2d.cols=8", "array1d.pes=8"]
ONE_PASS = {"B": 2, "H": 2, "E": 8, "F": 8, "M": 32, "P": 16, "M0": 8}
THREE_PASS = {"B": 2, "H": 2, "E": 8, "F": 8, "M": 32, "P": 16}


@pytest.mark.parametrize(
    ("mapping", "ein", "arch", "params"),
    [
        ("fusemax", "attention_1pass", "fusemax", {}),
        ("fusemax-arch", "attention_1pass", "fusemax", {}),
        ("fusemax-cascade", "attention_1pass", "flat", {}),
        ("flat", "attention_3pass", "flat", {"block": 16}),
        ("flat", "attention_3pass", "flat", {"block": 8, "Q": "buffer", "V": "buffer"}),
    ],
)
def test_design_mappings_compute_the_cascade(mapping, ein, arch, params):
    c = load(EX / f"{ein}.ein")
    dims = ONE_PASS if "1pass" in ein else THREE_PASS
    a = load_arch(arch, SMALL)
    m = load_mapping(mapping, c, a, params)
    inputs = random_inputs(c, dims, seed=2)
    want = evaluate(c, inputs, dims)
    got = run_functional(c, a, m, dims, inputs)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-12, atol=1e-12)


def test_a_stage_too_deep_for_the_recurrence_is_an_error(tmp_path):
    c = load(EX / "attention_1pass.ein")
    a = load_arch("fusemax", SMALL)
    text = (ROOT / "backends/einsumcc_sim/presets/mappings/fusemax.toml").read_text()
    text = text.replace("SPD = 7", "SPD = 4")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    m = load_mapping(path, c, a)
    # P1 = 2 tiles: SPD of tile t reads RD of tile t - 2, issued three epochs after it
    with pytest.raises(EinError, match=r"SPD .*reads RD.* which runs later"):
        lower(c, a, m, ONE_PASS)


def test_register_capacity_is_checked():
    c = load(EX / "attention_1pass.ein")
    a = load_arch("fusemax", [*SMALL, "array2d.registers=4"])
    m = load_mapping("fusemax", c, a)
    with pytest.raises(EinError, match="2D PEs would hold 7 words in registers"):
        lower(c, a, m, ONE_PASS)


def test_mapping_parameters_are_checked():
    c = load(EX / "attention_3pass.ein")
    a = load_arch("flat")
    with pytest.raises(EinError, match="no parameter 'rows_per_tile'"):
        load_mapping("flat", c, a, {"rows_per_tile": 4})
    with pytest.raises(EinError, match="no such preset or file"):
        load_mapping("flat-ish", c, a)


# ---------------------------------------------------------------- energy


def test_energy_is_actions_times_the_table():
    rep, _ = simulate_point(Point("binding", MODELS["BERT"], K))
    assert sum(rep.energy_breakdown_pj.values()) == pytest.approx(rep.energy_pj)
    # exp is 6 MACs on FuseMax: the 2D array's MACs are (E + 6 + F) per attention point
    m = MODELS["BERT"]
    points = m.batch * m.heads * K * K
    mac = 17.1645  # pJ per fp MAC, the artifact's ERT (spec fusemax.md §9.5)
    assert rep.energy_breakdown_pj["2d.mac"] == pytest.approx(points * (64 + 6 + 64) * mac)
    # "about 95% of FuseMax's energy is 2D MACs" (the paper, §VI-B; 94.9% at 1K in its CSV);
    # the sourced energies put FuseMax at most ENERGY_BOUNDS["binding"] above the artifact
    assert rep.energy_breakdown_pj["2d.mac"] / rep.energy_pj > 0.949 / (
        1 + ENERGY_BOUNDS["binding"]
    )


def test_energy_does_not_depend_on_the_binding():
    arch = simulate_point(Point("arch", MODELS["T5"], 4 * K))[0]
    binding = simulate_point(Point("binding", MODELS["T5"], 4 * K))[0]
    assert arch.energy_pj == pytest.approx(binding.energy_pj)


# ---------------------------------------------------------------- cost models


def test_faithful_model_pays_for_the_buffer_ports():
    """FuseMax's buffer reads 256 words a cycle; BQK | SLNV stream 768 words per two
    cycles, so the faithful binding runs at two thirds of the artifact's rate; with three
    read ports it keeps up, and the fill, drain and link latencies stay hidden."""
    pt = Point("binding", MODELS["XLM"], 64 * K)
    art = simulate_point(pt, "artifact")[0]
    faithful = simulate_point(pt, "faithful")[0]
    assert faithful.cycles / art.cycles == pytest.approx(1.5, rel=0.03)
    ports = simulate_point(pt, "faithful", ["buffer.read_ports=3"])[0]
    assert ports.cycles / art.cycles == pytest.approx(1.0, abs=0.01)


def test_models_are_named_and_described():
    assert model_options("artifact").dram_bandwidth == 400 * 2**30
    assert model_options("faithful").skew
    assert len(describe(ARTIFACT)) == 7
    with pytest.raises(EinError, match="unknown cost model"):
        model_options("optimistic")


@pytest.mark.parametrize("n", [64, 128, 512])
def test_other_array_sizes_scale_with_the_pes(n):
    """Nothing is fitted to 256 x 256: the binding's latency scales with 1 / PEs, its
    buffer tiles are fitted again (compute bound at 256K tokens, spec §8.5)."""
    pt = Point("binding", MODELS["BERT"], 256 * K)
    base = simulate_point(pt)[0].cycles
    over = [f"array2d.rows={n}", f"array2d.cols={n}", f"array1d.pes={n}"]
    other = simulate_point(pt, overrides=over)[0].cycles
    assert other / base == pytest.approx((256 / n) ** 2, rel=0.05)


# ---------------------------------------------------------------- command line


def test_reproduce_writes_csvs_figures_and_summary(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["reproduce", "fusemax", "--models", "BERT", "--seq", "1K,4K", "--out", str(out),
            "--jobs", "2", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "speedup over FLAT" in text
    assert "energy by component" in text
    for d in DESIGNS:
        rows = read_csv(out / f"attn-{d.key}.csv")
        assert [(r.model, r.seq) for r in rows] == [("BERT", K), ("BERT", 4 * K)]
    for fig in ("fig6a_util_1d", "fig6b_util_2d", "fig7_util_by_einsum", "fig8_speedup",
                "fig9_energy"):  # fmt: skip
        assert (out / f"{fig}.png").stat().st_size > 5000
    assert (out / "summary.txt").read_text() == text


def test_reproduce_both_models_side_by_side(tmp_path, capsys):
    argv = ["reproduce", "fusemax", "--models", "XLM", "--seq", "1K", "--designs",
            "fusemax,flat", "--out", str(tmp_path), "--model", "both", "--no-plots",
            "--jobs", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "faithful vs artifact cost model" in text
    assert "where the faithful model's latency comes from (XLM 1K" in text
    assert "global-buffer port bandwidth" in text
    assert (tmp_path / "faithful" / "attn-binding.csv").is_file()


def test_latency_difference_is_attributed_to_effects():
    """One faithful effect at a time on top of the artifact's model: the binding's
    difference is the buffer's read ports, +Cascade's the fill and the mapping's own
    settings (FLAT's 32 MiB buffer instead of the artifact's 16 MiB)."""
    names = [label for label, _ in ablations()]
    assert len(names) == 8
    assert all(o.overrides_key in ("artifact", "faithful") for _, o in ablations())
    attr = attribute([design("binding"), design("cascade")], [MODELS["BERT"]], [64 * K], [], 1)
    binding = dict(attr["binding"][1])
    assert binding["global-buffer port bandwidth"] == pytest.approx(1.46, abs=0.02)
    assert binding["faithful (all)"] == pytest.approx(1.46, abs=0.02)
    cascade = dict(attr["cascade"][1])
    assert cascade["the mapping's settings for the faithful model"] < 0.9
    assert cascade["systolic skew and fill, one PE hop per cycle"] > 1.1
    assert "BERT 64K" in render_attribution(attr)


def test_reproduce_without_matplotlib_writes_csvs(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name)
    )
    argv = ["reproduce", "fusemax", "--models", "XLM", "--seq", "1K", "--designs", "fusemax",
            "--out", str(tmp_path), "--jobs", "1"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "they need matplotlib" in captured.err
    assert (tmp_path / "attn-binding.csv").is_file()
    assert not list(tmp_path.glob("*.png"))
    assert f"wrote {tmp_path}/attn-*.csv and" in captured.out


def test_reproduce_errors(capsys):
    assert main(["reproduce", "fusemax", "--designs", "tpu"]) == 1
    assert "unknown design 'tpu'" in capsys.readouterr().err


def test_simulate_model_option(capsys):
    argv = ["simulate", str(EX / "attention_1pass.ein"), "--arch", "fusemax", "--mapping",
            "fusemax", "--dims", "B=1,H=2,M=4096,P=4096,M0=256", "--model", "both"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "artifact" in text
    assert "faithful" in text
    assert "buffer ports" in text
    assert "one effect of the faithful model switched on" in text
    argv = ["simulate", str(EX / "attention_1pass.ein"), "--mapping", "fusemax", "--dims",
            "B=1,H=1,M=512,P=512,M0=256", "--model", "artifact", "--exact"]  # fmt: skip
    assert main(argv) == 1
    assert "faithful cycle-level model" in capsys.readouterr().err


def test_simulate_artifact_model_matches_the_experiment(capsys):
    import json

    argv = ["simulate", str(EX / "attention_3pass.ein"), "--arch", "flat", "--mapping", "flat",
            "--param", "block=4096", "--dims", "M=4096,P=4096", "--model", "artifact",
            "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "artifact"
    rep, _ = simulate_point(Point("flat", MODELS["BERT"], 4 * K))
    assert out["cycles"] == rep.cycles
    assert math.isclose(out["spill_fraction"], 1 / 129, rel_tol=1e-3)
    assert out["energy_breakdown_pj"]["buffer"] > 0


def test_simulate_report_shows_the_model():
    c = load(EX / "attention_1pass.ein")
    a = load_arch("fusemax", SMALL)
    m = load_mapping("fusemax", c, a)
    rep = simulate(c, a, m, ONE_PASS, model=ARTIFACT)
    assert "artifact cost model" in rep.render()
