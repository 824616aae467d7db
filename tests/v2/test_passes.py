"""Pass analysis of the v2 forms: data filters read like any access, select and ** are
pointwise, sinks set by init add no pass, several outputs change nothing."""

from __future__ import annotations

import pytest

from einsumcc import load
from einsumcc.analysis.expect import check_expectations
from einsumcc.analysis.passes import analyze_passes
from tests.conftest import EXAMPLES

HEADER = """
rank M
rank P
input  X[M, P] : f32
input  SEG[M] : i32
"""


@pytest.mark.parametrize(
    ("name", "rank", "count"),
    [
        ("document_mask.ein", "M", 1),
        ("attention_sink.ein", "M", 1),
        ("attention_lse.ein", "M", 1),
        ("attention_padding.ein", "M", 3),
        ("rmsnorm_power.ein", "D", 2),
        ("squared_relu.ein", "D", 1),
    ],
)
def test_pass_counts_of_the_v2_examples(name: str, rank: str, count: int) -> None:
    c = load(EXAMPLES / name)
    assert analyze_passes(c, rank).rank(rank).count == count
    assert check_expectations(c) == []


def passes(body: str) -> int:
    return analyze_passes(load(HEADER + body), "M").rank("M").count


def test_a_filter_reading_a_finished_reduction_while_streaming_forces_a_pass() -> None:
    body = """
    output Y[M, P] : f32
    GM[p]   = max{m} X[m, p]
    Y[m, p] = X[m, p]   where X[m, p] > GM[p] - 1
    """
    c = load(HEADER + body)
    report = analyze_passes(c, "M").rank("M")
    assert report.count == 2
    assert report.per_einsum == {"GM": 1, "Y": 2}
    assert "GM" in str(report.witnesses[0])


def test_the_same_filter_on_a_reduction_forces_it_too() -> None:
    assert (
        passes("""
    output Y[P] : f32
    GM[p] = max{m} X[m, p]
    Y[p]  = sum{m} X[m, p]   where X[m, p] > GM[p] - 1
    """)
        == 2
    )


def test_a_filter_on_left_hand_variables_only_applies_to_the_result() -> None:
    # Y[p] is empty or not as a whole: the sum runs in pass 1, the filter after it
    assert (
        passes("""
    output Y[P] : f32
    GM[p] = max{m} X[m, p]
    Y[p]  = sum{m} X[m, p]   where GM[p] > 0
    """)
        == 1
    )


def test_a_filter_reading_an_input_along_the_rank_adds_no_pass() -> None:
    assert (
        passes("""
    output Y[P] : f32
    Y[p] = sum{m} X[m, p]   where SEG[m] == 0 or m == 0
    """)
        == 1
    )


def test_select_and_power_are_pointwise() -> None:
    assert (
        passes("""
    output Y[P] : f32
    LR[m, p] = select(X[m, p] > 0, X[m, p] ** 2, -X[m, p] ** 0.5)
    Y[p]     = sum{m} LR[m, p]
    """)
        == 1
    )
    # a select whose condition needs a finished reduction is a read like any other
    assert (
        passes("""
    output Y[M, P] : f32
    S[p]    = sum{m} X[m, p]
    Y[m, p] = select(X[m, p] > S[p], 1, 0)
    """)
        == 2
    )


def test_a_sink_set_by_init_adds_no_pass() -> None:
    body = """
    input  SINK[P] : f32
    output Z[P] : f32
    init R[0, p] = SINK[p]
    R[m + 1, p] = max(R[m, p], X[m, p])
    Z[p] = R[M, p]
    """
    assert passes(body) == 1
