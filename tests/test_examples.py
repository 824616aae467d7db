"""Every example: checks, its expectations hold, its canonical IR is stable (golden)."""

from __future__ import annotations

from pathlib import Path

import pytest

from einsumcc import load
from einsumcc.analysis.expect import check_expectations
from einsumcc.cli import main
from einsumcc.ir.dump import render_cascade
from tests.conftest import EXAMPLES
from tests.golden import assert_golden

FILES = sorted(EXAMPLES.rglob("*.ein"))


def _id(p: Path) -> str:
    return str(p.relative_to(EXAMPLES).with_suffix(""))


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_example(path: Path, capsys, update_golden):
    c = load(path)
    assert c.expects, "every example states its pass count"
    assert check_expectations(c) == []
    text = path.read_text()
    assert text.startswith("#"), "every example opens with a comment saying what it shows"
    assert main(["show", str(path)]) == 0
    shown = capsys.readouterr().out
    assert shown == render_cascade(c)
    assert_golden(shown, f"examples/{_id(path)}/ir.ein", update=update_golden)


def test_required_examples_exist():
    names = {p.name for p in FILES}
    for required in [
        "attention_3pass.ein",
        "attention_1pass.ein",
        "attention_2pass.ein",
        "attention_causal.ein",
        "attention_gqa.ein",
        "softmax.ein",
        "matmul.ein",
    ]:
        assert required in names
    matmul = load(EXAMPLES / "matmul.ein")
    assert [(t.name, t.ranks) for t in matmul.tensors] == [
        ("A", ("M", "K")),
        ("B", ("K", "N")),
        ("Z", ("M", "N")),
    ]
