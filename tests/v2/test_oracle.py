"""The oracle on every v2 extension (spec §10), against numpy written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from einsumcc import load
from einsumcc.reference import evaluate, random_inputs
from tests.conftest import EXAMPLES


def run(text: str, **inputs: object) -> dict[str, np.ndarray]:
    return evaluate(load(text), inputs)


def softmax_rows(s: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 (keys m) of scores s[m, p]."""
    e = np.exp(s - s.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


# ---------------------------------------------------------------- data-dependent filters


SEGMENTS = """
rank M = 6
rank P = 4
input  X[M, P] : f32
input  SEGK[M] : i32
input  SEGQ[P] : i32
output S[P] : f32 = 7.5
output MX[P] : f32 = -1
S[p]  = sum{m} X[m, p]   where SEGK[m] == SEGQ[p]
MX[p] = max{m} X[m, p]   where SEGK[m] == SEGQ[p] and m <= p
"""


def test_integer_ids_filter_with_an_all_masked_row_holding_the_fill() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 4))
    segk = np.array([0, 0, 1, 1, 1, 2], dtype=np.int32)
    segq = np.array([0, 1, 9, 2], dtype=np.int32)  # query 2's document has no key
    out = run(SEGMENTS, X=x, SEGK=segk, SEGQ=segq)
    same = segk[:, None] == segq[None, :]
    want_s = np.where(same, x, 0.0).sum(axis=0)
    want_s[~same.any(axis=0)] = 7.5
    np.testing.assert_allclose(out["S"], want_s, rtol=1e-14)
    assert out["S"][2] == 7.5
    causal = np.arange(6)[:, None] <= np.arange(4)[None, :]
    keep = same & causal
    want_mx = np.where(keep, x, -np.inf).max(axis=0)
    want_mx[~keep.any(axis=0)] = -1.0  # query 3: its document (2) starts at key 5 > 3
    np.testing.assert_array_equal(out["MX"], want_mx)
    assert out["MX"][3] == -1.0
    assert out["MX"][2] == -1.0


def test_or_and_not_in_filters() -> None:
    text = """
    rank M = 7
    rank P = 3
    input  X[M, P] : f32
    input  KMASK[M] : f32
    input  B[P] : bool
    output Y[P] : f32
    output Z[M, P] : f32 = -2
    Y[p] = sum{m} X[m, p]   where KMASK[m] > 0 or m == 0
    Z[m, p] = X[m, p] * 2   where not (KMASK[m] > 0 and B[p] != 0) or m == p
    """
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 3))
    kmask = np.array([-1.0, 1, 0, 2, -3, 0.5, 0])
    b = np.array([True, False, True])
    out = run(text, X=x, KMASK=kmask, B=b)
    m = np.arange(7)[:, None]
    p = np.arange(3)[None, :]
    keep_y = (kmask[:, None] > 0) | (m == 0)
    np.testing.assert_allclose(out["Y"], np.where(keep_y, x, 0).sum(axis=0), rtol=1e-14)
    keep_z = ~((kmask[:, None] > 0) & b[None, :]) | (m == p)
    np.testing.assert_array_equal(out["Z"], np.where(keep_z, 2 * x, -2.0))


def test_and_binds_tighter_than_or() -> None:
    text = """
    rank M = 8
    input  X[M] : f32
    output Y[M] : f32
    Y[m] = X[m]   where m < 2 or m > 5 and m != 7
    """
    x = np.arange(8.0) + 1
    out = run(text, X=x)
    m = np.arange(8)
    keep = (m < 2) | ((m > 5) & (m != 7))
    np.testing.assert_array_equal(out["Y"], np.where(keep, x, 0.0))


def test_filter_reading_an_intermediate_and_a_param() -> None:
    text = """
    rank M = 5
    rank P = 3
    param t = 0.25
    input  X[M, P] : f32
    output Y[P] : f32
    GM[p]   = max{m} X[m, p]
    Y[p]    = sum{m} X[m, p]   where X[m, p] > GM[p] - t
    """
    x = np.random.default_rng(3).standard_normal((5, 3))
    out = run(text, X=x)
    keep = x > x.max(axis=0) - 0.25
    np.testing.assert_allclose(out["Y"], np.where(keep, x, 0).sum(axis=0), rtol=1e-14)


def test_nonaffine_value_conditions_on_rank_variables() -> None:
    text = """
    rank M = 6
    rank P = 5
    input  X[M, P] : f32
    output Y[M, P] : f32
    Y[m, p] = X[m, p]   where m * p < 6 and m / 2 != 1
    """
    x = np.random.default_rng(4).standard_normal((6, 5))
    out = run(text, X=x)
    m = np.arange(6)[:, None]
    p = np.arange(5)[None, :]
    keep = (m * p < 6) & (m / 2 != 1)
    np.testing.assert_array_equal(out["Y"], np.where(keep, x, 0.0))


# ---------------------------------------------------------------- select and power


