from __future__ import annotations

from einsumcc.cli import main


def test_demo_runs(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "attention_1pass.ein" in out
