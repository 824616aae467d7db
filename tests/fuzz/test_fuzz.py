"""Fuzzing the command line: mutated `.ein` and mapping files never crash it.

The default run tries a few hundred mutants (hypothesis chooses the seeds and shrinks
failures); ``pytest -m fuzz`` runs the long campaign (20,000 `.ein` mutants and 2,000 mapping
mutants, in a subprocess with a 3 GB address-space limit and a 10 s limit per command).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.campaign import ROOT, ein_case, mapping_case
from tests.fuzz.harness import run_cli
from tests.strategies import cascades


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_mutated_ein_files_never_crash(seed: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    text, commands = ein_case(seed, tmp_path_factory.mktemp("ein"))
    for argv in commands:
        outcome = run_cli(argv)
        assert not outcome.bad, f"{argv[0]} on:\n{text}\n{outcome}"
        if outcome.status != 0:
            break


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_mutated_mapping_files_never_crash(
    seed: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    text, commands = mapping_case(seed, tmp_path_factory.mktemp("toml"))
    for argv in commands:
        outcome = run_cli(argv, seconds=20)
        assert not outcome.bad, f"{argv} on:\n{text}\n{outcome}"


@settings(max_examples=40, deadline=None)
@given(text=cascades())
def test_valid_generated_cascades_check_and_evaluate(
    text: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("valid") / "c.ein"
    path.write_text(text, encoding="utf-8")
    assert run_cli(["check", str(path)]).status == 0, text
    outcome = run_cli(["run", str(path)])
    assert outcome.status == 0, f"{text}\n{outcome}"


@pytest.mark.fuzz
def test_long_campaign() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.campaign", "--ein", "20000", "--mapping", "2000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stdout.write(out.stdout)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]


def test_the_harness_sees_a_crash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The judge is not blind: an exception inside a command is a bad outcome."""
    import einsumcc.cli

    def boom(args: object) -> int:
        raise KeyError("?")

    monkeypatch.setattr(einsumcc.cli, "cmd_check", boom)
    path = tmp_path / "a.ein"
    path.write_text("rank K = 2\ninput A[K]\noutput Z[]\nZ[] = sum{k} A[k]\n")
    assert run_cli(["check", str(path)]).bad
