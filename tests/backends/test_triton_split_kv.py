"""Split-KV chosen from the shape: a one-pass cascade with few queries runs its recurrence as
independent runs (one program each) merged by a derived second kernel; K and V are read once,
and the result is the original cascade's."""

from __future__ import annotations

from typing import Any

import pytest

from einsumcc import EinError, load
from einsumcc.reference import evaluate, random_inputs
from einsumcc.schedule import Schedule, traffic_for
from einsumcc.schedule.summary import summarize
from einsumcc_triton import compile, compile_schedule
from einsumcc_triton.split import MIN_CHUNKS_PER_RUN, TARGET_PROGRAMS, grid_programs
from tests.backends._triton import CACHE, F16_TOL, max_err
from tests.conftest import EXAMPLES

ONE_PASS = EXAMPLES / "attention_1pass.ein"


def _ratio(s: Schedule, dims: dict[str, int]) -> float:
    """Global memory moved over the compulsory bytes (the report's figure)."""
    t = traffic_for(s, dims)
    assert t is not None
    data = summarize(s, t)
    return float(data["hbm_bytes"] / data["compulsory_bytes"])


def _programs(schedule: Schedule, kernel: int = 0) -> int:
    n = grid_programs(schedule.kernels[kernel])
    assert n is not None
    return n


