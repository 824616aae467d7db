"""A rank walked through several index variables without a declared split (issue 16's bug):
``A[n*J + j]`` with ``n < N``, ``j < J`` and ``N*J == K`` is a walk of K, split or not."""

from __future__ import annotations

import pytest

import einsumcc
from einsumcc.analysis.passes import analyze_passes

HEAD = "rank K\nrank J = 4\nrank N = K / J\ninput A[K] : f32\ninput B[K] : f32\noutput Z[] : f32\n"


def passes(text: str, rank: str = "K") -> int:
    return analyze_passes(einsumcc.load(text), rank).rank(rank).passes


def test_cascade_1_through_two_variables_is_two_passes() -> None:
    text = HEAD + "Y[] = A[n*J + j] * B[n*J + j]\nZ[] = Y[] * A[n*J + j]\n"
    assert passes(text) == 2
    report = analyze_passes(einsumcc.load(text), "K").rank("K")
    (w,) = report.witnesses
    assert w.reducer.einsum == "Y"
    assert w.consumer.einsum == "Z"
    assert w.tensor == "A"


def test_the_same_with_a_declared_split_agrees() -> None:
    text = HEAD + "split K -> N, J\nY[] = A[n*J + j] * B[n*J + j]\nZ[] = Y[] * A[n*J + j]\n"
    assert passes(text) == 2


def test_cascade_2_through_two_variables_stays_one_pass() -> None:
    text = HEAD + "Y[] = A[n*J + j] * B[n*J + j]\nX[] = A[n*J + j]\nZ[] = Y[] * X[]\n"
    assert passes(text) == 1


@pytest.mark.parametrize("op", ["max", "min"])
def test_a_max_or_min_through_two_variables(op: str) -> None:
    text = HEAD + f"Y[] = {op}{{n, j}} A[n*J + j]\n" + "Z[] = sum{n, j} (exp(A[n*J + j] - Y[]))\n"
    assert passes(text) == 2


def test_the_variables_may_come_in_any_order() -> None:
    text = (
        "rank K = 12\nrank J = 4\nrank N = 3\ninput A[K] : f32\noutput Z[] : f32\n"
        "Y[] = max{n, j} A[j*N + n]\nZ[] = sum{n, j} (A[j*N + n] - Y[])\n"
    )
    assert passes(text) == 2


def test_three_levels() -> None:
    text = (
        "rank K = 24\nrank I = 2\nrank J = 3\nrank N = 4\ninput A[K] : f32\noutput Z[] : f32\n"
        "Y[] = sum{i, j, n} A[i*J*N + j*N + n]\nZ[] = sum{i, j, n} (A[i*J*N + j*N + n] * Y[])\n"
    )
    assert passes(text) == 2


def test_a_partial_walk_is_not_a_walk_of_the_rank() -> None:
    # n*J + j covers 8 of the 12 elements: not the whole fiber of K
    text = (
        "rank K = 12\nrank J = 4\nrank N = 2\ninput A[K] : f32\noutput Z[] : f32\n"
        "Y[] = max{n, j} A[n*J + j]\nZ[] = sum{n, j} (A[n*J + j] - Y[])\n"
    )
    assert passes(text) == 1
    # a stride that is not the inner extent (n*2 + j with j < 4) overlaps: not a walk
    text = (
        "rank K = 12\nrank J = 4\nrank N = 3\ninput A[K] : f32\noutput Z[] : f32\n"
        "Y[] = max{n, j} A[n*2 + j]\nZ[] = sum{n, j} (A[n*2 + j] - Y[])\n"
    )
    assert passes(text) == 1


def test_witnesses_of_a_cascade_whose_recurrence_reads_form_a_cycle() -> None:
    """D reads R at the current iterate and R's next iterate reads D: naming the fiber that the
    consumer re-reads walks that cycle (it recursed without end)."""
    text = (
        "rank K\ninput A[K] : f32\noutput Z[] : f32\n"
        "init R[0] = 0\n"
        "D[k] = A[k] - R[k]\n"
        "R[k + 1] = R[k] + D[k] / (k + 1)\n"
        "Z[] = sum{k} (D[k] * R[K])\n"
    )
    report = analyze_passes(einsumcc.load(text), "K").rank("K")
    assert report.passes == 2
    (w,) = report.witnesses
    assert w.consumer.einsum == "Z"