def test_select_is_pointwise_and_removes_no_point() -> None:
    text = """
    rank M = 6
    rank P = 2
    input  X[M, P] : f32
    output LR[M, P] : f32
    output S[P] : f32
    LR[m, p] = select(X[m, p] > 0, X[m, p], 0.1 * X[m, p])
    S[p]     = sum{m} select(X[m, p] > 0 and not m == 3, 1, 0)
    """
    x = np.random.default_rng(5).standard_normal((6, 2))
    out = run(text, X=x)
    np.testing.assert_allclose(out["LR"], np.where(x > 0, x, 0.1 * x), rtol=1e-15)
    keep = (x > 0) & (np.arange(6)[:, None] != 3)
    np.testing.assert_array_equal(out["S"], keep.sum(axis=0).astype(float))


def test_minus_x_squared_is_minus_of_the_square() -> None:
    text = """
    rank D = 5
    input  X[D] : f32
    output Y[D] : f32
    output Z[D] : f32
    Y[d] = -X[d] ** 2
    Z[d] = (-X[d]) ** 2
    """
    x = np.array([-2.0, -0.5, 0.0, 1.5, 3.0])
    out = run(text, X=x)
    np.testing.assert_array_equal(out["Y"], -(x**2))
    np.testing.assert_array_equal(out["Z"], x**2)


def test_x_to_the_minus_half_follows_numpy() -> None:
    text = """
    rank D = 6
    input  X[D] : f32
    output Y[D] : f32
    output C[D] : f32
    Y[d] = X[d] ** -0.5
    C[d] = X[d] ** (1 / 3)
    """
    x = np.array([4.0, 0.25, 0.0, -4.0, np.inf, -8.0])
    out = run(text, X=x)
    with np.errstate(all="ignore"):
        want = np.power(x, -0.5)
        cube = np.power(x, 1 / 3)
    np.testing.assert_array_equal(out["Y"], want)  # 0 -> inf, negative -> nan
    assert out["Y"][2] == np.inf
    assert np.isnan(out["Y"][3])
    np.testing.assert_array_equal(out["C"], cube)
    assert np.isnan(out["C"][5])  # (-8.0) ** (1/3) is NaN, as in numpy


def test_power_is_right_associative_and_tighter_than_reductions() -> None:
    text = """
    rank D = 4
    param big = 2 ** 3 ** 2
    input  X[D] : f32
    output S[] : f32
    output T[] : f32
    output B[] : f32
    S[] = sum{d} X[d] ** 2
    T[] = (sum{d} X[d]) ** 2
    B[] = big
    """
    x = np.array([1.0, -2.0, 3.0, 0.5])
    out = run(text, X=x)
    assert float(out["S"]) == float((x**2).sum())
    assert float(out["T"]) == float(x.sum() ** 2)
    assert float(out["B"]) == 512.0


def test_power_in_constants_folds_like_numpy() -> None:
    text = """
    rank D = 2
    param a = (0 - 8) ** (1 / 3)
    param b = 0 ** -1
    param c = 4 ** -0.5
    input  X[D] : f32
    output Y[D] : f32
    Y[d] = X[d] + a + b + c
    """
    out = run(text, X=np.zeros(2))
    assert np.isnan(out["Y"]).all()
    text2 = text.replace("Y[d] = X[d] + a + b + c", "Y[d] = X[d] + c + select(b > 1e308, 1, 0)")
    np.testing.assert_array_equal(run(text2, X=np.zeros(2))["Y"], [1.5, 1.5])


# ---------------------------------------------------------------- inits, fills, outputs


def test_tensor_valued_init_reads_an_input_and_its_own_index() -> None:
    text = """
    rank K = 5
    rank F = 3
    input  A[K, F] : f32
    input  B0[F] : f32
    output Z[F] : f32
    init R[0, f] = B0[f] * 2 + f
    R[k + 1, f] = R[k, f] + A[k, f]
    Z[f] = R[K, f]
    """
    rng = np.random.default_rng(6)
    a = rng.standard_normal((5, 3))
    b0 = rng.standard_normal(3)
    out = run(text, A=a, B0=b0)
    np.testing.assert_allclose(out["Z"], b0 * 2 + np.arange(3) + a.sum(axis=0), rtol=1e-14)


def test_tensor_valued_fill_of_empty_points() -> None:
    text = """
    rank M = 4
    rank P = 5
    input  X[M, P] : f32
    input  D[P] : f32
    output Y[P] : f32 = D[p] - p
    Y[p] = max{m} X[m, p]   where m > p
    """
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 5))
    d = rng.standard_normal(5)
    out = run(text, X=x, D=d)
    keep = np.arange(4)[:, None] > np.arange(5)[None, :]
    want = np.where(keep, x, -np.inf).max(axis=0)
    empty = ~keep.any(axis=0)
    want[empty] = (d - np.arange(5))[empty]
    np.testing.assert_array_equal(out["Y"], want)


def test_several_outputs_in_declaration_order() -> None:
    text = """
    rank M = 3
    input  X[M] : f32
    output B[] : f32
    output A[M] : f32
    A[m] = X[m] * 2
    B[]  = sum{m} X[m]
    """
    x = np.array([1.0, 2.0, 4.0])
    out = run(text, X=x)
    assert list(out) == ["B", "A"]
    np.testing.assert_array_equal(out["A"], 2 * x)
    assert float(out["B"]) == 7.0


