"""The numpy oracle against independent computations written directly in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from einsumcc import EinError, load
from einsumcc.reference import evaluate, random_inputs, round_to_dtype
from tests.conftest import EXAMPLES


def softmax_attention(q, k, v, mask=None):
    """AV[f, p] = sum_m softmax_m(q[:, p] . k[:, m] / sqrt(E)) v[f, m]."""
    s = (q.T @ k) / math.sqrt(q.shape[0])  # [P, M]
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    s = s - s.max(axis=1, keepdims=True)
    w = np.exp(s)
    w = w / w.sum(axis=1, keepdims=True)
    return (w @ v.T).T  # [F, P]


SHAPES = [{"M": 128, "P": 128}, {"M": 256, "P": 96}, {"M": 192, "P": 320}]


@pytest.mark.parametrize("name", ["attention_3pass", "attention_2pass", "attention_1pass"])
@pytest.mark.parametrize("dims", SHAPES, ids=lambda d: f"M{d['M']}_P{d['P']}")
def test_attention_matches_softmax_attention(name, dims):
    c = load(EXAMPLES / f"{name}.ein")
    inputs = random_inputs(c, dims, seed=1)
    out = evaluate(c, inputs, dims)["AV"]
    ref = softmax_attention(inputs["Q"], inputs["K"], inputs["V"])
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dims", SHAPES, ids=lambda d: f"M{d['M']}_P{d['P']}")
def test_causal_matches_masked_attention(dims):
    c = load(EXAMPLES / "attention_causal.ein")
    inputs = random_inputs(c, dims, seed=2)
    out = evaluate(c, inputs, dims)["AV"]
    m = np.arange(dims["M"])[None, :]
    p = np.arange(dims["P"])[:, None]
    ref = softmax_attention(inputs["Q"], inputs["K"], inputs["V"], mask=m <= p)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert np.isfinite(out).all()


@pytest.mark.parametrize(
    "dims",
    [{"M": 128, "P": 64}, {"M": 64, "P": 128, "B": 2}, {"M": 192, "P": 96, "G": 3, "R": 2}],
    ids=["M128_P64", "B2", "G3R2"],
)
def test_gqa_matches_per_head_attention(dims):
    c = load(EXAMPLES / "attention_gqa.ein")
    inputs = random_inputs(c, dims, seed=3)
    out = evaluate(c, inputs, dims)["AV"]
    q, k, v = inputs["Q"], inputs["K"], inputs["V"]
    r_count = dims.get("R", 2)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            g = h // r_count
            ref = softmax_attention(q[b, h], k[b, g], v[b, g])
            np.testing.assert_allclose(out[b, h], ref, rtol=1e-5, atol=1e-5)


def test_softmax_and_matmul():
    c = load(EXAMPLES / "softmax.ein")
    x = np.random.default_rng(0).standard_normal((50, 7))
    y = evaluate(c, {"X": x}, {"M": 50, "P": 7})["Y"]
    e = np.exp(x - x.max(axis=0))
    np.testing.assert_allclose(y, e / e.sum(axis=0), rtol=1e-12)
    c = load(EXAMPLES / "matmul.ein")
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(evaluate(c, {"A": a, "B": b}, {"M": 5, "K": 3, "N": 4})["Z"], a @ b)


@pytest.mark.parametrize("name", ["cascade1", "cascade2", "cascade3"])
def test_paper_cascades_compute_the_same_scalar(name):
    c = load(EXAMPLES / "paper" / f"{name}.ein")
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(33), rng.standard_normal(33)
    z = evaluate(c, {"A": a, "B": b}, {"K": 33})["Z"]
    assert z.shape == ()
    np.testing.assert_allclose(z, np.dot(a, b) * a.sum(), rtol=1e-10)


def test_iterative_tensors_keep_every_iterate():
    c = load(EXAMPLES / "paper" / "cascade3.ein")
    a, b = np.arange(4.0), np.ones(4)
    out = evaluate(c, {"A": a, "B": b}, {"K": 4}, intermediates=True)
    np.testing.assert_array_equal(out["RY"], [0, 0, 1, 3, 6])


def test_filter_fill_and_empty_reductions():
    c = load(
        "rank M = 4\nrank P = 4\ninput X[M, P] : f32\noutput S[P] : f32\n"
        "output G[P] : f32 = -7\n"
        "S[p] = sum{m} X[m, p] where m < p\n"
        "G[p] = max{m} X[m, p] where m < p\n"
    )
    x = np.arange(16.0).reshape(4, 4)
    out = evaluate(c, {"X": x})
    # p = 0 has no surviving point: it holds the fill (0 for S, -7 for G)
    np.testing.assert_array_equal(out["S"], [0, x[0, 1], x[:2, 2].sum(), x[:3, 3].sum()])
    np.testing.assert_array_equal(out["G"], [-7, x[0, 1], x[1, 2], x[2, 3]])


def test_filtered_contraction_skips_infinite_factors():
    # masked points must contribute nothing, even when a factor there is infinite
    c = load(
        "rank M = 3\nrank P = 3\nrank E = 2\ninput A[E, M] : f32\ninput B[E, P] : f32\n"
        "output Z[P] : f32\nZ[p] = A[e, m] * B[e, p] where m <= p\n"
    )
    a = np.array([[1.0, 2.0, np.inf], [1.0, 1.0, 1.0]])
    b = np.ones((2, 3))
    z = evaluate(c, {"A": a, "B": b})["Z"]
    np.testing.assert_array_equal(z[:2], [2.0, 5.0])
    assert np.isinf(z[2])


def test_relative_positions_and_ieee_nan():
    c = load(
        "rank M = 3\nrank P = 3\ninput X[M] : f32\noutput Y[P] : f32\n"
        "Y[p] = sum{m} (X[m] * (p - m))\n"
    )
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(evaluate(c, {"X": x})["Y"], [-8.0, -2.0, 4.0])
    c = load("rank K = 2\ninput A[K] : f32\noutput Z[K] : f32\nZ[k] = A[k] / A[k]\n")
    z = evaluate(c, {"A": np.array([0.0, 2.0])})["Z"]
    assert np.isnan(z[0])
    assert z[1] == 1.0


def test_out_of_range_index_is_a_user_error():
    c = load("rank M = 4\ninput X[M] : f32\noutput Y[M] : f32\nY[m] = X[m + 1]\n")
    with pytest.raises(EinError, match=r"index m \+ 1 of X reaches 4"):
        evaluate(c, {"X": np.zeros(4)})
    # ... unless the filter removes exactly those points
    c = load("rank M = 4\ninput X[M] : f32\noutput Y[M] : f32\nY[m] = X[m + 1] where m < 3\n")
    np.testing.assert_array_equal(evaluate(c, {"X": np.arange(4.0)})["Y"], [1, 2, 3, 0])


def test_input_shape_is_checked():
    c = load(EXAMPLES / "matmul.ein")
    with pytest.raises(EinError, match=r"input 'A' has shape \[2, 2\], expected \[2, 3\]"):
        evaluate(c, {"A": np.zeros((2, 2)), "B": np.zeros((3, 2))}, {"M": 2, "K": 3, "N": 2})


def test_random_inputs_are_seeded_and_rounded():
    c = load(EXAMPLES / "attention_3pass.ein")
    a = random_inputs(c, {"M": 8, "P": 8}, seed=5)
    b = random_inputs(c, {"M": 8, "P": 8}, seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.array_equal(a["Q"], a["Q"].astype(np.float16).astype(np.float64))
    x = np.array([1.0 + 2**-10, 3.14159])
    assert np.all(np.abs(round_to_dtype(x, "bf16") - x) <= np.abs(x) * 2**-8)


def test_a_filter_with_a_constant_beyond_int64_is_exact():
    huge = " * ".join(["99999999999999999999"] * 5)
    c = load(f"rank K = 4\ninput A[K]\noutput Z[K]\nZ[k] = A[k] where k * {huge} < 2 * {huge}\n")
    a = np.arange(1.0, 5.0)
    (z,) = evaluate(c, {"A": a}).values()
    np.testing.assert_array_equal(z, [1.0, 2.0, 0.0, 0.0])
