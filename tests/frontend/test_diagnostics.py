"""The corpus of malformed specs: each gives exit 1, no traceback, and its first error at the
position and with the message its header states.  The full rendering is a golden file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from einsumcc.cli import main
from tests.golden import assert_golden

CORPUS = Path(__file__).resolve().parent.parent / "diagnostics"
FILES = sorted(CORPUS.glob("*.ein"))
HEADER = re.compile(r"^# expect-error: (\d+):(\d+): (.*)$")


def test_corpus_is_large_enough():
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_diagnostic(path: Path, capsys, monkeypatch, update_golden):
    header = HEADER.match(path.read_text().splitlines()[0])
    assert header, f"{path.name} lacks an '# expect-error: L:C: message' header"
    line, col, message = header.groups()
    monkeypatch.chdir(CORPUS)
    status = main(["check", path.name])
    captured = capsys.readouterr()
    assert status == 1
    assert "Traceback" not in captured.err
    assert captured.out == ""
    first = captured.err.splitlines()[0]
    assert first == f"{path.name}:{line}:{col}: error: {message}"
    # the source line and a caret under the culprit follow
    lines = captured.err.splitlines()
    assert lines[1].lstrip().startswith(f"{line} | ")
    caret_line = lines[2]
    gutter = lines[1].index("| ") + 2
    assert caret_line.index("^") - gutter == int(col) - 1
    assert_golden(captured.err, f"diagnostics/{path.stem}.txt", update=update_golden)


def test_independent_errors_are_reported_together(capsys, monkeypatch):
    monkeypatch.chdir(CORPUS)
    assert main(["check", "two_independent_errors.ein"]) == 1
    err = capsys.readouterr().err
    errors = [x for x in err.splitlines() if ": error: " in x]
    assert len(errors) == 2
    assert "'Kx'" in errors[0]
    assert "'q'" in errors[1]


def test_errors_are_sorted_by_position(capsys, monkeypatch):
    monkeypatch.chdir(CORPUS)
    main(["check", "two_independent_errors.ein"])
    err = capsys.readouterr().err
    positions = [tuple(map(int, m.groups())) for m in re.finditer(r"\.ein:(\d+):(\d+): error", err)]
    assert positions == sorted(positions)
