"""The schedule as data: default schedules of the examples, pass analysis and loops, one
kernel per one-pass cascade, tile overrides and their errors, traffic, tile classes."""

from __future__ import annotations

import itertools
import math

import pytest
import sympy

from einsumcc import EinError, load
from einsumcc.analysis.passes import analyze_passes
from einsumcc.ir.cascade import Cascade
from einsumcc.schedule import AxisRole, Schedule, derive_schedule, render_schedule, traffic_for
from einsumcc.schedule.tiles import segments
from tests.conftest import EXAMPLES
from tests.golden import assert_golden

ALL_EXAMPLES = sorted(EXAMPLES.rglob("*.ein"))


def schedule_or_xfail(c: Cascade) -> Schedule:
    """The default schedule; a v2 construct the backend rejects is an expected failure."""
    try:
        return derive_schedule(c)
    except EinError as exc:
        if "yet:" in str(exc):
            pytest.xfail(str(exc).splitlines()[0])
        raise


def example(name: str) -> str:
    return str(EXAMPLES / name)


def test_one_pass_attention_is_flash_attention() -> None:
    s = derive_schedule(load(example("attention_1pass.ein")))
    (k,) = s.kernels
    assert k.grid == ("p",)
    assert k.axis("p").role is AxisRole.GRID
    assert k.axis("p").block == 128
    assert k.axis("m1").role is AxisRole.ITERATE
    assert (k.axis("m0").role, k.axis("m0").block) == (AxisRole.WHOLE, 64)  # M0 is the block
    assert k.stream == "M"
    (loop,) = k.loops
    assert loop.carried == ("RM", "RD", "RNV")
    assert loop.after == ("AV",)
    assert s.placement("BK").where == "view"
    assert s.placement("BQK").where == "registers"
    assert s.placement("RNV").where == "loop-carried"
    assert s.placement("AV").where == "output"
    assert (k.reads, k.writes) == (("Q", "K", "V"), ("AV",))


def test_three_pass_attention_recomputes_per_pass() -> None:
    s = derive_schedule(load(example("attention_3pass.ein")))
    (k,) = s.kernels
    assert [lp.nodes for lp in k.loops] == [
        ("QK", "GM"),
        ("QK", "SN", "SD"),
        ("QK", "SN", "A", "AV"),
    ]
    assert [lp.recomputed for lp in k.loops] == [(), ("QK",), ("QK", "SN")]
    assert [lp.accumulators for lp in k.loops] == [("GM",), ("SD",), ("AV",)]


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_loops_are_the_passes_of_the_streamed_rank(path: object) -> None:
    c = load(str(path))
    s = schedule_or_xfail(c)
    for k in s.kernels:
        if not k.loops:
            continue
        var = k.loops[0].var
        rank = c.var_ranks[var]
        assert len(k.loops) == analyze_passes(c, rank).rank(rank).passes


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_one_pass_over_the_streamed_rank_is_one_kernel(path: object) -> None:
    c = load(str(path))
    s = schedule_or_xfail(c)
    streamed = {k.stream for k in s.kernels if k.stream is not None}
    one_pass = any(analyze_passes(c, r).rank(r).passes == 1 for r in streamed)
    if one_pass and len(s.kernels) > 1:
        # split-KV: the chunks stream once; a small combine kernel without loops follows
        assert [len(k.loops) for k in s.kernels] == [1] + [0] * (len(s.kernels) - 1)
        assert all(k.reads and set(k.reads) <= set(s.kernels[0].writes) for k in s.kernels[1:])
    elif one_pass:
        assert len(s.kernels[0].loops) == 1
        assert "1 kernel launch: the pass analysis gives 1 pass" in render_schedule(s)


def test_gqa_grid_and_batch_ranks() -> None:
    s = derive_schedule(load(example("attention_gqa.ein")))
    (k,) = s.kernels
    assert k.grid == ("p", "r", "g", "b")
    assert [k.axis(v).block for v in k.grid] == [128, 1, 1, 1]


