"""Cascades written after the simulator: they must simulate with the default mapping, and the
functional mode must agree with the oracle (rank-0 intermediates included)."""

from __future__ import annotations

import json

import pytest

from einsumcc.cli import main
from tests.conftest import EXAMPLES

DECODE = """
rank E = 16
rank F = 16
rank M
rank MC = 4
rank MI = M / MC
split M -> MC, MI
input q[E] : f32
input K[E, M] : f32
input V[F, M] : f32
output o[F] : f32
tensor S[MC, MI] : f32 = -inf
S[mc, mi]  = q[e] * K[e, mc*MI + mi] / sqrt(E)
LMX[mc]    = max{mi} S[mc, mi]
LE[mc, mi] = exp(S[mc, mi] - LMX[mc])
LD[mc]     = sum{mi} LE[mc, mi]
LO[f, mc]  = LE[mc, mi] * V[f, mc*MI + mi]
GMX[]      = max{mc} LMX[mc]
o[f]       = sum{mc} (exp(LMX[mc] - GMX[]) * LO[f, mc]) / sum{mc} (exp(LMX[mc] - GMX[]) * LD[mc])
"""

SMALL = ["--set", "array2d.rows=8", "--set", "array2d.cols=8", "--set", "array1d.pes=8"]


@pytest.mark.parametrize("extra", [[], ["--functional", *SMALL]], ids=["timing", "functional"])
def test_split_kv_decode_with_a_rank0_intermediate(tmp_path, capsys, extra):
    path = tmp_path / "decode.ein"
    path.write_text(DECODE)
    assert main(["simulate", str(path), "--dims", "M=64", "--json", *extra]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cycles"] > 0
    if extra:
        assert report["functional"]["ok"]


def test_default_mapping_fits_long_sequences_with_outer_loops(capsys):
    # at 64K tokens the plain default stages whole K, V and Q in the 16 MiB buffer; the
    # fitted variant loops over batch and heads and a block of queries instead
    argv = [
        "simulate",
        str(EXAMPLES / "fusemax" / "attention_1pass.ein"),
        "--dims",
        "M=65536,P=65536",
    ]
    assert main([*argv, "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    # issue 18: the default is the mapper's (it was "default, fitted: B:1, H:1, P:fit", 15x
    # slower than the fusemax preset): no spill, within 5% of the expert preset
    assert main([*argv, "--json", "--mapping", "fusemax"]) == 0
    preset = json.loads(capsys.readouterr().out)
    assert default["spill_fraction"] == 0
    assert default["cycles"] <= 1.05 * preset["cycles"]


def test_default_mapping_fits_a_long_weight_stationary_gemm(capsys):
    argv = [
        "simulate",
        str(EXAMPLES / "matmul.ein"),
        "--arch",
        "systolic",
        "--set",
        "array2d.dataflow=ws",
        "--dims",
        "M=1048576,N=1048576,K=64",
        "--json",
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["utilization"]["2d"] == pytest.approx(0.5, abs=0.01)


def test_emitted_default_mapping_reads_back(tmp_path, capsys):
    argv = ["simulate", str(EXAMPLES / "attention_1pass.ein"), "--dims", "M=256,P=128"]
    assert main([*argv, "--emit-mapping"]) == 0
    path = tmp_path / "m.toml"
    path.write_text(capsys.readouterr().out)
    assert main([*argv, "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert main([*argv, "--json", "--mapping", str(path)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["cycles"] == default["cycles"]
    assert again["energy_pj"] == default["energy_pj"]


@pytest.mark.parametrize("arch", ["fusemax", "systolic"])
@pytest.mark.parametrize("name", ["attention_3pass.ein", "fusemax/attention_3pass.ein"])
def test_default_mapping_fits_multi_pass_attention_at_64k(capsys, arch, name):
    # a 3-pass cascade keeps a 64K-long row of QK per query between its passes, and its AV
    # would stage all of V: the plain default overflows the buffer, the chosen one does not
    dims = "M=65536,P=65536" + (",B=1,H=2" if name.startswith("fusemax") else "")
    argv = ["simulate", str(EXAMPLES / name), "--arch", arch, "--dims", dims, "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    # (issue 18: the mapper's best; it was the best of the fitted recipes, its seeds)
    assert report["mapping"] != "default"
    assert report["buffer_bytes_needed"] <= 16 * 2**20
    assert report["cycles"] > 0


def test_default_mapping_is_the_fastest_candidate():
    from einsumcc import load
    from einsumcc.ir.bind import bind
    from einsumcc_sim.arch import load_arch
    from einsumcc_sim.mapping import default_mapping, default_recipes
    from einsumcc_sim.program import BufferOverflowError
    from einsumcc_sim.report import default_for, simulate

    c = load(EXAMPLES / "fusemax" / "attention_3pass.ein")
    a = load_arch("fusemax", [])
    dims = {"B": 2, "H": 2, "E": 64, "F": 64, "M": 16384, "P": 16384}
    chosen = simulate(c, a, default_for(c, a, dims), dims).cycles
    b = bind(c, dims)
    extents = {v: int(b.extents[r]) for v, r in c.var_ranks.items()}
    others = []
    for outer, chunked in default_recipes(c):
        m = default_mapping(c, a, extents, outer, chunked)
        try:
            others.append(simulate(c, a, m, dims).cycles)
        except BufferOverflowError:
            continue
    assert len(others) >= 3
    # no candidate beats it (its spatial ranks are chosen again under the fitted tile, so
    # it may beat them all); and the choice matters
    assert chosen <= min(others) < max(others)


def test_default_mapping_spreads_lanes_over_the_longest_rank():
    from einsumcc import load
    from einsumcc_sim.arch import load_arch
    from einsumcc_sim.mapping import default_mapping
    from einsumcc_sim.report import default_for, simulate

    c = load(EXAMPLES / "fusemax" / "attention_3pass.ein")
    a = load_arch("fusemax", [])
    dims = {"B": 1, "H": 1, "E": 64, "F": 64, "M": 1024, "P": 1024}
    chosen = default_for(c, a, dims)
    for name, km in chosen.kernels:
        if km.array == "1d":  # never the batch or head rank, of extent 1 here
            assert km.cols in ("m", "p"), name
    plain = default_mapping(c, a)  # without the extents: the lanes take the first rank
    assert plain.kernel("GM").cols == "b"
    assert simulate(c, a, chosen, dims).cycles * 10 < simulate(c, a, plain, dims).cycles
