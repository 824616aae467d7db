"""Empty-tile skipping for any masked score: the schedule's visited tiles equal the ideal
(the (query tile, key tile) pairs with at least one surviving point) and equal what the
kernels really execute, counted in the interpreter by a test-mode counter buffer; the results
stay equal to the oracle.  Shapes do not divide the tiles."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from einsumcc.schedule import traffic_for
from einsumcc.schedule.schedule import AxisRole
from einsumcc_triton import compile
from tests.backends._triton import CACHE, F16_TOL, F32_TOL, max_err, run_both
from tests.conftest import EXAMPLES

torch = pytest.importorskip("torch")

HERE = Path(__file__).resolve().parent / "cascades"
Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


def causal(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    return m <= p


def window(w: int) -> Mask:
    return lambda m, p: (m <= p) & (p - m < w)


CASES: list[tuple[Path, dict[str, int], Mask, float]] = [
    (EXAMPLES / "attention_causal.ein", {"M": 960, "P": 1000}, causal, F16_TOL),
    (EXAMPLES / "attention_alibi_causal.ein", {"M": 1000, "M0": 40, "P": 333}, causal, F16_TOL),
    (EXAMPLES / "attention_softcap.ein", {"M": 640, "P": 700}, causal, F16_TOL),
    (EXAMPLES / "attention_sliding_window.ein", {"M": 960, "P": 1000}, window(256), F16_TOL),
    (
        EXAMPLES / "attention_sliding_window.ein",
        {"M": 1000, "M0": 40, "P": 900},
        window(256),
        F16_TOL,
    ),
    (HERE / "sliding_finite.ein", {"M": 640, "P": 300}, window(100), F16_TOL),
    (HERE / "alibi_softcap.ein", {"M": 500, "P": 333}, causal, F32_TOL),
    (HERE / "masked3_offset.ein", {"M": 300, "P": 200}, causal, F32_TOL),
    (HERE / "masked3_alibi_bias.ein", {"M": 400, "P": 300}, causal, F32_TOL),
    (HERE / "masked3_window_finite.ein", {"M": 300, "P": 290}, window(100), F32_TOL),
    (HERE / "masked3_filter_then_bias.ein", {"M": 300, "P": 290}, window(100), F32_TOL),
    (HERE / "masked1_window_bias.ein", {"M": 640, "P": 700}, window(256), F16_TOL),
]


def ideal(k_axes: dict[str, tuple[int, int]], dims: dict[str, int], mask: Mask) -> int:
    """(query tile, key tile) pairs with at least one point where ``mask`` holds."""
    bp, bm = k_axes["p"][1], k_axes["m"][1]
    m = np.arange(dims["M"])[:, None]
    p = np.arange(dims["P"])[None, :]
    keep = mask(m, p)
    tm, tp = math.ceil(dims["M"] / bm), math.ceil(dims["P"] / bp)
    n = 0
    for i in range(tm):
        for j in range(tp):
            n += bool(keep[i * bm : (i + 1) * bm, j * bp : (j + 1) * bp].any())
    return n


def _key_block(schedule_kernel: object, dims: dict[str, int]) -> int:
    k = schedule_kernel
    for a in k.axes:  # type: ignore[attr-defined]
        if a.role is AxisRole.STREAM:
            return int(a.block)
        if a.role is AxisRole.ITERATE:
            return int(dims.get("M0", 64))
    raise AssertionError("no key loop")


@pytest.mark.parametrize(
    ("path", "dims", "mask", "tol"),
    [pytest.param(*c, id=f"{c[0].stem}-{i}") for i, c in enumerate(CASES)],
)
def test_visited_tiles_are_ideal_and_executed(
    path: Path, dims: dict[str, int], mask: Mask, tol: float
) -> None:
    k = compile(path, dims, count_tiles=True, directory=CACHE)
    kernel = k.schedule.kernels[0]
    p_block = kernel.axis("p").block
    axes = {"p": (dims["P"], p_block), "m": (dims["M"], _key_block(kernel, dims))}
    want = ideal(axes, dims, mask)
    report = traffic_for(k.schedule, dims)
    assert report is not None
    visited = [done for kt in report.kernels for (_, done, _) in kt.iterations]
    assert visited == [want] * len(visited), f"visited {visited}, ideal {want}"
    _, ref, got = run_both(k, dims, seed=11)
    executed = k.fn.tile_counts.tolist()
    assert executed == visited
    assert not any(np.isnan(r).any() for r in ref.values())
    assert max_err(ref, got) <= tol


def test_data_mask_on_a_reduced_variable_is_a_diagnostic() -> None:
    from einsumcc import EinError

    text = """cascade dm
rank M
rank P
input X[M, P] : f32
input KEEP[M] : i32
output S[P] : f32
S[p] = sum{m} X[m, p] where KEEP[m] != 0
"""
    with pytest.raises(EinError, match="cannot compile S yet: a filter that reads tensors"):
        compile(text, directory=CACHE)


def test_document_mask_skips_at_run_time_and_is_exact() -> None:
    """A data mask may empty a whole row: the compile-time count is every tile, and the
    kernel skips empty ones at run time only once every row was checked to keep a point
    (tests/backends/test_triton_data_tile_skipping.py counts them against the ideal)."""
    dims = {"M": 640, "P": 300}
    k = compile(EXAMPLES / "document_mask.ein", dims, count_tiles=True, directory=CACHE)
    _, ref, got = run_both(k, dims, seed=4)
    assert max_err(ref, got) <= F16_TOL
    report = traffic_for(k.schedule, dims)
    assert report is not None
    visited = [done for kt in report.kernels for (_, done, _) in kt.iterations]
    assert visited == [3 * 10]
    assert k.fn.tile_counts.tolist()[0] < visited[0]  # some empty tiles were skipped
