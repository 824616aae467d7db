"""print -> parse is the identity on the IR; parsing never fails with anything but EinError."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from einsumcc import EinError, evaluate, load
from einsumcc.ir.dump import render_cascade
from einsumcc.reference import random_inputs
from tests.conftest import EXAMPLES
from tests.strategies import cascades

EXAMPLE_TEXTS = {p.name: p.read_text() for p in sorted(EXAMPLES.rglob("*.ein"))}


@given(cascades())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_print_parse_roundtrip(text: str):
    c = load(text)
    printed = render_cascade(c)
    again = load(printed)
    assert again == c
    assert render_cascade(again) == printed
    # the printed form also means the same: same values on the same inputs
    inputs = random_inputs(c, seed=0)
    a = evaluate(c, inputs)
    b = evaluate(again, inputs)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_examples_roundtrip():
    for name, text in EXAMPLE_TEXTS.items():
        c = load(text)
        assert load(render_cascade(c)) == c, name


def _mutate(text: str, data: st.DataObject) -> str:
    lines = text.splitlines()
    kind = data.draw(st.sampled_from(["delete", "swap", "duplicate", "splice", "truncate"]))
    if kind == "delete" and text:
        i = data.draw(st.integers(0, len(text) - 1))
        j = data.draw(st.integers(i, min(len(text), i + 12)))
        return text[:i] + text[j:]
    if kind == "swap" and len(lines) > 1:
        i, j = data.draw(st.integers(0, len(lines) - 1)), data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    if kind == "duplicate" and lines:
        i = data.draw(st.integers(0, len(lines) - 1))
        return "\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
    if kind == "splice":
        i = data.draw(st.integers(0, len(text)))
        junk = data.draw(
            st.sampled_from(["[", "]", "(", "*", "=", "sum{", "m1 + 1", "\\\n", "#", "inf", "-"])
        )
        return text[:i] + junk + text[i:]
    return text[: data.draw(st.integers(0, len(text)))]


@given(st.sampled_from(sorted(EXAMPLE_TEXTS)), st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_mutated_examples_fail_only_with_einerror(name: str, data: st.DataObject):
    text = _mutate(EXAMPLE_TEXTS[name], data)
    try:
        c = load(text)
    except EinError as err:
        rendered = str(err)
        assert rendered.startswith("<string>:") or "error:" in rendered
        return
    # a mutation that still parses must still round-trip
    assert load(render_cascade(c)) == c
