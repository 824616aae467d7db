"""Split-KV: the merge of independent runs of a recurrence is derived and proved, refused with
the reason otherwise; the split cascade computes what the original computes."""

from __future__ import annotations

import numpy as np
import pytest

from einsumcc import load
from einsumcc.analysis.merging import merge
from einsumcc.ir.dump import render_cascade
from einsumcc.reference import evaluate, random_inputs
from einsumcc.schedule.split_kv import SplitError, split_stream
from tests.conftest import EXAMPLES

ONE_PASS = (EXAMPLES / "attention_1pass.ein").read_text()
SPLITTABLE = (
    "attention_1pass.ein",
    "attention_lse.ein",
    "attention_gqa.ein",
    "attention_sliding_window.ein",
    "attention_sink.ein",
    "document_mask.ein",
    "fusemax/attention_1pass.ein",
)


def verdict(text: str) -> tuple[bool, str, dict[str, str]]:
    c = load(text)
    split = next(s for s in c.splits if s.parent == "M" and len(s.children) == 2)
    m = merge(c, split)
    return m.proved, m.reason, {cb.state: cb.op for cb in m.combines}


def _edit(old: str, new: str, text: str = ONE_PASS) -> str:
    assert old in text, old
    return text.replace(old, new)


@pytest.mark.parametrize("name", SPLITTABLE)
def test_online_softmax_runs_merge_by_max_and_rescaled_sums(name: str) -> None:
    proved, reason, ops = verdict((EXAMPLES / name).read_text())
    assert proved, reason
    assert ops == {"RM": "max", "RD": "rescale", "RNV": "rescale"}


# each edit makes the runs' states impossible to merge into the state of one run
NOT_MERGEABLE = {
    # the denominator is never rescaled: a run's sum is relative to maxima the merge cannot see
    "no rescale of RD": (
        "RD[m1 + 1, p]     = SLD[m1, p] + SPD[m1, p]",
        "RD[m1 + 1, p]     = SLD[m1, p] + RD[m1, p]",
        "merging splits",
    ),
    # the state forgets all but the last chunk: not op(state, chunk) nor linear in itself
    "last chunk only": (
        "RM[m1 + 1, p]     = max(RM[m1, p], LM[m1, p])",
        "RM[m1 + 1, p]     = LM[m1, p]",
        "RM's update",
    ),
    # the numerator rescaled by the denominator: a factor that is not of monoid states
    "factor of a rescaled state": (
        "SPNV[f, m1, p]    = RNV[f, m1, p] * PRM[m1, p]",
        "SPNV[f, m1, p]    = RNV[f, m1, p] * PRM[m1, p] * RD[m1, p]",
        "RNV",
    ),
    # the output reads the state before the last chunk
    "an earlier iterate": (
        "AV[f, p]          = RNV[f, M1, p] / RD[M1, p]",
        "AV[f, p]          = RNV[f, M1 - 1, p] / RD[M1, p]",
        "not its last iterate",
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_MERGEABLE))
def test_unmergeable_recurrences_are_refused(case: str) -> None:
    old, new, why = NOT_MERGEABLE[case]
    proved, reason, _ = verdict(_edit(old, new))
    assert not proved
    assert why in reason, reason


def _counter(init: str) -> str:
    text = _edit("init RD[0, p]     = 0", f"init RD[0, p]     = 0\ninit RC[0, p] = {init}")
    return _edit(
        "AV[f, p]          = RNV[f, M1, p] / RD[M1, p]",
        "RC[m1 + 1, p] = RC[m1, p] + sum{m0} BQK[m1, m0, p]\n"
        "AV[f, p]          = RNV[f, M1, p] / RD[M1, p] + RC[M1, p]",
        text,
    )


def test_a_running_sum_merges_by_sum() -> None:
    proved, reason, ops = verdict(_counter("0"))
    assert proved, reason
    assert ops["RC"] == "sum"
    assert "from the init" in reason


def test_an_init_that_is_not_the_identity_is_merged_once() -> None:
    """Runs start from the identity (0, -inf); a count from 1 or a sink's logit is merged as
    one more run, not once per run."""
    for text in (_counter("1"), (EXAMPLES / "attention_sink.ein").read_text()):
        c = load(text)
        m = merge(c, c.splits[0])
        assert m.proved, m.reason
        assert m.seeded
        out = render_cascade(split_stream(c, m, 4))
        assert "init RM[c, 0, p] = -inf" in out
    assert "GRM[p] = max(max{c} RM[c, M1, p], SINK[])" in out
    assert "exp(SINK[] - GRM[p])" in out
    c = load(_counter("1"))
    again = load(render_cascade(split_stream(c, merge(c, c.splits[0]), 4)))
    dims = {"M": 512, "P": 5}
    inputs = random_inputs(c, dims, seed=9)
    np.testing.assert_allclose(
        evaluate(again, inputs, dims)["AV"], evaluate(c, inputs, dims)["AV"], rtol=1e-9
    )


def test_an_infinite_fill_is_refused() -> None:
    proved, reason, _ = verdict((EXAMPLES / "attention_causal.ein").read_text())
    assert not proved
    assert "fill" in reason
    proved, reason, _ = verdict(
        (EXAMPLES / "attention_causal.ein").read_text().replace("-inf", "-1e30")
    )
    assert proved, reason


@pytest.mark.parametrize("name", SPLITTABLE)
@pytest.mark.parametrize("runs", [2, 4])
def test_the_split_cascade_computes_the_original(name: str, runs: int) -> None:
    c = load(EXAMPLES / name)
    split = next(s for s in c.splits if s.parent == "M" and len(s.children) == 2)
    out = split_stream(c, merge(c, split), runs)
    text = render_cascade(out)
    again = load(text)  # the rewritten cascade is a valid .ein program
    assert f"split M -> C, {', '.join(split.children)}" in text
    chunk = int(c.rank(split.children[1]).affine_extent.number)
    dims = {"M": chunk * runs * 2, "P": 12}
    if "G" not in {r.name for r in c.ranks} and "B" in {r.name for r in c.ranks}:
        dims |= {"B": 1, "H": 2}
    inputs = random_inputs(c, dims, seed=runs)
    want = evaluate(c, inputs, dims)
    got = evaluate(again, inputs, dims)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-9, atol=1e-12)


def test_a_refused_merge_is_not_split() -> None:
    c = load(EXAMPLES / "attention_causal.ein")
    with pytest.raises(SplitError, match="fill"):
        split_stream(c, merge(c, c.splits[0]), 4)
