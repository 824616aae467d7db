"""Split reductions (split-K): the reductions over a streamed rank as partial reductions over
runs and a combine; the rewritten cascade is valid `.ein` and computes the original."""

from __future__ import annotations

import re

import numpy as np
import pytest

from einsumcc import load
from einsumcc.ir.dump import render_cascade
from einsumcc.reference import evaluate, random_inputs
from einsumcc.schedule.split_kv import SplitError
from einsumcc.schedule.split_reduce import reduction_problem, split_reductions
from tests.conftest import EXAMPLES

THREE_PASS = (EXAMPLES / "attention_3pass.ein").read_text()


@pytest.mark.parametrize(
    ("name", "rank", "dims"),
    [
        ("attention_3pass.ein", "M", {"M": 96, "P": 5}),
        ("attention_padding.ein", "M", {"M": 96, "P": 5}),
        ("fusemax/attention_3pass.ein", "M", {"B": 1, "H": 2, "M": 96, "P": 5}),
        ("matmul.ein", "K", {"M": 3, "N": 4, "K": 96}),
        ("paper/cascade1.ein", "K", {"K": 96}),
    ],
)
@pytest.mark.parametrize("runs", [2, 3])
def test_split_reductions_compute_the_original(
    name: str, rank: str, dims: dict[str, int], runs: int
) -> None:
    c = load(EXAMPLES / name)
    dims = {k: v for k, v in dims.items() if k in {r.name for r in c.ranks}}
    out = split_reductions(c, rank, runs)
    text = render_cascade(out)
    assert f"split {rank} -> C, {rank}R" in text
    again = load(text)
    inputs = random_inputs(c, dims, seed=runs)
    want = evaluate(c, inputs, dims)
    got = evaluate(again, inputs, dims)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-9, atol=1e-12)


def test_every_reduction_becomes_a_partial_and_a_combine() -> None:
    text = render_cascade(split_reductions(load(THREE_PASS), "M", 4))
    assert "PGM[c, p] = max{mr} QK[c, mr, p]" in text
    assert "GM[p] = max{c} PGM[c, p]" in text
    assert "PAV[c, f, p] = sum{mr} (A[c, mr, p] * V[f, c*MR + mr])" in text
    assert "QK[c, mr, p] = sum{e} (scale * Q[e, p] * K[e, c*MR + mr])" in text


def _filtered(fill: str, op: str = "max") -> str:
    text = THREE_PASS.replace(
        "GM[p]    = max{m} QK[m, p]", f"GM[p]    = {op}{{m}} QK[m, p] where m <= p"
    )
    return text.replace(
        "output AV[F, P] : f16", f"output AV[F, P] : f16\ntensor GM[P] : f32 = {fill}"
    )


def test_a_filter_moves_to_the_partial_reduction() -> None:
    c = load(_filtered("-inf"))
    out = split_reductions(c, "M", 4)
    text = render_cascade(out)
    assert "PGM[c, p] = max{mr} QK[c, mr, p] where c*MR + mr <= p" in text
    dims = {"M": 64, "P": 70}  # queries past the keys, and runs with no kept key
    inputs = random_inputs(c, dims, seed=1)
    np.testing.assert_allclose(
        evaluate(load(text), inputs, dims)["AV"], evaluate(c, inputs, dims)["AV"], rtol=1e-9
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ((EXAMPLES / "softmax.ein").read_text(), "output Y is indexed by M"),
        ((EXAMPLES / "attention_1pass.ein").read_text(), "M is part of the declared split"),
        (_filtered("0"), "not the identity of max"),
        (
            THREE_PASS.replace("A[m, p]  = SN[m, p] / SD[p]", "A[m, p]  = SN[m + 1, p] / SD[p]"),
            "reads SN at m + 1",
        ),
    ],
    ids=["output-indexed", "recurrence", "fill", "shifted-read"],
)
def test_unsplittable_reductions_are_refused(text: str, why: str) -> None:
    c = load(text)
    problem = reduction_problem(c, "M")
    assert problem is not None
    assert why in problem
    with pytest.raises(SplitError, match=re.escape(why)):
        split_reductions(c, "M", 2)