# ---------------------------------------------------------------- the examples


def attention_ref(q: np.ndarray, k: np.ndarray, v: np.ndarray, keep: np.ndarray, sink=None):
    """O[f, p] and LSE[p] of softmax attention over keys m where keep[m, p]."""
    s = (k.T @ q) / np.sqrt(q.shape[0])  # s[m, p]
    s = np.where(keep, s, -np.inf)
    top = s.max(axis=0)
    if sink is not None:
        top = np.maximum(top, sink)
    e = np.exp(s - top)
    den = e.sum(axis=0) + (np.exp(sink - top) if sink is not None else 0.0)
    return (v @ e) / den, top + np.log(den)


def example_inputs(name: str, dims: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    c = load(EXAMPLES / name)
    return random_inputs(c, dims, seed=seed)


def test_document_mask_example_against_numpy() -> None:
    dims = {"M": 192, "P": 192}
    inputs = example_inputs("document_mask.ein", dims)
    lengths = [5, 70, 1, 100, 16]  # sorted ids: documents of random lengths, packed
    ids = np.repeat(np.arange(len(lengths)), lengths).astype(np.float64)
    inputs["SEGQ"] = ids
    inputs["SEGK"] = ids
    out = evaluate(load(EXAMPLES / "document_mask.ein"), inputs, dims)
    m = np.arange(192)[:, None]
    p = np.arange(192)[None, :]
    keep = (m <= p) & (ids[:, None] == ids[None, :])
    want, _ = attention_ref(inputs["Q"], inputs["K"], inputs["V"], keep)
    np.testing.assert_allclose(out["AV"], want, rtol=1e-10, atol=1e-12)


def test_attention_sink_example_against_numpy() -> None:
    dims = {"M": 128, "P": 32}
    inputs = example_inputs("attention_sink.ein", dims)
    inputs["SINK"] = np.asarray(1.25)
    out = evaluate(load(EXAMPLES / "attention_sink.ein"), inputs, dims)
    keep = np.ones((128, 32), dtype=bool)
    want, _ = attention_ref(inputs["Q"], inputs["K"], inputs["V"], keep, sink=1.25)
    np.testing.assert_allclose(out["AV"], want, rtol=1e-10, atol=1e-12)


def test_attention_lse_example_against_numpy() -> None:
    dims = {"M": 128, "P": 20}
    inputs = example_inputs("attention_lse.ein", dims)
    out = evaluate(load(EXAMPLES / "attention_lse.ein"), inputs, dims)
    assert list(out) == ["AV", "LSE"]
    keep = np.ones((128, 20), dtype=bool)
    want_o, want_lse = attention_ref(inputs["Q"], inputs["K"], inputs["V"], keep)
    np.testing.assert_allclose(out["AV"], want_o, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["LSE"], want_lse, rtol=1e-12)


def test_attention_padding_example_against_numpy() -> None:
    dims = {"M": 37, "P": 11}
    inputs = example_inputs("attention_padding.ein", dims, seed=3)
    inputs["KVALID"][:] = 0.0  # every key padding: only key 0 survives (or m == 0)
    inputs["KVALID"][[4, 9, 30]] = 1.0
    out = evaluate(load(EXAMPLES / "attention_padding.ein"), inputs, dims)
    m = np.arange(37)
    keep = np.broadcast_to(((inputs["KVALID"] != 0) | (m == 0))[:, None], (37, 11))
    want, _ = attention_ref(inputs["Q"], inputs["K"], inputs["V"], keep)
    np.testing.assert_allclose(out["AV"], want, rtol=1e-10, atol=1e-12)


def test_rmsnorm_power_example_against_numpy_and_the_v1_rmsnorm() -> None:
    dims = {"D": 33, "N": 7}
    inputs = example_inputs("rmsnorm_power.ein", dims)
    out = evaluate(load(EXAMPLES / "rmsnorm_power.ein"), inputs, dims)
    x, g = inputs["X"], inputs["G"]
    want = x / np.sqrt((x**2).mean(axis=0) + 1e-6) * g[:, None]
    np.testing.assert_allclose(out["Y"], want, rtol=1e-12)


def test_squared_relu_example_against_numpy() -> None:
    dims = {"D": 9, "F": 5, "N": 4}
    inputs = example_inputs("squared_relu.ein", dims)
    out = evaluate(load(EXAMPLES / "squared_relu.ein"), inputs, dims)
    h = inputs["W"] @ inputs["X"]
    np.testing.assert_allclose(out["Y"], np.where(h > 0, h**2, 0.0), rtol=1e-12)


@pytest.mark.parametrize("value", [0, 3, 2**31 - 1])
def test_integer_ids_are_compared_exactly(value: int) -> None:
    text = f"""
    rank M = 3
    input  ID[M] : i32
    input  X[M] : f32
    output Y[] : f32
    Y[] = sum{{m}} X[m]   where ID[m] == {value}
    """
    ids = np.array([value, value - 1, value], dtype=np.int64)
    out = run(text, ID=ids, X=np.array([1.0, 2.0, 4.0]))
    assert float(out["Y"]) == 5.0
