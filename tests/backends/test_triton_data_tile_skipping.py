"""(v2) Run-time skipping of the key tiles that a data filter empties: document masks over
sorted segment ids run exactly the block-sparse tiles (those with a surviving point), counted
in the interpreter, and stay equal to the oracle; a row with no point anywhere makes its
program skip nothing (still the oracle's result).  Shapes do not divide the tiles."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from einsumcc.reference import evaluate, random_inputs
from einsumcc.schedule.schedule import AxisRole
from einsumcc.schedule.tiles import data_tile_test
from einsumcc_triton import Compiled, compile
from tests.backends._triton import CACHE, F16_TOL, F32_TOL, max_err
from tests.conftest import EXAMPLES

torch = pytest.importorskip("torch")

DOC = EXAMPLES / "document_mask.ein"


def packed_ids(n: int, docs: int, seed: int) -> np.ndarray:
    """Sorted segment ids of ``docs`` documents of random lengths packed into ``n`` tokens."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, n), size=docs - 1, replace=False))
    return np.searchsorted(cuts, np.arange(n), side="right").astype(np.int32)


def blocks(k: Compiled) -> tuple[int, int]:
    """(query tile, key tile) of the compiled kernel."""
    kernel = k.schedule.kernels[0]
    p = int(kernel.axis("p").block)
    for a in kernel.axes:
        if a.role is AxisRole.STREAM:
            return p, int(a.block)
    return p, int(kernel.axis("m0").block)


def block_sparse(keep: np.ndarray, bm: int, bp: int) -> int:
    """(key tile, query tile) pairs of ``keep[m, p]`` with at least one point."""
    m, p = keep.shape
    return sum(
        bool(keep[i * bm : (i + 1) * bm, j * bp : (j + 1) * bp].any())
        for i in range(math.ceil(m / bm))
        for j in range(math.ceil(p / bp))
    )


def run(
    dims: dict[str, int], segk: np.ndarray, segq: np.ndarray, seed: int = 3
) -> tuple[Compiled, float, list[int]]:
    k = compile(DOC, dims, count_tiles=True, directory=CACHE)
    inputs = random_inputs(k.cascade, dims, seed=seed)
    inputs["SEGK"], inputs["SEGQ"] = segk, segq
    ref = evaluate(k.cascade, inputs, dims)
    got = k.run_numpy(inputs)
    assert not any(np.isnan(r).any() for r in ref.values())
    return k, max_err(ref, got), k.fn.tile_counts.tolist()


def test_the_schedule_finds_the_tile_test() -> None:
    k = compile(DOC, {"M": 640, "P": 300}, directory=CACHE)
    kernel = k.schedule.kernels[0]
    lp = kernel.loops[0]
    assert lp.tiles.data_skip
    test = data_tile_test(k.schedule.program, kernel, lp)  # type: ignore[arg-type]
    assert test is not None
    assert (test.key.tensor, test.op, test.row.tensor) == ("SEGK", "==", "SEGQ")


@pytest.mark.parametrize(
    ("n", "docs", "seed"), [(640, 5, 0), (960, 9, 1), (704, 16, 2), (640, 1, 3)]
)
def test_sorted_ids_run_the_block_sparse_tiles(n: int, docs: int, seed: int) -> None:
    """Same ids on both sides (a packed batch); M = P = n, not a multiple of the tile of P."""
    dims = {"M": n, "P": n}
    ids = packed_ids(n, docs, seed)
    k, err, executed = run(dims, ids, ids)
    assert err <= F16_TOL
    bp, bm = blocks(k)
    m = np.arange(n)[:, None]
    p = np.arange(n)[None, :]
    keep = (m <= p) & (ids[:, None] == ids[None, :])
    assert executed == [block_sparse(keep, bm, bp)]