@pytest.mark.parametrize("p", [1, 16])
def test_decode_splits_the_keys_and_reads_them_once(p: int) -> None:
    dims = {"M": 65536, "P": p}
    _, s = compile_schedule(load(ONE_PASS), dims)
    runs = dict(s.extents)["C"]
    assert runs is not None
    assert runs > 1
    assert dict(s.extents)["M1"] * runs == 1024  # every chunk in exactly one run
    assert dict(s.extents)["M1"] >= MIN_CHUNKS_PER_RUN
    assert len(s.kernels) == 2  # the runs, then the merge
    assert _programs(s) == runs * (1 if p <= 16 else -(-p // 16))
    assert any("split-KV" in n and "GRM[p] = max{c} RM[c, M1, p]" in n for n in s.notes)
    assert _ratio(s, dims) <= 1.25
    # without the split: one program streams every key
    _, one = compile_schedule(load(ONE_PASS), dims, split_kv=1)
    assert _programs(one) == 1
    assert len(one.kernels) == 1


def test_many_programs_are_not_split() -> None:
    dims = {"M": 4096, "P": 128 * TARGET_PROGRAMS}
    _, s = compile_schedule(load(ONE_PASS), dims)
    assert "C" not in dict(s.extents)
    assert not any("split-KV" in n for n in s.notes)


def test_split_traffic_stays_small_next_to_the_inputs() -> None:
    # 64 queries: the runs' states are 64 x 66 floats each; the split is capped so that
    # writing and reading them stays within a quarter of the inputs' bytes
    dims = {"M": 65536, "P": 64}
    _, s = compile_schedule(load(ONE_PASS), dims)
    assert _ratio(s, dims) <= 1.25


@pytest.mark.parametrize(
    ("name", "dims", "runs"),
    [
        ("attention_1pass.ein", {"M": 2048, "P": 3}, None),
        ("attention_1pass.ein", {"M": 1024, "P": 20}, 4),
        ("attention_lse.ein", {"M": 1024, "P": 5}, None),
        ("attention_sink.ein", {"M": 1024, "P": 2}, None),
        ("attention_sliding_window.ein", {"M": 1024, "P": 7}, 4),
        ("document_mask.ein", {"M": 1024, "P": 9}, 8),
    ],
)
def test_split_kernels_match_the_original_cascade(
    name: str, dims: dict[str, int], runs: int | None
) -> None:
    c = load(EXAMPLES / name)
    k = compile(c, dims, directory=CACHE, split_kv=runs)
    assert dict(k.schedule.extents).get("C", 1) > 1
    inputs = random_inputs(c, dims, seed=5)
    ref = evaluate(c, inputs, dims)  # the cascade as written: one run
    assert max_err(ref, k.run_numpy(inputs)) < F16_TOL


def test_forced_splits_that_cannot_hold_are_errors() -> None:
    with pytest.raises(EinError, match="fill that is not a finite constant"):
        compile_schedule(load(EXAMPLES / "attention_causal.ein"), {"M": 4096, "P": 1}, split_kv=4)
    with pytest.raises(EinError, match="do not divide into 3 runs"):
        compile_schedule(load(ONE_PASS), {"M": 4096, "P": 1}, split_kv=3)
    with pytest.raises(EinError, match="no reduction over a streamed rank"):
        compile_schedule(load(EXAMPLES / "softmax.ein"), {"M": 4096, "P": 1}, split_kv=2)


def test_a_refused_merge_is_a_note_not_a_split() -> None:
    _, s = compile_schedule(load(EXAMPLES / "attention_causal.ein"), {"M": 65536, "P": 1})
    assert "C" not in dict(s.extents)
    assert any(n.startswith("split-KV not applied") and "fill" in n for n in s.notes)


def test_a_forced_split_without_dims_keeps_the_extents_for_run_time() -> None:
    k = compile(load(ONE_PASS), None, directory=CACHE, split_kv=2)
    assert dict(k.schedule.extents)["C"] == 2
    dims = {"M": 512, "P": 4}
    c = load(ONE_PASS)
    inputs = random_inputs(c, dims, seed=2)
    assert max_err(evaluate(c, inputs, dims), k.run_numpy(inputs)) < F16_TOL


# ---------------------------------------------------------------- split reductions (split-K)

THREE_PASS = EXAMPLES / "attention_3pass.ein"


def test_a_few_query_multi_pass_cascade_splits_its_reductions() -> None:
    dims = {"M": 65536, "P": 1}
    _, one = compile_schedule(load(THREE_PASS), dims, split_kv=1)
    assert _programs(one) == 1
    _, s = compile_schedule(load(THREE_PASS), dims)
    runs = dict(s.extents)["C"]
    assert runs is not None
    assert runs >= 64
    streamed = [k for k in s.kernels if k.loops]
    assert len(streamed) == 3  # one per pass, each over the runs
    assert all(grid_programs(k) == runs for k in streamed)
    assert any(n.startswith("split reductions: the 3 reductions over M") for n in s.notes)
    assert _ratio(s, dims) <= 1.25  # unsplit: K read twice (2.00x)
    assert _ratio(one, dims) >= 1.9


def test_split_k_for_a_long_contraction() -> None:
    """matmul with 16 rows and a long K: one program becomes one per run of K."""
    dims = {"M": 16, "N": 64, "K": 65536}
    _, s = compile_schedule(load(EXAMPLES / "matmul.ein"), dims)
    runs = dict(s.extents)["C"]
    assert runs is not None
    assert grid_programs(s.kernels[0]) == runs >= 64
    assert _ratio(s, dims) <= 1.25


def test_a_split_the_schedule_would_fuse_back_is_not_kept() -> None:
    """At 4,096 keys the first choice, 16 runs, is small enough for the scheduler to hold all
    runs in one program's registers (no parallelism gained): the next choice is kept."""
    _, s = compile_schedule(load(THREE_PASS), {"M": 4096, "P": 3})
    runs = dict(s.extents)["C"]
    assert runs is not None
    assert 1 < runs < 16
    for k in s.kernels:
        if k.loops:  # every pass runs over the runs (times query tiles or queries)
            n = grid_programs(k)
            assert n is not None
            assert n % runs == 0


@pytest.mark.parametrize(
    ("name", "dims", "runs"),
    [
        ("attention_3pass.ein", {"M": 4096, "P": 3}, None),
        ("attention_padding.ein", {"M": 2048, "P": 5}, 4),
    ],
)
def test_split_reduction_kernels_match_the_original(
    name: str, dims: dict[str, int], runs: int | None
) -> None:
    c = load(EXAMPLES / name)
    k = compile(c, dims, directory=CACHE, split_kv=runs)
    assert dict(k.schedule.extents).get("C", 1) > 1
    inputs = random_inputs(c, dims, seed=6)
    assert max_err(evaluate(c, inputs, dims), k.run_numpy(inputs)) < F16_TOL


def test_a_forced_split_of_an_output_indexed_rank_is_an_error() -> None:
    with pytest.raises(EinError, match="output Y is indexed by M"):
        compile_schedule(load(EXAMPLES / "softmax.ein"), {"M": 4096, "P": 1}, split_kv=2)


def test_a_split_the_scheduler_refuses_falls_back_to_one_run(monkeypatch: Any) -> None:
    import einsumcc.schedule as schedule

    real = schedule.derive_schedule

    def refuse_runs(c: Any, *args: Any, **kwargs: Any) -> Any:
        if "C" in {r.name for r in c.ranks}:
            raise EinError.plain("no schedule for the runs (test)")
        return real(c, *args, **kwargs)

    monkeypatch.setattr(schedule, "derive_schedule", refuse_runs)
    dims = {"M": 65536, "P": 1}
    c, s = compile_schedule(load(ONE_PASS), dims)
    assert "C" not in {r.name for r in c.ranks}
    assert any("runs not split" in n and "(test)" in n for n in s.notes)
    with pytest.raises(EinError, match="test"):  # asked for: the error stands
        compile_schedule(load(ONE_PASS), dims, split_kv=4)


def test_the_json_report_says_what_was_split(capsys: Any) -> None:
    import json

    from einsumcc.cli import main

    assert main(["compile", str(ONE_PASS), "--dims", "M=65536,P=1", "--report", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["extents"]["C"] == 128
    assert any(n.startswith("split-KV: the recurrence over M1 runs as 128") for n in data["notes"])
    assert data["hbm_bytes"] <= 2 * data["compulsory_bytes"]
