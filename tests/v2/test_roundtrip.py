"""print -> parse is the identity on v2 programs, and the printed form means the same."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

from einsumcc import load
from einsumcc.ir.dump import render_cascade
from einsumcc.reference import evaluate, random_inputs
from tests.v2.strategies import v2_programs


@given(v2_programs())
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=60)
def test_v2_print_parse_roundtrip(text: str) -> None:
    c = load(text)
    printed = render_cascade(c)
    again = load(printed)
    assert again == c
    assert render_cascade(again) == printed
    inputs = random_inputs(c, seed=0)
    a = evaluate(c, inputs)
    b = evaluate(again, inputs)
    assert list(a) == ["Y", "Z", "R"]
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_printed_forms() -> None:
    text = (
        "rank D = 3\ninput X[D] : f32\noutput Y[D] : f32\n"
        "Y[d] = (-X[d]) ** 2 + -X[d] ** 2 + 2 ** 3 ** 2 + (2 ** 3) ** 2 + X[d] ** -0.5"
        " + select(not (X[d] > 0 or d == 1) and d != 2, 1, 0)"
        "   where (X[d] > 0 or d == 0) and not X[d] == 1 and d <= 2\n"
    )
    shown = render_cascade(load(text)).splitlines()[-1]
    assert shown == (
        "Y[d] = (-X[d]) ** 2 + -X[d] ** 2 + 2 ** 3 ** 2 + (2 ** 3) ** 2 + X[d] ** -0.5"
        " + select(not (X[d] > 0 or d == 1) and d != 2, 1, 0)"
        " where d <= 2 and (X[d] > 0 or d == 0) and not X[d] == 1"
    )