def test_queries_shorter_than_keys() -> None:
    """P < M: the queries are the first P tokens of the packed keys."""
    dims = {"M": 960, "P": 300}
    ids = packed_ids(960, 7, 5)
    k, err, executed = run(dims, ids, ids[:300].copy())
    assert err <= F16_TOL
    bp, bm = blocks(k)
    keep = (np.arange(960)[:, None] <= np.arange(300)[None, :]) & (ids[:, None] == ids[None, :300])
    assert executed == [block_sparse(keep, bm, bp)]


def test_a_row_without_points_skips_nothing_in_its_program() -> None:
    """A query whose id no earlier key has: its row is all fill, which the oracle averages
    over every key, so its program evaluates every tile; the others still skip."""
    n = 640
    dims = {"M": n, "P": n}
    ids = packed_ids(n, 6, 7)
    segq = ids.copy()
    segq[5] = 99  # row 5 (program 0) keeps no point
    k, err, executed = run(dims, ids, segq)
    assert err <= F16_TOL
    bp, bm = blocks(k)
    keep = (np.arange(n)[:, None] <= np.arange(n)[None, :]) & (ids[:, None] == segq[None, :])
    sparse = keep.copy()
    sparse[:, :bp] = True  # program 0 runs all its key tiles
    assert executed == [block_sparse(sparse, bm, bp)]
    assert executed[0] > block_sparse(keep, bm, bp)


HERE = Path(__file__).resolve().parent / "cascades"


def variant(text: str, dims: dict[str, int], seed: int) -> tuple[Compiled, float, np.ndarray]:
    k = compile(text, dims, count_tiles=True, directory=CACHE)
    inputs = random_inputs(k.cascade, dims, seed=seed)
    ids = packed_ids(max(dims["M"], dims["P"]), 5, seed)
    inputs["SEGK"], inputs["SEGQ"] = ids[: dims["M"]].copy(), ids[: dims["P"]].copy()
    ref = evaluate(k.cascade, inputs, dims)
    assert not any(np.isnan(r).any() for r in ref.values())
    return k, max_err(ref, k.run_numpy(inputs)), ids


def test_three_passes_skip_in_the_passes_after_the_max() -> None:
    """Streamed (unsplit) key rank, three passes: the max pass skips the causal tiles at
    compile time, the two others skip the data filter's empty tiles at run time."""
    text = (HERE / "masked3_offset.ein").read_text()
    text = text.replace(
        "input  V[F, M] : f32", "input  V[F, M] : f32\ninput  SEGQ[P] : i32\ninput  SEGK[M] : i32"
    )
    text = text.replace("tensor QK[M, P] : f32 = -inf", "tensor QK[M, P] : f32 = -1e30")
    text = text.replace("where m <= p", "where m <= p and SEGK[m] == SEGQ[p]")
    dims = {"M": 300, "P": 290}
    k, err, ids = variant(text, dims, 2)
    assert err <= F32_TOL
    loops = [lp for kk in k.schedule.kernels for lp in kk.loops]
    assert [lp.tiles.data_skip for lp in loops] == [False, True, True]
    bp, bm = blocks(k)
    keep = (np.arange(300)[:, None] <= np.arange(290)[None, :]) & (
        ids[:300, None] == ids[None, :290]
    )
    counts = k.fn.tile_counts.tolist()
    assert counts[1:] == [block_sparse(keep, bm, bp)] * 2
    assert counts[0] > counts[1]


def test_a_data_filter_alone_skips_too() -> None:
    """No affine condition: the document mask without causality."""
    text = DOC.read_text().replace(
        "where m1*M0 + m0 <= p and SEGK[m1*M0 + m0] == SEGQ[p]", "where SEGK[m1*M0 + m0] == SEGQ[p]"
    )
    dims = {"M": 640, "P": 300}
    k, err, ids = variant(text, dims, 1)
    assert err <= F16_TOL
    bp, bm = blocks(k)
    keep = ids[:640, None] == ids[None, :300]
    assert k.fn.tile_counts.tolist() == [block_sparse(keep, bm, bp)]
