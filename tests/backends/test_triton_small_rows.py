"""Few query rows still use tensor cores: a grid rank below 16 rows that a product reads is
padded to 16 masked rows (one program holds every query, K and V are read once); a declared
chunk too wide for a 64-row product is refined when that provably keeps the result."""

from __future__ import annotations

import pytest

from einsumcc import load
from einsumcc.reference import evaluate, random_inputs
from einsumcc_triton import compile, compile_schedule
from tests.backends._triton import CACHE, F16_TOL, max_err
from tests.conftest import EXAMPLES

CASCADES = EXAMPLES.parent / "tests" / "backends" / "cascades"


@pytest.mark.parametrize(
    ("path", "dims"),
    [
        (EXAMPLES / "attention_decode.ein", {"M": 2048, "P": 1}),
        (EXAMPLES / "attention_decode.ein", {"M": 2048, "P": 5}),
        (CASCADES / "differential.ein", {"M": 200, "P": 3}),
    ],
    ids=["decode-P1", "decode-P5", "differential-P3"],
)
def test_few_rows_are_padded_to_a_tensor_core_tile(path: object, dims: dict[str, int]) -> None:
    c = load(path)
    k = compile(c, dims, directory=CACHE)
    first = k.schedule.kernels[0]
    (p_axis,) = [a for a in first.axes if a.rank == "P"]
    assert p_axis.block == 16  # padded from P < 16
    assert "tl.dot(" in k.source
    inputs = random_inputs(c, dims, seed=3)
    ref = evaluate(c, inputs, dims)
    assert max_err(ref, k.run_numpy(inputs)) < F16_TOL


def test_padding_is_not_forced_on_a_given_tile() -> None:
    dims = {"M": 2048, "P": 4}
    k = compile(load(EXAMPLES / "attention_decode.ein"), dims, tiles={"P": 4}, directory=CACHE)
    (p_axis,) = [a for a in k.schedule.kernels[0].axes if a.rank == "P"]
    assert p_axis.block == 4


def test_refined_fusemax_chunks_match_the_declared_cascade() -> None:
    """The kernel runs 64-key chunks; the oracle runs the cascade as written (256 keys)."""
    original = load(EXAMPLES / "fusemax" / "attention_1pass.ein")
    dims = {"B": 1, "H": 2, "M": 768, "P": 100}
    k = compile(original, dims, directory=CACHE)
    assert k.cascade.rank("M0").affine_extent.number == 64
    assert any("M0 refined from 256 to 64" in n for n in k.schedule.notes)
    inputs = random_inputs(original, dims, seed=1)
    ref = evaluate(original, inputs, dims)
    assert max_err(ref, k.run_numpy(inputs)) < F16_TOL
    kept = compile(original, {**dims, "M0": 256}, directory=CACHE)
    assert kept.cascade is original
    assert dict(kept.schedule.extents)["M0"] == 256


@pytest.mark.parametrize("r", [2, 8])
def test_gqa_decode_takes_the_group_s_query_heads_as_rows(r: int) -> None:
    """One query (P = 1) leaves no rows: the R query heads that share a key/value head are the
    rows of the products instead, so each K/V head is read once, not once per query head."""
    from einsumcc.schedule import traffic_for
    from einsumcc.schedule.summary import summarize

    c = load(EXAMPLES / "attention_gqa.ein")
    dims = {"M": 65536, "P": 1, "R": r}
    for split in (None, 1):
        k = compile_schedule(c, dims, split_kv=split)[1]
        rows = [a for a in k.kernels[0].axes if a.role.value == "grid" and a.block > 1]
        assert [a.rank for a in rows] == ["R"]
        t = traffic_for(k, dims)
        assert t is not None
        data = summarize(k, t)
        assert data["hbm_bytes"] <= 1.1 * data["compulsory_bytes"]
    small = {"M": 2048, "P": 1, "R": r}
    kernel = compile(c, small, directory=CACHE)
    inputs = random_inputs(c, small, seed=r)
    assert max_err(evaluate(c, inputs, small), kernel.run_numpy(inputs)) < F16_TOL
