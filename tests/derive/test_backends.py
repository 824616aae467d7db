"""Derived cascades on the Triton backend (the interpreter without a GPU) and the simulator."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import einsumcc
from einsumcc.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CASCADES = Path(__file__).resolve().parent / "cascades"

# triton must be imported by the backend first (it selects the interpreter without a GPU)
triton = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is None,
    reason="the Triton backend needs torch and triton",
)


@triton
@pytest.mark.parametrize(
    ("path", "rank", "tile", "dims"),
    [
        (EXAMPLES / "attention_3pass.ein", "M", None, "M=32,P=8"),
        (EXAMPLES / "attention_3pass.ein", "M", "M0=16", "M=64,P=16"),
        (EXAMPLES / "attention_2pass.ein", "M", None, "M=128,P=8"),
        (EXAMPLES / "layernorm.ein", "D", "D0=8", "D=32,N=8"),
        (CASCADES / "causal_bias_cap.ein", "M", None, "M=16,P=16"),
    ],
)
def test_derived_cascade_on_triton_equals_the_oracle(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    path: Path,
    rank: str,
    tile: str | None,
    dims: str,
) -> None:
    out = tmp_path / "derived.ein"
    args = ["derive", str(path), "--rank", rank, "-o", str(out)]
    assert main(args + (["--tile", tile] if tile else [])) == 0
    capsys.readouterr()
    assert main(["run", str(out), "--target", "triton", "--check", "--dims", dims]) == 0
    assert "within the tolerance" in capsys.readouterr().out


@triton
def test_derived_cascade_compiled_through_the_api() -> None:
    import numpy as np

    d = einsumcc.derive(einsumcc.load(EXAMPLES / "softmax.ein"), "M")
    kernel = einsumcc.compile(d.cascade, M=32, P=4)
    import torch

    x = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    y = kernel(torch.tensor(x))
    y = y[0] if isinstance(y, tuple | list) else y
    want = einsumcc.evaluate(einsumcc.load(EXAMPLES / "softmax.ein"), {"X": x}, M=32, P=4)["Y"]
    np.testing.assert_allclose(y.cpu().numpy(), want, rtol=1e-4, atol=1e-6)


def test_derived_cascade_simulates_on_fusemax() -> None:
    c = einsumcc.load(EXAMPLES / "attention_3pass.ein")
    d = einsumcc.derive(c, "M", tile=("M0", 64))
    before = einsumcc.simulate(c, arch="fusemax", M=1024, P=256)
    after = einsumcc.simulate(d.cascade, arch="fusemax", M=1024, P=256)
    assert before.cycles > 0
    assert after.cycles > 0