def test_known_small_extents_keep_tl_dot_shapes() -> None:
    # with P = 100 known at compile time P is small, but it is the only free axis of Q in
    # the QK contraction, so it stays tiled (a 128-row tile) rather than one program per row
    s = derive_schedule(load(example("attention_1pass.ein")), {"M": 256, "P": 100})
    assert s.kernels[0].axis("p").block == 128
    mm = derive_schedule(load(example("matmul.ein")), {"M": 16, "N": 32, "K": 20})
    k = mm.kernels[0]
    assert [(k.axis(v).role, k.axis(v).block) for v in ("m", "n", "k")] == [
        (AxisRole.GRID, 16),
        (AxisRole.GRID, 32),
        (AxisRole.WHOLE, 32),
    ]


def test_tile_overrides() -> None:
    c = load(example("attention_1pass.ein"))
    s = derive_schedule(c, tiles={"P": 64, "M0": 128})
    k = s.kernels[0]
    assert (k.axis("p").block, k.axis("m0").block) == (64, 128)
    s3 = derive_schedule(load(example("attention_3pass.ein")), tiles={"M": 32})
    assert s3.kernels[0].axis("m").block == 32


@pytest.mark.parametrize(
    ("tiles", "golden"),
    [
        ({"M1": 2}, "tile_iterative"),
        ({"M0": 32}, "tile_below_extent"),
        ({"P": 100}, "tile_not_power_of_two"),
        ({"Z": 4}, "tile_unknown_rank"),
        ({"M": 64}, "tile_not_iterated"),
    ],
)
def test_illegal_tile_overrides(tiles: dict[str, int], golden: str, update_golden: bool) -> None:
    with pytest.raises(EinError) as info:
        derive_schedule(load(example("attention_1pass.ein")), tiles=tiles)
    text = str(info.value).replace(str(EXAMPLES), "examples")
    assert_golden(text + "\n", f"schedule/{golden}.txt", update=update_golden)


def test_batch_rank_cannot_be_tiled() -> None:
    with pytest.raises(EinError, match="batch rank"):
        derive_schedule(load(example("attention_gqa.ein")), tiles={"R": 2})


def test_materialize_errors() -> None:
    c = load(example("attention_3pass.ein"))
    with pytest.raises(EinError, match="unknown tensor 'XX'"):
        derive_schedule(c, materialize=["XX"])
    with pytest.raises(EinError, match="K is an input"):
        derive_schedule(c, materialize=["K"])
    s = derive_schedule(load(example("attention_1pass.ein")), materialize=["RM"])
    assert any("no later pass reads it" in n for n in s.notes)


# ---------------------------------------------------------------- traffic


def _reads(s: object, dims: dict[str, int]) -> dict[tuple[str, str], int]:
    t = traffic_for(s, dims)  # type: ignore[arg-type]
    assert t is not None
    return {(kt.kernel, tt.tensor): tt.read for kt in t.kernels for tt in kt.tensors}


def test_one_pass_reads_k_and_v_once_per_query_tile() -> None:
    s = derive_schedule(load(example("attention_1pass.ein")))
    dims = {"M": 4096, "P": 4096}
    reads = _reads(s, dims)
    tiles = math.ceil(4096 / 128)
    kv = 64 * 4096 * 2  # E x M, f16
    assert reads[("k0", "K")] == tiles * kv
    assert reads[("k0", "V")] == tiles * kv
    assert reads[("k0", "Q")] == 64 * 4096 * 2
    t = traffic_for(s, dims)
    assert t is not None
    assert t.written == 64 * 4096 * 2
    assert "read once per tile of P (32 in all)" in render_schedule(s, t)


def test_three_pass_rereads_k_three_times() -> None:
    s = derive_schedule(load(example("attention_3pass.ein")))
    reads = _reads(s, {"M": 4096, "P": 4096})
    kv = 64 * 4096 * 2
    assert reads[("k0", "K")] == 3 * 32 * kv
    assert reads[("k0", "V")] == 32 * kv


