"""Soundness of split-KV on random recurrences: whenever the merge is proved, the split
cascade computes what the original computes (the oracle, float64); whenever it is refused,
nothing is split.  The recurrences are drawn from update templates, some mergeable (a running
max, min or sum, a sum rescaled to the running max) and some not (a sum never rescaled, a state
that keeps the last chunk, a sum rescaled by another sum)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from einsumcc import load
from einsumcc.analysis.merging import merge
from einsumcc.ir.dump import render_cascade
from einsumcc.reference import evaluate, random_inputs
from einsumcc.schedule.split_kv import SplitError, split_stream

HEADER = """cascade random_recurrence
rank E = 4
rank M
rank P
rank M0 = 2
rank M1 = M / M0
split M -> M1, M0
input  Q[E, P] : f32
input  K[E, M] : f32
output OUT[P] : f32

S[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0]
LM[m1, p] = max{m0} S[m1, m0, p]
init RM[0, p] = -inf
RM[m1 + 1, p] = max(RM[m1, p], LM[m1, p])
"""

# name -> (init, update, mergeable); updates may read RM (the running max, always present)
TEMPLATES = {
    "min": ("inf", "min(X[m1, p], min{m0} S[m1, m0, p])", True),
    "sum": ("0", "X[m1, p] + sum{m0} S[m1, m0, p]", True),
    "sum_from_2": ("2", "X[m1, p] + sum{m0} S[m1, m0, p]", True),
    "max_seeded": ("0.5", "max(X[m1, p], LM[m1, p])", True),
    "rescaled": (
        "0",
        "X[m1, p] * exp(RM[m1, p] - RM[m1 + 1, p]) + sum{m0} exp(S[m1, m0, p] - RM[m1 + 1, p])",
        True,
    ),
    "rescaled_weighted": (
        "1",
        "X[m1, p] * exp(RM[m1, p] - RM[m1 + 1, p])"
        " + sum{m0} (K[0, m1*M0 + m0] * exp(S[m1, m0, p] - RM[m1 + 1, p]))",
        True,
    ),
    "never_rescaled": ("0", "X[m1, p] + sum{m0} exp(S[m1, m0, p] - RM[m1 + 1, p])", False),
    "last_chunk": ("0", "sum{m0} S[m1, m0, p]", False),
    "squared": ("1", "X[m1, p] * X[m1, p] + sum{m0} S[m1, m0, p]", False),
}


@st.composite
def recurrences(draw: st.DrawFn) -> tuple[str, bool]:
    names = draw(st.lists(st.sampled_from(sorted(TEMPLATES)), min_size=1, max_size=3, unique=True))
    lines = [HEADER]
    terms = ["RM[M1, p]"]
    mergeable = True
    for k, name in enumerate(names):
        init, update, ok = TEMPLATES[name]
        x = f"X{k}"
        lines.append(f"init {x}[0, p] = {init}")
        lines.append(f"{x}[m1 + 1, p] = {update.replace('X[', f'{x}[')}")
        terms.append(f"{x}[M1, p]")
        mergeable &= ok
    lines.append(f"OUT[p] = {' + '.join(terms)}")
    return "\n".join(lines) + "\n", mergeable


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recurrences(), st.sampled_from([2, 4]))
def test_a_proved_merge_computes_the_original(case: tuple[str, bool], runs: int) -> None:
    text, mergeable = case
    c = load(text)
    m = merge(c, c.splits[0])
    assert m.proved == mergeable, (m.reason, text)
    if not m.proved:
        with pytest.raises(SplitError):
            split_stream(c, m, runs)
        return
    split = load(render_cascade(split_stream(c, m, runs)))
    dims = {"M": 2 * runs * 3, "P": 3}
    inputs = random_inputs(c, dims, seed=runs)
    want = evaluate(c, inputs, dims)["OUT"]
    got = evaluate(split, inputs, dims)["OUT"]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
