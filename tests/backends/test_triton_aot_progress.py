"""AOT compilation shows a progress bar (one step per kernel and target) on stderr, only when
stderr is a terminal and the caller does not ask for quiet; stdout stays untouched."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest

from einsumcc_triton import aot
from tests.backends._triton import compiled
from tests.conftest import EXAMPLES


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    k = compiled(str(EXAMPLES / "attention_1pass.ein"))
    jobs = [(k, 90), (k, 80)]
    monkeypatch.setattr(aot, "PROGRESS_DELAY", 0.0)

    plain = aot.aot_compile_many(jobs)  # stderr captured: not a terminal
    assert capsys.readouterr() == ("", "")

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    shown = aot.aot_compile_many(jobs)
    bar = term.getvalue()
    assert "AOT compile" in bar
    assert "2/2" in bar
    assert "attention_1pass_k0" in bar

    term.seek(0)
    term.truncate()
    quiet = aot.aot_compile_many(jobs, quiet=True)
    assert term.getvalue() == ""
    assert capsys.readouterr().out == ""

    for results in (plain, shown, quiet):
        assert [[(s.kernel, s.arch) for s in r] for r in results] == [
            [("attention_1pass_k0", 90)],
            [("attention_1pass_k0", 80)],
        ]