def test_materialized_intermediate_traffic() -> None:
    s = derive_schedule(load(example("attention_3pass.ein")), materialize=["SN"])
    t = traffic_for(s, {"M": 4096, "P": 4096})
    assert t is not None
    sn = 4096 * 4096 * 4
    by = {(kt.kernel, tt.tensor): tt for kt in t.kernels for tt in kt.tensors}
    assert by[("k0", "SN")].written == sn
    assert by[("k1", "SN")].read == sn
    assert by[("k0", "K")].read == 2 * 32 * 64 * 4096 * 2  # the third pass reads SN, not K


def test_causal_skips_empty_tiles_in_the_traffic() -> None:
    s = derive_schedule(load(example("attention_causal.ein")))
    t = traffic_for(s, {"M": 4096, "P": 4096})
    assert t is not None
    ((_, done, total),) = t.kernels[0].iterations
    # query tile i (128 rows) needs key tiles 0 .. 2i + 1 of 64: sum (2i + 2) over 32 tiles
    assert (done, total) == (sum(2 * i + 2 for i in range(32)), 32 * 64)


# ---------------------------------------------------------------- tile classes


CONDITIONS = [
    "m <= p",
    "m < p",
    "m >= p",
    "p - m < W",
    "m <= p and p - m < W",
    "2*m <= p + 3",
    "m + W > p + 5",
]


@pytest.mark.parametrize("cond", CONDITIONS)
def test_segments_match_brute_force(cond: str) -> None:
    text = f"""
rank M
rank P
rank W = 40
input X[M, P] : f32
output Y[M, P] : f32 = -1
Y[m, p] = X[m, p] where {cond}
output S[P] : f32
S[p] = sum{{m}} Y[m, p]
"""
    c = load(text)
    s = derive_schedule(c, tiles={"P": 16, "M": 8})
    k = next(k for k in s.kernels if k.loops and any("Y" in lp.nodes for lp in k.loops))
    loop = next(lp for lp in k.loops if "Y" in lp.nodes)
    extents = {"M": 100, "P": 90, "W": 40}
    seg = segments(k, loop, dict(extents))
    cond_fn = eval("lambda m, p, W: " + cond.replace(" and ", " and "))
    bm, bp = 8, 16
    for tile_p in range(math.ceil(90 / bp)):
        lo, hi = tile_p * bp, min(tile_p * bp + bp, 90) - 1
        values = {sympy.Symbol("lo.p", integer=True): lo, sympy.Symbol("hi.p", integer=True): hi}
        start, full_lo, full_hi, end = (
            int(e.xreplace(values)) for e in (seg.start, seg.full_lo, seg.full_hi, seg.end)
        )
        for t in range(math.ceil(100 / bm)):
            pts = [
                cond_fn(m, p, 40)
                for m, p in itertools.product(
                    range(t * bm, min(t * bm + bm, 100)), range(lo, hi + 1)
                )
            ]
            full = all(pts) and (t + 1) * bm <= 100
            if full_lo <= t < full_hi:
                assert full, (cond, tile_p, t)
            if not (start <= t < end):
                assert not any(pts), (cond, tile_p, t)  # a skipped tile must be empty


def test_causal_tile_classes() -> None:
    s = derive_schedule(load(example("attention_causal.ein")))
    tiles = s.kernels[0].loops[0].tiles
    assert [site.node for site in tiles.classified] == ["BQK"]
    assert tiles.filtered == "BQK"
    assert not tiles.skip_leading  # from RM = -inf, exp(-inf - -inf) is NaN: not a no-op
    assert tiles.skip_trailing  # every row keeps m = 0, so RM is finite and they are no-ops


def test_schedule_text(update_golden: bool) -> None:
    for name, dims in (
        ("attention_1pass.ein", {"M": 4096, "P": 4096}),
        ("attention_3pass.ein", {"M": 4096, "P": 4096}),
        ("attention_causal.ein", {"M": 4096, "P": 4096}),
    ):
        s = derive_schedule(load(example(name)))
        text = render_schedule(s, traffic_for(s, dims))
        assert_golden(text, f"schedule/{name.removesuffix('.ein')}.txt", update=update_golden)
