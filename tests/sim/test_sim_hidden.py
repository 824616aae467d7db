"""Cascades written after the simulator: they must simulate with the default mapping, and the
functional mode must agree with the oracle (rank-0 intermediates included)."""

from __future__ import annotations

import json

import pytest

from einsumcc.cli import main

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
