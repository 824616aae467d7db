"""End to end: cascades derived to their minimum number of passes, checked on the oracle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import einsumcc
from einsumcc.reference import evaluate, random_inputs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CASCADES = Path(__file__).resolve().parent / "cascades"


def derive(path: Path, rank: str, tile: tuple[str, int] | None = None) -> einsumcc.derive:
    return einsumcc.derive(einsumcc.load(path), rank, tile=tile)


def test_attention_3pass_derives_to_cascade_5() -> None:
    d = derive(EXAMPLES / "attention_3pass.ein", "M")
    assert (d.passes_before, d.passes_after) == (3, 1)
    names = [a.rewrite for a in d.rewrites]
    assert {"division deferral", "running max", "fusion"} <= set(names)
    assert d.proved
    assert einsumcc.passes(d.cascade, "M").count == 1
    five = einsumcc.load(EXAMPLES / "attention_1pass.ein")
    dims = {"M": 128, "P": 8}
    x = random_inputs(five, dims, seed=3)
    want = evaluate(five, x, dims)["AV"]
    got = evaluate(d.cascade, x, dims)["AV"]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_tiled_attention_is_flashattention_form_and_equals_cascade_5() -> None:
    d = derive(EXAMPLES / "attention_3pass.ein", "M", ("M0", 32))
    assert d.passes_after == 1
    assert "split M -> M1, M0" in d.text
    assert "RGM[m1 + 1, p]" in d.text
    five = einsumcc.load(EXAMPLES / "attention_1pass.ein")
    dims = {"M": 128, "P": 4}
    x = random_inputs(five, dims, seed=1)
    np.testing.assert_allclose(
        evaluate(d.cascade, x, dims)["AV"], evaluate(five, x, dims)["AV"], rtol=1e-10
    )


def test_attention_2pass_derives_to_one_pass() -> None:
    d = derive(EXAMPLES / "attention_2pass.ein", "M")
    assert (d.passes_before, d.passes_after) == (2, 1)
    assert d.check(dims={"M": 128, "P": 4}).ok


def test_softmax_reaches_its_minimum() -> None:
    """The output Y[m, p] needs the finished max and sum at every element, so 2 passes is the
    minimum for any cascade that computes it; the max and the sum fuse into one pass."""
    d = derive(EXAMPLES / "softmax.ein", "M")
    assert (d.passes_before, d.passes_after) == (3, 2)
    assert any(a.rewrite == "running max" for a in d.rewrites)
    (w,) = d.witnesses
    assert "minimum" in w
    assert "Y" in w
    assert d.check().ok


def test_softmax_statistics_alone_reach_one_pass() -> None:
    text = (EXAMPLES / "softmax.ein").read_text()
    text = text.replace("output Y[M, P]", "output Y[P]").replace(
        "Y[m, p]  = SN[m, p] / SD[p]", "Y[p] = sum{m} (X[m, p] * SN[m, p] / SD[p])"
    )
    d = einsumcc.derive(einsumcc.load(text.replace("expect passes(M) == 3", "")), "M")
    assert (d.passes_before, d.passes_after) == (3, 1)


def test_layernorm_derives_to_two_passes() -> None:
    d = derive(EXAMPLES / "layernorm.ein", "D")
    assert (d.passes_before, d.passes_after) == (3, 2)
    assert "moments" in [a.rewrite for a in d.rewrites]
    assert "minimum" in d.witnesses[0]
    assert d.check().ok


def test_layernorm_tiled_uses_chans_parallel_form() -> None:
    d = derive(EXAMPLES / "layernorm.ein", "D", ("D0", 8))
    assert d.passes_after == 2
    assert "sum{d0}" in d.text
    assert d.check().ok


def test_rmsnorm_stays_two_passes() -> None:
    d = derive(EXAMPLES / "rmsnorm.ein", "D")
    assert (d.passes_before, d.passes_after) == (2, 2)
    assert d.rewrites == ()
    assert "no rewrite applies" in d.witnesses[0]
    assert "minimum" in d.witnesses[0]


def test_paper_cascade1_derives_to_one_pass() -> None:
    d = derive(EXAMPLES / "paper" / "cascade1.ein", "K")
    assert (d.passes_before, d.passes_after) == (2, 1)
    assert d.check().ok


@pytest.mark.parametrize("name", sorted(p.name for p in CASCADES.glob("*.ein")))
def test_held_out_style_cascades_derive_to_one_pass(name: str) -> None:
    d = derive(CASCADES / name, "M")
    assert d.passes_after == 1 < d.passes_before
    assert d.proved
    check = d.check()
    assert check.ok, str(check)
    assert any("±80" in c.label and abs(c.peak - 80) < 1 for c in check.cases)


def test_the_derived_text_keeps_inputs_and_outputs_and_comments_each_block() -> None:
    original = einsumcc.load(EXAMPLES / "attention_3pass.ein")
    d = einsumcc.derive(original, "M")
    again = einsumcc.load(d.text)
    assert [(t.name, t.dims, t.dtype) for t in again.inputs] == [
        (t.name, t.dims, t.dtype) for t in original.inputs
    ]
    assert [(t.name, t.dims, t.dtype) for t in again.outputs] == [
        (t.name, t.dims, t.dtype) for t in original.outputs
    ]
    assert "expect passes(M) == 1" in d.text
    assert "# running max" in d.text
    assert "# correction factor" in d.text
    from einsumcc.analysis.expect import check_expectations

    assert check_expectations(again) == []


def test_derivation_is_frozen() -> None:
    d = derive(EXAMPLES / "attention_3pass.ein", "M")
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.passes_after = 3  # type: ignore[misc]
    assert "3 -> 1" in repr(d)


def test_a_nonlinear_use_of_a_statistic_is_named() -> None:
    text = (
        "rank M\nrank P\ninput X[M, P] : f32\noutput Y[P] : f32\n"
        "G[p] = max{m} X[m, p]\nY[p] = sum{m} tanh(X[m, p] - G[p])\n"
    )
    d = einsumcc.derive(einsumcc.load(text), "M")
    assert d.passes_after == d.passes_before == 2
    assert "no rewrite applies" in d.witnesses[0]


def test_unknown_rank_is_an_error() -> None:
    with pytest.raises(einsumcc.EinError, match="no rank 'Q'"):
        einsumcc.derive(einsumcc.load(EXAMPLES / "softmax.ein"), "Q")


def test_groupnorm_reduces_another_rank_inside_each_step() -> None:
    d = derive(EXAMPLES / "groupnorm.ein", "D")
    assert (d.passes_before, d.passes_after) == (3, 2)
    assert "sum{c}" in d.text  # each step of the recurrence over d reduces c
    assert d.check().ok
    tiled = derive(EXAMPLES / "groupnorm.ein", "D", ("D0", 4))
    assert tiled.passes_after == 2
    assert tiled.check().ok


def test_v2_power_in_a_normalization() -> None:
    text = (
        "rank D\nrank N\nparam eps = 1e-5\ninput X[D, N] : f32\noutput Y[D, N] : f32\n"
        "MU[n] = sum{d} X[d, n] / D\n"
        "VAR[n] = sum{d} (X[d, n] - MU[n]) ** 2 / D\n"
        "Y[d, n] = (X[d, n] - MU[n]) * (VAR[n] + eps) ** -0.5\n"
    )
    d = einsumcc.derive(einsumcc.load(text), "D")
    assert (d.passes_before, d.passes_after) == (3, 2)
    assert d.check().ok


def test_a_data_dependent_filter_on_a_statistic_is_kept() -> None:
    text = (
        "rank M\nrank P\ninput X[M, P] : f32\ninput KM[M] : f32\noutput Y[P] : f32\n"
        "tensor G[P] : f32 = -inf\n"
        "G[p] = max{m} X[m, p] where KM[m] > 0\n"
        "Y[p] = sum{m} exp(X[m, p] - G[p])\n"
    )
    d = einsumcc.derive(einsumcc.load(text), "M")
    assert d.passes_after == d.passes_before == 2  # the filter's reads are not rewritten
    assert "KM[m] > 0" in d.text


def test_a_filter_on_the_probabilities_moves_into_the_sums() -> None:
    d = derive(CASCADES / "masked_probabilities.ein", "M", ("M0", 4))
    assert d.passes_after == 1
    assert d.text.count("where m1*M0 + m0 <= p") == 3
    assert d.check().ok


def test_dead_einsums_are_dropped() -> None:
    d = derive(EXAMPLES / "attention_3pass.ein", "M")
    names = {e.name for e in d.cascade.einsums}
    assert not names & {"GM", "SN", "SD", "A"}  # all folded into the recurrences
    assert "QK" in names


def test_a_statistic_no_rewrite_fits_stays_a_full_reduction_beside_the_others() -> None:
    text = (
        "rank F = 4\nrank M\nrank P\ninput X[M, P] : f32\ninput V[F, M] : f32\n"
        "output O[F, P] : f32\noutput Z[P] : f32\n"
        "G[p] = max{m} X[m, p]\nW[m, p] = exp(X[m, p] - G[p])\nL[p] = sum{m} W[m, p]\n"
        "O[f, p] = sum{m} (W[m, p] * V[f, m] / L[p])\nZ[p] = sum{m} tanh(X[m, p] - G[p])\n"
    )
    d = einsumcc.derive(einsumcc.load(text), "M")
    assert (d.passes_before, d.passes_after) == (3, 2)
    assert "# no rewrite applies to Z" in d.text
    (w,) = d.witnesses
    assert "not linear" in w
    assert d.check().ok


def test_a_rank_walked_through_two_variables_without_a_split() -> None:
    text = (
        "rank K\nrank J = 4\nrank N = K / J\ninput A[K] : f32\noutput Z[] : f32\n"
        "Y[] = max{n, j} A[n*J + j]\nZ[] = sum{n, j} exp(A[n*J + j] - Y[])\n"
    )
    d = einsumcc.derive(einsumcc.load(text), "K")
    assert (d.passes_before, d.passes_after) == (2, 1)
    assert "split K -> N, J" in d.text
    assert "RY[n + 1] = max(RY[n], LY[n])" in d.text
    assert d.check().ok
