"""Bad command-line values and files given to ``einsumcc run``: each one a diagnostic (exit 1,
no traceback), compared with its golden rendering in tests/golden/cli_errors/."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from einsumcc.cli import main
from tests.conftest import EXAMPLES
from tests.golden import assert_golden

ONE_PASS = str(EXAMPLES / "attention_1pass.ein")


def _npz(tmp: Path, **arrays: np.ndarray) -> Path:
    path = tmp / "in.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _truncated(tmp: Path) -> Path:
    path = _npz(tmp, Q=np.ones((64, 8)), K=np.ones((64, 64)), V=np.ones((64, 64)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _text(tmp: Path) -> Path:
    path = tmp / "in.npz"
    path.write_text("not an archive\n")
    return path


def _npy(tmp: Path) -> Path:
    path = tmp / "in.npz"
    with path.open("wb") as f:
        np.save(f, np.ones(3))
    return path


CASES: dict[str, Callable[[Path], list[str]]] = {
    "seed_negative": lambda t: ["--seed", "-1"],
    "dims_too_large": lambda t: ["--dims", "M=10000000000,P=10000000000"],
    "inputs_truncated": lambda t: ["--inputs", str(_truncated(t))],
    "inputs_not_a_zip": lambda t: ["--inputs", str(_text(t))],
    "inputs_npy": lambda t: ["--inputs", str(_npy(t))],
    "inputs_missing_file": lambda t: ["--inputs", str(t / "absent.npz")],
    "inputs_path_too_long": lambda t: ["--inputs", "x" * 5000 + ".npz"],
    "inputs_lacks_an_input": lambda t: [
        "--inputs",
        str(_npz(t, Q=np.ones((64, 8)), K=np.ones((64, 64)))),
    ],
    "inputs_disagree_on_a_rank": lambda t: [
        "--inputs",
        str(_npz(t, Q=np.ones((64, 8)), K=np.ones((64, 128)), V=np.ones((64, 64)))),
    ],
    "inputs_wrong_rank_count": lambda t: [
        "--inputs",
        str(_npz(t, Q=np.ones(8), K=np.ones((64, 64)), V=np.ones((64, 64)))),
    ],
    "tile_for_the_oracle": lambda t: ["--dims", "M=64,P=8", "--tile", "P=16"],
    "check_without_target": lambda t: ["--dims", "M=64,P=8", "--check"],
    "save_not_npz": lambda t: ["--dims", "M=64,P=8", "--save", str(t / "out.txt")],
    "save_missing_folder": lambda t: ["--dims", "M=64,P=8", "--save", str(t / "no" / "o.npz")],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_error(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], update_golden: bool
) -> None:
    argv = ["run", ONE_PASS, *CASES[case](tmp_path)]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert "internal error" not in err
    shown = err.replace(str(tmp_path), "TMP").replace("x" * 5000, "x" * 8 + "...")
    assert_golden(shown, f"cli_errors/{case}.txt", update=update_golden)
    assert list(tmp_path.glob("*.part*")) == []


def test_inputs_give_the_extents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Ranks without --dims take their extents from the arrays' shapes."""
    rng = np.random.default_rng(0)
    arrays = {"Q": rng.normal(size=(64, 24)), "K": rng.normal(size=(64, 128))}
    arrays["V"] = rng.normal(size=(64, 128))
    path = _npz(tmp_path, **arrays)
    assert main(["run", ONE_PASS, "--inputs", str(path), "--json"]) == 0
    assert '"shape": [64, 24]' in capsys.readouterr().out


def test_run_target_check_reports_the_worst_error(capsys: pytest.CaptureFixture[str]) -> None:
    """``run --target triton --check``: the compiled kernels against the oracle."""
    if importlib.util.find_spec("triton") is None:  # not imported here: the backend picks its mode
        pytest.skip("needs the triton extra")
    argv = ["run", ONE_PASS, "--dims", "M=128,P=40", "--target", "triton", "--check", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    check = doc["check"]
    assert check["ok"] is True
    assert check["tensor"] == "AV"
    assert 0 < check["max_rel_error"] <= check["tolerance"] == 4e-3  # an f16 output


HUGE = "M=10000000000,P=10000000000"
FLAT_3PASS = str(EXAMPLES / "fusemax" / "attention_3pass.ein")
SIMULATE: dict[str, list[str]] = {
    "simulate_exact_huge": ["simulate", ONE_PASS, "--dims", HUGE, "--exact"],
    "simulate_functional_huge": ["simulate", ONE_PASS, "--dims", HUGE, "--functional"],
    "simulate_exact_tree_reduction": [
        *("simulate", FLAT_3PASS, "--dims", "B=1,H=1,M=256,P=256"),
        *("--arch", "flat", "--mapping", "flat-offchip", "--exact"),
    ],
}


@pytest.mark.parametrize("case", sorted(SIMULATE))
def test_simulate_error(case: str, capsys: pytest.CaptureFixture[str], update_golden: bool) -> None:
    """The issue's simulator reproducers: absurd sizes stop before they start, and --exact on
    an architecture whose reductions it does not model is an error, not a crash."""
    assert main(SIMULATE[case]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert_golden(err, f"cli_errors/{case}.txt", update=update_golden)


@pytest.mark.parametrize("case", ["path_too_long", "folder", "missing"])
def test_check_file_argument_error(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], update_golden: bool
) -> None:
    """A FILE argument that cannot be read: a clear error, not an internal one."""
    path = {"path_too_long": "x" * 5000 + ".ein", "folder": str(tmp_path), "missing": "nope.ein"}
    assert main(["check", path[case]]) == 1
    err = capsys.readouterr().err.replace(str(tmp_path), "TMP")
    assert "Traceback" not in err
    assert_golden(err.replace("x" * 5000, "x" * 8 + "..."), f"cli_errors/check_{case}.txt",
                  update=update_golden)  # fmt: skip
