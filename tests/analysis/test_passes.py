"""The pass analysis against the paper's counts, witnesses and footprints, and on cascades the
analysis was not written for (normalisation layers, linear attention, a decode split)."""

from __future__ import annotations

import re

import pytest
import sympy

from einsumcc import load
from einsumcc.analysis.passes import analyze_passes
from tests.conftest import EXAMPLES

TABLE = [
    ("paper/cascade1.ein", "K", 2),
    ("paper/cascade2.ein", "K", 1),
    ("paper/cascade3.ein", "K", 1),
    ("attention_3pass.ein", "M", 3),
    ("attention_2pass.ein", "M", 2),
    ("attention_1pass.ein", "M", 1),
    ("attention_causal.ein", "M", 1),
    ("attention_gqa.ein", "M", 1),
    ("softmax.ein", "M", 3),
    ("matmul.ein", "K", 1),
]


@pytest.mark.parametrize(("file", "rank", "passes"), TABLE)
def test_paper_table(file, rank, passes):
    report = analyze_passes(load(EXAMPLES / file))
    assert report.passes[rank] == passes


def test_every_rank_is_reported_split_parents_and_children_included():
    report = analyze_passes(load(EXAMPLES / "attention_1pass.ein"))
    assert report.passes == {"E": 1, "F": 1, "M": 1, "P": 1, "M0": 2, "M1": 1}


def test_three_pass_witnesses_name_the_read_read_dependences():
    c = load(EXAMPLES / "attention_3pass.ein")
    m = analyze_passes(c).rank("M")
    line = {e.name: e.span.line for e in c.einsums}
    got = [(w.number, w.reducer.einsum, w.consumer.einsum, w.tensor) for w in m.witnesses]
    assert got == [(2, "GM", "SN", "QK"), (3, "SD", "A", "SN")]
    assert [(w.reducer.line, w.consumer.line) for w in m.witnesses] == [
        (line["GM"], line["SN"]),
        (line["SD"], line["A"]),
    ]
    assert dict(m.einsums) == {"QK": 1, "GM": 1, "SN": 2, "SD": 2, "A": 3, "AV": 3}


def test_cascade1_witness():
    m = analyze_passes(load(EXAMPLES / "paper" / "cascade1.ein")).rank("K")
    (w,) = m.witnesses
    assert (w.reducer.einsum, w.consumer.einsum, w.tensor) == ("Y", "Z", "A")


def test_footprints():
    three = analyze_passes(load(EXAMPLES / "attention_3pass.ein")).rank("M").footprint
    assert three.kind == "live_fiber"
    assert three.per_point == sympy.Symbol("M", integer=True, positive=True)
    assert three.outer == ("P",)
    m, p = (sympy.Symbol(n, integer=True, positive=True) for n in "MP")
    assert three.total_bytes == 4 * m * p  # f32 QK
    assert three.spill_bytes_per_pass == 8 * m * p  # written once, read back once
    one = analyze_passes(load(EXAMPLES / "attention_1pass.ein")).rank("M").footprint
    assert one.kind == "carried_state"
    assert str(one.per_point) == "F + 2"
    assert set(one.tensors) == {"RM", "RD", "RNV"}
    assert "M" not in {str(s) for s in one.per_point.free_symbols}
    c3 = analyze_passes(load(EXAMPLES / "paper" / "cascade3.ein")).rank("K").footprint
    assert c3.kind == "carried_state"
    assert c3.per_point == 2


THREE_PASS_DEFERRED = """
rank E = 8
rank F = 8
rank M
rank P
input  Q[E, P] : f16
input  K[E, M] : f16
input  V[F, M] : f16
output AV[F, P] : f16
QK[m, p] = Q[e, p] * K[e, m]
GM[p]    = max{m} QK[m, p]
SN[m, p] = exp(QK[m, p] - GM[p])
SD[p]    = sum{m} SN[m, p]
AV[f, p] = sum{m} (SN[m, p] * V[f, m]) / SD[p]
"""


def test_division_deferral_is_analysed_as_the_einsums_it_stands_for():
    # the division comes after the sum over m, so it does not traverse M again (§3.3)
    m = analyze_passes(load(THREE_PASS_DEFERRED)).rank("M")
    assert m.passes == 2
    assert dict(m.einsums)["AV"] == 2
    # the same statement with the division inside the sum re-reads the fiber: 3 passes
    inside = THREE_PASS_DEFERRED.replace(
        "sum{m} (SN[m, p] * V[f, m]) / SD[p]", "sum{m} (SN[m, p] * V[f, m] / SD[p])"
    )
    assert analyze_passes(load(inside)).passes["M"] == 3


LAYERNORM = """
rank D
rank T
param eps = 1e-5
input  X[D, T] : f32
output Y[D, T] : f32
MU[t]   = sum{d} X[d, t] / D
VAR[t]  = sum{d} ((X[d, t] - MU[t]) * (X[d, t] - MU[t])) / D
Y[d, t] = (X[d, t] - MU[t]) * rsqrt(VAR[t] + eps)
"""

