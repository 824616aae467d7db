"""Refining a split's chunks: proved for recurrences that fold chunks as they fold their union,
refused (with the reason) for everything that would see the chunk size."""

from __future__ import annotations

import pytest

from einsumcc import load
from einsumcc.analysis.refinement import refinement
from einsumcc.schedule.refine import refine_chunks
from tests.conftest import EXAMPLES

ONE_PASS = (EXAMPLES / "fusemax" / "attention_1pass.ein").read_text()


def verdict(text: str) -> tuple[bool, str]:
    c = load(text)
    split = next(s for s in c.splits if s.parent == "M")
    r = refinement(c, split)
    return r.proved, r.reason


@pytest.mark.parametrize(
    "name",
    [
        "fusemax/attention_1pass.ein",
        "attention_1pass.ein",
        "attention_lse.ein",
        "attention_sink.ein",
        "attention_gqa.ein",
    ],
)
def test_online_softmax_recurrences_are_proved(name: str) -> None:
    proved, reason = verdict((EXAMPLES / name).read_text())
    assert proved, reason
    assert "RM, RD, RNV" in reason


def _edit(old: str, new: str, text: str = ONE_PASS) -> str:
    assert old in text, old
    return text.replace(old, new)


# each edit changes what the cascade computes as a function of the chunk size
NOT_INVARIANT = {
    # the denominator is never rescaled: it sums exp(s - max of its own chunk)
    "no rescale of RD": (
        "RD[b, h, m1 + 1, p]     = SLD[b, h, m1, p] + SPD[b, h, m1, p]",
        "RD[b, h, m1 + 1, p]     = SLD[b, h, m1, p] + RD[b, h, m1, p]",
        "folding chunks",
    ),
    # the state forgets all but the last chunk
    "last chunk only": (
        "RM[b, h, m1 + 1, p]     = max(RM[b, h, m1, p], LM[b, h, m1, p])",
        "RM[b, h, m1 + 1, p]     = LM[b, h, m1, p]",
        "folding chunks",
    ),
    # the chunk's position enters as a value
    "chunk index as a value": (
        "SLN[b, h, m1, m0, p]    = exp(BQK[b, h, m1, m0, p] - RM[b, h, m1 + 1, p])",
        "SLN[b, h, m1, m0, p]    = exp(BQK[b, h, m1, m0, p] - RM[b, h, m1 + 1, p]) * m0",
        "m0: not a function of M's index",
    ),
    # keys read in reverse inside each chunk: not a function of m1*M0 + m0
    "reversed inside the chunk": (
        "BK[b, h, e, m1, m0]     = K[b, h, e, m1*M0 + m0]",
        "BK[b, h, e, m1, m0]     = K[b, h, e, m1*M0 + M0 - 1 - m0]",
        "alone",
    ),
    # the extent of a chunk used as a value
    "chunk size as a value": (
        "BQK[b, h, m1, m0, p]    = Q[b, h, e, p] * BK[b, h, e, m1, m0]",
        "BQK[b, h, m1, m0, p]    = Q[b, h, e, p] * BK[b, h, e, m1, m0] / M0",
        "M0: not a function of M's index",
    ),
    # the output reads the state before the last chunk
    "an earlier iterate": (
        "AV[b, h, f, p]          = RNV[b, h, f, M1, p] / RD[b, h, M1, p]",
        "AV[b, h, f, p]          = RNV[b, h, f, M1 - 1, p] / RD[b, h, M1, p]",
        "not its last iterate",
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_INVARIANT))
def test_chunk_dependent_cascades_are_refused(case: str) -> None:
    old, new, why = NOT_INVARIANT[case]
    proved, reason = verdict(_edit(old, new))
    assert not proved
    assert why in reason, reason


def test_a_counter_of_chunks_is_refused() -> None:
    text = _edit(
        "tensor RNV[B, H, F, M1+1, P] : f16",
        "tensor RNV[B, H, F, M1+1, P] : f16\ntensor RC[B, H, M1+1, P] : f16",
    )
    text = _edit(
        "init RD[b, h, 0, p]     = 0", "init RD[b, h, 0, p]     = 0\ninit RC[b, h, 0, p] = 0", text
    )
    text = _edit(
        "AV[b, h, f, p]          = RNV[b, h, f, M1, p] / RD[b, h, M1, p]",
        "RC[b, h, m1 + 1, p] = RC[b, h, m1, p] + 1\n"
        "AV[b, h, f, p]          = RNV[b, h, f, M1, p] / RD[b, h, M1, p] + RC[b, h, M1, p]",
        text,
    )
    proved, reason = verdict(text)
    assert not proved
    assert "RC" in reason


def test_an_infinite_fill_is_refused() -> None:
    # causal: a refined chunk may hold no kept key where the declared chunk held one
    text = (EXAMPLES / "attention_causal.ein").read_text()
    proved, reason = verdict(text)
    assert not proved
    assert "fill" in reason


def test_a_finite_fill_is_proved() -> None:
    text = (EXAMPLES / "attention_causal.ein").read_text()
    assert "-inf" in text
    proved, reason = verdict(text.replace("-inf", "-1e30"))
    assert proved, reason


def test_refine_chunks_cuts_large_declared_chunks_only() -> None:
    c = load(EXAMPLES / "fusemax" / "attention_1pass.ein")
    refined, notes = refine_chunks(c)
    assert refined.rank("M0").affine_extent.number == 64
    assert "M0 refined from 256 to 64" in notes[0]
    # given extents or tiles are kept
    for dims, tiles in (({"M0": 256}, None), (None, {"M0": 256}), ({"M1": 4}, None)):
        same, notes = refine_chunks(c, dims, tiles)
        assert same is c
        assert notes == ()
    # 64-key chunks are already the tile
    small = load(EXAMPLES / "attention_1pass.ein")
    assert refine_chunks(small) == (small, ())


def test_refusal_is_a_note() -> None:
    c = load(_edit(*NOT_INVARIANT["no rescale of RD"][:2]))
    same, notes = refine_chunks(c)
    assert same is c
    assert "M0 = 256 is kept as declared" in notes[0]
