"""Every complete program in the v2 section of docs/language.md checks, its expectations hold,
and it runs on the oracle."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from einsumcc import load
from einsumcc.analysis.expect import check_expectations
from einsumcc.reference import evaluate, random_inputs

DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"


def programs() -> list[str]:
    text = DOC.read_text("utf-8")
    section = text[text.index("## v2: ") : text.index("## What the checker rejects")]
    return [b for b in re.findall(r"```\n(.*?)```", section, re.S) if b.startswith("cascade ")]


def test_the_v2_section_has_a_program_per_form() -> None:
    assert len(programs()) >= 5


@pytest.mark.parametrize("text", programs(), ids=lambda t: t.split()[1])
def test_doc_program_runs(text: str) -> None:
    c = load(text)
    assert c.expects
    assert check_expectations(c) == []
    out = evaluate(c, random_inputs(c, seed=1))
    assert set(out) == {t.name for t in c.outputs}


def test_doc_claims() -> None:
    by_name = {t.split()[1]: t for t in programs()}
    c = load(by_name["sinks"])
    inputs = random_inputs(c, seed=2)
    out = evaluate(c, inputs)
    a, sink = inputs["A"], inputs["SINK"]
    np.testing.assert_array_equal(out["Z"], np.maximum(sink, a.max(axis=0)))
    np.testing.assert_array_equal(out["W"], sink - np.arange(3))  # no A above 100: the fill
    p = load(by_name["powers"])
    x = random_inputs(p, seed=3)["X"]
    with np.errstate(all="ignore"):
        want = -(x**2) + np.abs(x) ** -0.5 + 512
    np.testing.assert_array_equal(evaluate(p, {"X": x})["Y"], want)
