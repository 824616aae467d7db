"""The simulator on the .ein language v2 (spec §10, issue 15 item 5): data filters cost their
compares and their mask reads, ``select`` and ``**`` are 1D-array ops with the
architecture's energies, tensor-valued inits read their input once before the recurrence,
every output goes to DRAM, and the functional mode equals the oracle on every v2 example."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from einsumcc import EinError, load
from einsumcc.cli import main
from einsumcc.ir.cascade import Cascade
from einsumcc.reference import evaluate, random_inputs
from einsumcc_sim.arch import load_arch, preset_text
from einsumcc_sim.functional import run_functional
from einsumcc_sim.kernel import PEKernel, kernels
from einsumcc_sim.mapping import default_mapping, load_mapping
from einsumcc_sim.program import SimLoop, lower
from einsumcc_sim.report import SimReport, simulate

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
HERE = Path(__file__).resolve().parent
SMALL = ["array2d.rows=8", "array2d.cols=8", "array1d.pes=8"]
SET_SMALL = [x for s in SMALL for x in ("--set", s)]
ATTN = {"M": 64, "P": 32, "E": 8, "F": 8, "M0": 16}
# every v2 example, at dims that do not divide the 8 x 8 array where the cascade allows it
V2 = {
    "document_mask": ATTN,
    "attention_sink": ATTN,
    "attention_lse": ATTN,
    "attention_padding": {"M": 37, "P": 21, "E": 8, "F": 8},
    "rmsnorm_power": {"D": 19, "N": 13},
    "squared_relu": {"D": 11, "F": 13, "N": 9},
}
CMP = 0.028036  # pJ: the presets' cmp, select and logic (the artifact's mac_max, a bound)


def dims_arg(dims: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in dims.items())


def energy(report: SimReport, component: str) -> float:
    return float(report.to_dict()["energy_breakdown_pj"].get(component, 0.0))


def by_name(c: Cascade) -> dict[str, PEKernel]:
    return {k.name: k for k in kernels(c)}


# ---------------------------------------------------------------- the command, every example


@pytest.mark.parametrize("name", sorted(V2))
def test_simulate_functional_equals_the_oracle(capsys, name):
    """``einsumcc simulate --functional`` on every v2 example (default mapping, 8 x 8)."""
    argv = ["simulate", str(EX / f"{name}.ein"), "--dims", dims_arg(V2[name]), "--json"]
    assert main([*argv, "--functional", *SET_SMALL]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["functional"]["ok"], out["functional"]
    assert out["functional"]["outputs"] == sorted(t.name for t in load(EX / f"{name}.ein").outputs)


@pytest.mark.parametrize("name", sorted(V2))
def test_simulate_runs_with_the_default_mapping(capsys, name):
    """``einsumcc simulate`` on every v2 example, the full-size presets, no internal error."""
    c = load(EX / f"{name}.ein")
    free = {r.name for r in c.ranks if r.extent is None}
    big = {k: v * 8 for k, v in V2[name].items() if k in free}
    assert main(["simulate", str(EX / f"{name}.ein"), "--dims", dims_arg(big), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cycles"] > 0
    for t in c.outputs:  # every output is written to DRAM
        assert out["dram_bytes_by_tensor"][t.name] > 0, t.name


@pytest.mark.parametrize("arch", ["fusemax", "flat", "systolic"])
@pytest.mark.parametrize(
    "name", ["document_mask", "attention_padding", "squared_relu", "attention_sink"]
)
def test_functional_on_every_preset_and_exact_equals_fast(name, arch):
    c = load(EX / f"{name}.ein")
    a = load_arch(arch, SMALL)
    m = default_mapping(c, a)
    dims = V2[name]
    fast = simulate(c, a, m, dims)
    assert fast.cycles == simulate(c, a, m, dims, exact=True).cycles > 0
    inputs = random_inputs(c, dims, seed=5)
    want = evaluate(c, inputs, dims)
    got = run_functional(c, a, m, dims, inputs)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- data filters


def without_data_filter(path: Path) -> str:
    """document_mask with only its causal condition: the same cascade without mask reads."""
    text = path.read_text()
    cut = " and SEGK[m1*M0 + m0] == SEGQ[p]"
    assert cut in text
    return text.replace(cut, "")


def test_document_mask_costs_its_compares_and_mask_reads():
    c = load(EX / "document_mask.ein")
    plain = load(without_data_filter(EX / "document_mask.ein"))
    a = load_arch("fusemax")
    dims = {"M": 1024, "P": 512}
    M, P = dims["M"], dims["P"]
    ks = by_name(c)
    mask = ks["BQK.mask"]
    assert mask.ops == (("cmp", 1),)
    assert mask.space == ("m1", "m0", "p")
    assert {r.tensor for r in mask.reads} == {"SEGK", "SEGQ"}
    assert [r.tensor for r in ks["BQK"].mask] == ["BQK.mask"]
    assert ks["BQK"].matmul_like  # the mask does not change how QK^T maps
    r = simulate(c, a, default_mapping(c, a), dims)
    r0 = simulate(plain, a, default_mapping(plain, a), dims)
    # the segment ids cross DRAM once each (i32), and nothing else changes there
    by_t = r.to_dict()["dram_bytes_by_tensor"]
    assert by_t["SEGK"] == 4 * M
    assert by_t["SEGQ"] == 4 * P
    assert r.dram_bytes - r0.dram_bytes == 4 * (M + P)
    # one compare per point of the mask (M x P), on the 1D array, at the architecture's energy
    assert r.per_einsum["BQK.mask"].array == "1d"
    assert energy(r, "1d.cmp") == pytest.approx(M * P * CMP)
    assert energy(r0, "1d.cmp") == 0.0
    # the mask is written once and read once by QK^T: its buffer traffic is in the report
    b, b0 = r.to_dict()["buffer_accesses"], r0.to_dict()["buffer_accesses"]
    assert b["write_words"] - b0["write_words"] >= M * P
    assert b["read_words"] - b0["read_words"] >= M * P
    assert r.energy_pj > r0.energy_pj
    # and no pass of its own: one loop over the key tiles, as with the causal mask alone
    assert group_loops(lower(c, a, default_mapping(c, a), dims, "default").root, "m1") == 1


def test_padding_mask_counts_compares_and_logic():
    """``where KVALID[m] != 0 or m == 0``: two compares and one ``or`` per point of the
    filtered QK^T, evaluated beside it (in its loops), not hoisted to one per key."""
    c = load(EX / "attention_padding.ein")
    ks = by_name(c)
    assert ks["QK.mask"].ops == (("cmp", 2), ("or", 1))
    assert ks["QK.mask"].space == ("m", "p")
    a = load_arch("fusemax")
    dims = {"M": 300, "P": 100}
    r = simulate(c, a, default_mapping(c, a), dims)
    assert energy(r, "1d.cmp") == pytest.approx(2 * 300 * 100 * CMP)
    assert energy(r, "1d.logic") == pytest.approx(300 * 100 * CMP)
    assert r.to_dict()["dram_bytes_by_tensor"]["KVALID"] == 300  # bool: one byte per key


FILTERS = """
rank M
rank P
input S[M, P] : f32
input SEGK[M] : i32
input SEGQ[P] : i32
input FL[P] : f32
output Z[P] : f32 = FL[p] * 2
output Y[M, P] : f32
tensor X[M, P] : f32 = -FL[p]
X[m, p] = S[m, p] ** 2 where (SEGK[m] == SEGQ[p] and not m > p) or SEGK[m] < 0
Z[p]    = max{m} S[m, p] where SEGK[m] == SEGQ[p]
Y[m, p] = select(X[m, p] > 0 or SEGK[m] == 3, -X[m, p] ** 2, X[m, p] ** -0.5) + X[m, p] ** 1.5
"""


@pytest.mark.parametrize("arch", ["fusemax", "flat"])
def test_functional_filters_fills_select_and_power(tmp_path, arch):
    """All-masked rows hold the (tensor-valued) fill; ``or``/``not``, ``select``, ``-x ** 2``,
    ``x ** -0.5`` and integer ids, point by point through the PEs."""
    c = load(FILTERS)
    dims = {"M": 11, "P": 10}
    segk = np.array([0, 1, 1, 2, -1, 2, 3, 3, 0, 1, 2], dtype=np.float64)
    segq = np.array([0, 1, 2, 3, 4, 5, 1, 2, 0, 3], dtype=np.float64)  # 4 and 5: no key
    rng = np.random.default_rng(7)
    inputs = {"S": rng.standard_normal((11, 10)), "SEGK": segk, "SEGQ": segq,
              "FL": rng.standard_normal(10)}  # fmt: skip
    want = evaluate(c, inputs, dims)
    np.testing.assert_array_equal(want["Z"][[4, 5]], inputs["FL"][[4, 5]] * 2)
    a = load_arch(arch, SMALL)
    got = run_functional(c, a, default_mapping(c, a), dims, inputs)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-12, atol=1e-12, equal_nan=True)
    ks = by_name(c)
    assert dict(ks["X.mask"].ops) == {"cmp": 3, "and": 1, "or": 1, "not": 1}
    assert {r.tensor for r in ks["Z"].reads} >= {"Z.mask", "FL"}  # the fill is read too
    y = dict(ks["Y"].ops)
    assert y["select"] == 1
    assert y["rsqrt"] == 1  # x ** -0.5
    assert y["pow"] == 1  # x ** 1.5
    assert y["mul"] == 1  # x ** 2


NESTED = """
rank M
rank P
input A[M, P] : f32
input B[P] : f32
input SEG[M] : i32
input SEGQ[P] : i32
output Y[P] : f32 = -B[p]
output Z[P] : f32 = 7
Y[p] = sum{m} A[m, p] * 2 + B[p] where SEG[m] == SEGQ[p] + 5
Z[p] = sum{m} A[m, p] * 2 + B[p] where m > p + 5
"""


def test_filters_on_a_nested_reduction_leave_the_fill_on_empty_points():
    """The filter reads the variable of a reduction nested in the body: the reduction
    skips the points (its mask kernel runs before it), and an output point with no
    survivor holds the fill, as in the oracle (data and affine filters alike)."""
    c = load(NESTED)
    ks = by_name(c)
    assert ks["Y.1"].mask == (ks["Y.mask"].output,)
    assert list(ks).index("Y.mask") < list(ks).index("Y.1")
    dims = {"M": 13, "P": 11}
    inputs = random_inputs(c, dims, seed=0)
    want = evaluate(c, inputs, dims)
    assert (want["Z"][7:] == 7).all()
    assert (want["Y"] == -inputs["B"]).any()
    a = load_arch("fusemax", SMALL)
    got = run_functional(c, a, default_mapping(c, a), dims, inputs)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-12, atol=1e-12)


def test_an_architecture_without_compares_is_an_error(tmp_path):
    text = preset_text("fusemax").replace("cmp = { cmp = 1 }\n", "")
    path = tmp_path / "nocmp.toml"
    path.write_text(text)
    c = load(EX / "document_mask.ein")
    a = load_arch(str(path))
    with pytest.raises(EinError, match="cmp"):
        simulate(c, a, default_mapping(c, a), {"M": 128, "P": 128})


# ---------------------------------------------------------------- select and power


POWER = """
rank D
input X[D] : f32
output Y[D] : f32
Y[d] = X[d] ** 1.5
"""


def test_power_costs_exp_log_and_mul_of_the_architecture():
    c = load(POWER)
    assert by_name(c)["Y"].ops == (("pow", 1),)
    D = 512
    fm = simulate(c, load_arch("fusemax"), default_mapping(c, load_arch("fusemax")), {"D": D})
    # FuseMax has no exp unit: log and exp are 6 MACs each, and the multiply
    assert energy(fm, "1d.mac") == pytest.approx(D * 13 * 17.1645)
    flat = simulate(c, load_arch("flat"), default_mapping(c, load_arch("flat")), {"D": D})
    # FLAT's exp unit twice (exp and log) and a multiply
    assert energy(flat, "1d.exp") == pytest.approx(D * 2 * 94.6475)
    assert energy(flat, "1d.mac") == pytest.approx(D * 17.1645)
    assert fm.per_einsum["Y"].array == flat.per_einsum["Y"].array == "1d"


def test_small_integer_powers_multiply_and_select_is_a_1d_op():
    c = load(EX / "squared_relu.ein")
    ks = by_name(c)
    assert ks["Y"].ops == (("cmp", 1), ("mul", 1), ("select", 1))
    a = load_arch("fusemax")
    dims = {"D": 256, "F": 128, "N": 64}
    r = simulate(c, a, default_mapping(c, a), dims)
    assert r.per_einsum["Y"].array == "1d"
    assert energy(r, "1d.select") == pytest.approx(128 * 64 * CMP)
    assert energy(r, "1d.cmp") == pytest.approx(128 * 64 * CMP)
    rms = by_name(load(EX / "rmsnorm_power.ein"))
    assert ("rsqrt", 1) in rms["Y.1"].ops  # (MS + eps) ** -0.5


# ---------------------------------------------------------------- inits and outputs


def group_loops(node: object, var: str) -> int:
    if not isinstance(node, SimLoop):
        return 0
    own = int(node.kind == "group" and node.var == var)
    return own + sum(group_loops(ch, var) for ch in node.children)


def test_a_tensor_valued_init_is_one_read_before_the_recurrence():
    sink, plain = load(EX / "attention_sink.ein"), load(EX / "attention_1pass.ein")
    ks = by_name(sink)
    init = ks["RM.init"]
    assert init.init
    assert init.space == ("p",)
    assert [r.tensor for r in init.reads] == ["SINK"]
    assert next(iter(ks)) == "RM.init"  # before every other kernel
    a = load_arch("fusemax")
    dims = {"M": 1024, "P": 256}
    r = simulate(sink, a, default_mapping(sink, a), dims)
    r0 = simulate(plain, a, default_mapping(plain, a), dims)
    assert r.to_dict()["dram_bytes_by_tensor"]["SINK"] == 4  # read once
    assert r.dram_bytes - r0.dram_bytes == 4
    # no pass of its own: one loop over the key tiles, as without the sink
    for c in (sink, plain):
        prog = lower(c, a, default_mapping(c, a), dims, "default")
        assert group_loops(prog.root, "m1") == 1


def test_every_output_is_written_to_dram():
    c = load(EX / "attention_lse.ein")
    a = load_arch("fusemax")
    dims = {"M": 512, "P": 256}
    r = simulate(c, a, default_mapping(c, a), dims)
    by_t = r.to_dict()["dram_bytes_by_tensor"]
    assert by_t["AV"] == 64 * 256 * 2  # f16
    assert by_t["LSE"] == 256 * 4  # f32
    assert r.dram_write_bytes == by_t["AV"] + by_t["LSE"]


# ---------------------------------------------------------------- the FuseMax presets


DOC = " and SEGK[b, m1*M0 + m0] == SEGQ[b, p]"


@pytest.mark.parametrize(
    ("preset", "masked"),
    [("fusemax", False), ("fusemax-arch", True), ("fusemax-cascade", True)],
)
def test_fusemax_presets_carry_masks_sinks_and_fills(preset, masked):
    """A document mask, sinks by tensor-valued inits (one per head; one per head and
    feature) and a tensor-valued fill through the registers and links of the FuseMax
    bindings, value for value.  (The ``fusemax`` preset interleaves SLNV before BQK in an
    epoch, which puts BQK ahead of its mask kernel: a mapping error, so it runs unmasked.)"""
    text = (HERE / "v2" / "fusemax_v2.ein").read_text()
    c = load(text if masked else text.replace(DOC, ""))
    a = load_arch("fusemax", SMALL)
    m = load_mapping(preset, c, a)
    dims = {"M": 64, "P": 32}
    inputs = random_inputs(c, dims, seed=2)
    want = evaluate(c, inputs, dims)
    got = run_functional(c, a, m, dims, inputs)
    np.testing.assert_allclose(got["AV"], want["AV"], rtol=1e-9, atol=1e-12)
    r = simulate(c, a, m, dims)
    assert {"RM.init", "RNV.init"} <= set(r.per_einsum)
    assert ("BQK.mask" in r.per_einsum) == masked
    # no pass of its own for the inits or the mask: one loop over the key tiles
    assert group_loops(lower(c, a, m, dims, "default").root, "m1") == 1
