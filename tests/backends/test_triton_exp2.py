"""exp(x) lowered as exp2(x * log2(e)), the factor folded into the argument's constant
scale and distributed over the subtraction of the maximum (the FlashAttention form)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from einsumcc_triton.expressions import LOG2E
from tests.backends._triton import F32_TOL, compiled, max_err, run_both
from tests.conftest import EXAMPLES

pytest.importorskip("torch")

HERE = Path(__file__).resolve().parent / "cascades"


def test_scale_inside_exp_is_folded_with_log2e() -> None:
    k = compiled(str(HERE / "scaled_exp.ein"))
    assert "tl.exp(" not in k.source
    folded = repr(0.125 * LOG2E)
    # both terms carry the folded factor, no separate multiply by log2(e) remains
    line = next(x for x in k.source.splitlines() if "tl.exp2(" in x)
    assert line.count(folded) == 2, line
    assert repr(LOG2E) not in line, line
    _, ref, got = run_both(k, {"M": 300, "P": 77}, seed=4)
    assert max_err(ref, got) <= F32_TOL


def test_attention_exponentials_are_exp2() -> None:
    k = compiled(str(EXAMPLES / "attention_causal.ein"), "f32")
    exps = re.findall(r"tl\.exp2?\(", k.source)
    assert exps
    assert set(exps) == {"tl.exp2("}
