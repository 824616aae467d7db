"""Checker behaviour beyond the error corpus: warnings, derived extents, extensions."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from einsumcc import EinError, load
from einsumcc.ir.nodes import Reduce
from einsumcc.pipeline import load_with_warnings
from einsumcc.reference import evaluate


def warnings_of(text: str) -> list[str]:
    return [d.message for d in load_with_warnings(text)[1]]


def test_fill_zero_flowing_into_exp_warns():
    text = (
        "rank M = 4\nrank P = 4\ninput X[M, P] : f32\noutput Y[P] : f32\n"
        "S[m, p] = X[m, p] where m <= p\nY[p] = sum{m} exp(S[m, p])\n"
    )
    (message,) = warnings_of(text)
    assert "fill 0" in message
    assert "flows into exp in Y" in message
    assert (
        warnings_of(text.replace("S[m, p] = X", "tensor S[M, P] : f32 = -inf\nS[m, p] = X")) == []
    )


def test_mixing_a_split_rank_with_its_tiles_warns():
    text = (
        "rank M = 8\nrank M0 = 4\nrank M1 = M / M0\nsplit M -> M1, M0\n"
        "input K[M] : f32\noutput S[M1, M0] : f32\nS[m1, m0] = K[m]\n"
    )
    (message,) = warnings_of(text)
    assert "'m' and its tiles m1, m0 both index S" in message


def test_unused_intermediate_warns():
    text = "rank K = 2\ninput A[K]\noutput Z[]\nT[k] = A[k]\nZ[] = A[k]\n"
    assert warnings_of(text) == ["tensor 'T' is assigned but never used"]


def test_split_part_without_extent_is_derived():
    c = load(
        "rank M\nrank M0 = 4\nrank M1\nsplit M -> M1, M0\ninput A[M]\noutput Z[M1, M0]\n"
        "Z[m1, m0] = A[m1*M0 + m0]\n"
    )
    m, m0 = (sympy.Symbol(n, integer=True, positive=True) for n in ("M", "M0"))
    assert c.rank("M1").extent == m / m0
    out = evaluate(c, {"A": np.arange(12.0)}, {"M": 12})["Z"]
    np.testing.assert_array_equal(out, np.arange(12.0).reshape(3, 4))


def test_three_way_split():
    c = load(
        "rank P = 24\nrank P2 = 2\nrank P1 = 3\nrank P0 = 4\nsplit P -> P2, P1, P0\n"
        "input A[P]\noutput Z[P2, P1, P0]\nZ[p2, p1, p0] = A[p2*P1*P0 + p1*P0 + p0]\n"
    )
    np.testing.assert_array_equal(
        evaluate(c, {"A": np.arange(24.0)})["Z"], np.arange(24.0).reshape(2, 3, 4)
    )


def test_lhs_split_expression_writes_the_parent_layout():
    c = load(
        "rank G = 2\nrank R = 3\nrank H = G * R\nsplit H -> G, R\ninput X[G, R]\n"
        "output Y[H]\nY[g*R + r] = X[g, r] * 10\n"
    )
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(evaluate(c, {"X": x})["Y"], x.reshape(6) * 10)


def test_safe_div():
    c = load("rank K = 3\ninput A[K]\ninput B[K]\noutput Z[K]\nZ[k] = safe_div(A[k], B[k])\n")
    z = evaluate(c, {"A": np.array([1.0, 2.0, 3.0]), "B": np.array([2.0, 0.0, -1.0])})["Z"]
    np.testing.assert_array_equal(z, [0.5, 0.0, -3.0])


def test_einstein_rule_scopes():
    c = load(
        "rank K = 2\nrank P = 2\ninput A[K, P]\ninput B[P]\noutput X[P]\noutput Y[P]\n"
        "X[p] = A[k, p] + B[p]\nY[p] = -A[k, p] * B[p]\n"
    )
    x, y = c.einsum("X").body, c.einsum("Y").body
    assert not isinstance(x, Reduce)  # sum{k} A[k, p] + B[p]
    assert isinstance(y, Reduce)  # a negated factor stays in the product chain
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([10.0, 20.0])
    out = evaluate(c, {"A": a, "B": b})
    np.testing.assert_array_equal(out["X"], a.sum(axis=0) + b)
    np.testing.assert_array_equal(out["Y"], -(a * b).sum(axis=0))


def test_statement_order_does_not_matter():
    a = load("rank K = 2\ninput A[K]\noutput Z[]\nY[] = A[k]\nZ[] = Y[] * 2\n")
    b = load("rank K = 2\ninput A[K]\noutput Z[]\nZ[] = Y[] * 2\nY[] = A[k]\n")
    assert [e.name for e in b.einsums] == ["Y", "Z"]
    assert a == b


def test_line_continuations():
    c = load("rank K = 2\ninput A[K]\ninput B[K]\noutput Z[]\nZ[] = A[k] * \\\n   B[k]\n")
    assert isinstance(c.einsum("Z").body, Reduce)
    c = load("rank K = 2\ninput A[K]\noutput Z[]\nZ[] = sum{k} (A[k] *\n   2)\n")
    assert isinstance(c.einsum("Z").body, Reduce)


def test_errors_carry_every_problem():
    with pytest.raises(EinError) as err:
        load("rank K = 2\ninput A[K]\noutput Z[]\nX[] = A[q]\nZ[] = B[k]\n")
    assert len(err.value.diagnostics) == 2