LAYERNORM_ONE_STATISTICS_PASS = """
rank D
rank T
param eps = 1e-5
input  X[D, T] : f32
output Y[D, T] : f32
S1[t]   = sum{d} X[d, t]
S2[t]   = sum{d} (X[d, t] * X[d, t])
MU[t]   = S1[t] / D
VAR[t]  = S2[t] / D - MU[t] * MU[t]
Y[d, t] = (X[d, t] - MU[t]) * rsqrt(VAR[t] + eps)
"""

RMSNORM = """
rank D
rank T
input  X[D, T] : f32
input  W[D] : f32
output Y[D, T] : f32
SS[t]   = sum{d} (X[d, t] * X[d, t])
Y[d, t] = W[d] * X[d, t] * rsqrt(SS[t] / D + 1e-6)
"""

LINEAR_ATTENTION = """
rank E
rank F
rank M
rank P
input  Q[E, P] : f32
input  K[E, M] : f32
input  V[F, M] : f32
output O[F, P] : f32
KV[e, f] = relu(K[e, m]) * V[f, m]
KS[e]    = relu(K[e, m])
O[f, p]  = sum{e} (relu(Q[e, p]) * KV[e, f]) / sum{e} (relu(Q[e, p]) * KS[e])
"""

DECODE_SPLIT = """
rank E = 128
rank F = 128
rank M
rank MC = 16
rank MI = M / MC
split M -> MC, MI
input  q[E] : f16
input  K[E, M] : f16
input  V[F, M] : f16
output o[F] : f16
tensor S[MC, MI] : f32 = -inf
S[mc, mi]  = q[e] * K[e, mc*MI + mi]
LMX[mc]    = max{mi} S[mc, mi]
LE[mc, mi] = exp(S[mc, mi] - LMX[mc])
LD[mc]     = sum{mi} LE[mc, mi]
LO[f, mc]  = LE[mc, mi] * V[f, mc*MI + mi]
GMX[]      = max{mc} LMX[mc]
o[f]       = sum{mc} (exp(LMX[mc] - GMX[]) * LO[f, mc]) / sum{mc} (exp(LMX[mc] - GMX[]) * LD[mc])
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (LAYERNORM, {"D": 3, "T": 1}),
        (LAYERNORM_ONE_STATISTICS_PASS, {"D": 2, "T": 1}),
        (RMSNORM, {"D": 2, "T": 1}),
        (LINEAR_ATTENTION, {"E": 1, "F": 1, "M": 1, "P": 1}),
        (DECODE_SPLIT, {"M": 1, "MC": 2, "MI": 2, "E": 1, "F": 1}),
    ],
    ids=["layernorm", "layernorm_fused_stats", "rmsnorm", "linear_attention", "decode_split"],
)
def test_cascades_the_analysis_was_not_written_for(text, expected):
    assert analyze_passes(load(text)).passes == expected


def test_layernorm_witnesses():
    d = analyze_passes(load(LAYERNORM)).rank("D")
    assert [(w.reducer.einsum, w.consumer.einsum, w.tensor) for w in d.witnesses] == [
        ("MU", "VAR", "X"),
        ("VAR", "Y", "X"),
    ]


def _rename(text: str, names: dict[str, str]) -> str:
    for old, new in names.items():
        text = re.sub(rf"\b{old}\b", new, text)
    return text


@pytest.mark.parametrize(
    "file", ["attention_3pass.ein", "attention_1pass.ein", "attention_2pass.ein"]
)
def test_analysis_follows_the_definition_not_the_names(file):
    text = (EXAMPLES / file).read_text()
    c = load(text)
    names = {t.name: f"T{i}x" for i, t in enumerate(c.tensors)}
    renamed = load(_rename(text, names))
    assert analyze_passes(renamed).passes == analyze_passes(c).passes
    # statement order does not matter either
    lines = text.splitlines()
    body = [
        x
        for x in lines
        if "] " in x and "=" in x and not x.startswith(("input", "output", "tensor", "init", "#"))
    ]
    shuffled = "\n".join([x for x in lines if x not in body] + list(reversed(body)))
    assert analyze_passes(load(shuffled)).passes == analyze_passes(c).passes


def test_recurrence_does_not_force_a_pass():
    text = """
rank K
input A[K] : f32
output Z[] : f32
init S[0] = 0
S[k + 1] = S[k] + A[k]
Z[] = S[K] * A[k]
"""
    # Z reads the final iterate (a finished reduction over K) and re-reads A: 2 passes,
    # but the recurrence itself streams
    k = analyze_passes(load(text)).rank("K")
    assert k.passes == 2
    assert dict(k.einsums)["S"] == 1


def test_a_pass_that_rereads_no_fiber_has_a_witness_without_a_tensor():
    # S[] sums Q over d (Einstein rule); Z then traverses D again, but reads no D fiber:
    # the second pass is there, and its witness names no re-read tensor (it was a KeyError)
    text = "rank D = 2\ninput Q[D]\nS[] = Q[d]\noutput Z[D]\nZ[d] = S[]\n"
    d = analyze_passes(load(text)).rank("D")
    assert d.passes == 2
    (w,) = d.witnesses
    assert w.tensor == ""
    assert str(w).endswith("Z (line 5) needs S while traversing D again")
    assert d.footprint.kind == "none"
    assert d.to_dict()["witnesses"][0]["tensor"] is None  # type: ignore[index]
