"""``einsumcc derive`` and ``einsumcc analyze passes --explain``."""

from __future__ import annotations

from pathlib import Path

import pytest

from einsumcc.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def test_derive_writes_a_file_that_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a.ein"
    assert (
        main(["derive", str(EXAMPLES / "attention_3pass.ein"), "--rank", "M", "-o", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert "3 -> 1 pass over M" in printed
    assert main(["check", str(out)]) == 0
    assert "1 expectation holds" in capsys.readouterr().out


def test_derive_prints_the_cascade_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["derive", str(EXAMPLES / "softmax.ein"), "--rank", "M"]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("# softmax")
    assert "expect passes(M) == 2" in cap.out
    assert "3 -> 2 passes over M" in cap.err
    assert "minimum" in cap.err


def test_derive_check_prints_certificates_and_the_oracle(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["derive", str(EXAMPLES / "attention_3pass.ein"), "--rank", "M", "--tile", "M0=8"]
    assert main([*args, "--check"]) == 0
    err = capsys.readouterr().err
    assert "certificates (sympy):" in err
    assert "proved: exp(" in err
    assert "scores ±80" in err
    assert "finite where the original is: ok" in err
    assert "NOT PROVED" not in err
    assert "FAILED" not in err


def test_derive_errors(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES / "softmax.ein")
    assert main(["derive", path, "--rank", "Q"]) == 1
    assert "no rank 'Q'" in capsys.readouterr().err
    assert main(["derive", path, "--rank", "M", "--tile", "M0=0"]) == 1
    assert "--tile" in capsys.readouterr().err
    assert main(["derive", path, "--rank", "M", "--tile", "P=8"]) == 1
    assert "already a rank" in capsys.readouterr().err


def test_analyze_passes_explain(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["analyze", "passes", str(EXAMPLES / "attention_3pass.ein"), "--rank", "M"]
    assert main([*args, "--explain"]) == 0
    out = capsys.readouterr().out
    assert "pass 2: removed by running max" in out
    assert "pass 3: removed by division deferral" in out
    assert main(["analyze", "passes", str(EXAMPLES / "layernorm.ein"), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "pass 2: no rewrite applies" in out
    assert "minimum" in out
    assert "pass 3: removed by moments" in out
    one = ["analyze", "passes", str(EXAMPLES / "attention_1pass.ein"), "--rank", "M"]
    assert main([*one, "--explain"]) == 0
    assert "extra passes" not in capsys.readouterr().out


def test_tile_on_a_split_rank_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES / "attention_2pass.ein")
    assert main(["derive", path, "--rank", "M", "--tile", "M0=32"]) == 1
    assert "already split" in capsys.readouterr().err
