"""The Python API: its docstring examples run as doctests, and its reports are the objects the
command line prints."""

from __future__ import annotations

import doctest
import importlib
import json
import subprocess
import sys

import pytest

import einsumcc
from einsumcc.cli import main

EXAMPLES = einsumcc.pipeline.bundled

DOCTESTED = [
    "einsumcc",
    "einsumcc.pipeline",
    "einsumcc.backend",
    "einsumcc.options",
    "einsumcc.files",
]


@pytest.mark.parametrize("module", DOCTESTED)
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(module)
    result = doctest.testmod(
        mod, extraglobs={"einsumcc": einsumcc}, optionflags=doctest.ELLIPSIS, verbose=False
    )
    assert result.attempted > 0
    assert result.failed == 0


def test_every_api_function_is_documented_with_an_example() -> None:
    for name in ("load", "passes", "evaluate", "simulate", "backends", "example"):
        doc = getattr(einsumcc, name).__doc__
        assert doc, name
        assert ">>>" in doc, name


def test_simulate_report_equals_simulate_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = "examples/matmul.ein"
    report = einsumcc.simulate(einsumcc.load(path), arch="systolic", M=96, N=64, K=48)
    assert main(["simulate", path, "--arch", "systolic", "--dims", "M=96,N=64,K=48", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert report.to_dict() == printed
    assert isinstance(report.cycles, int)
    assert report.cycles == printed["cycles"]
    assert "\n" not in repr(report)
    assert "matmul" in repr(report)


def test_passes_report_equals_analyze_json(capsys: pytest.CaptureFixture[str]) -> None:
    path = "examples/attention_2pass.ein"
    report = einsumcc.passes(einsumcc.load(path), "M")
    assert main(["analyze", "passes", path, "--rank", "M", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert report.to_dict() == printed
    assert report.count == 2 == printed["passes"]["M"]
    assert "\n" not in repr(report)


def test_dims_given_to_load_are_the_defaults_of_every_verb() -> None:
    c = einsumcc.load(einsumcc.example("attention_1pass.ein"), M=128, P=64)
    assert einsumcc.evaluate(c)["AV"].shape == (64, 64)
    assert einsumcc.evaluate(c, P=32)["AV"].shape == (64, 32)


def test_unknown_backend_names_the_installed_ones() -> None:
    with pytest.raises(einsumcc.EinError, match="no backend 'nope' is installed"):
        einsumcc.compile(einsumcc.example("matmul.ein"), target="nope")


def test_simulating_with_a_backend_that_cannot_says_which_can() -> None:
    with pytest.raises(einsumcc.EinError, match="cannot simulate") as err:
        einsumcc.simulate(einsumcc.example("matmul.ein"), target="triton")
    assert "sim" in str(err.value.diagnostics[0].hint)


def test_import_einsumcc_is_light() -> None:
    code = (
        "import sys, einsumcc, einsumcc.cli; "
        "print(sorted(m for m in ('sympy','networkx','numpy','torch','triton','matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
