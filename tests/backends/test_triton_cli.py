"""``einsumcc compile`` and ``einsumcc run --target triton``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from einsumcc.cli import main
from einsumcc_triton.launch import import_module
from tests.conftest import EXAMPLES

pytest.importorskip("torch")

ONE_PASS = str(EXAMPLES / "attention_1pass.ein")


def test_compile_writes_a_module_that_runs(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "kernel.py"
    assert main(["compile", ONE_PASS, "--target", "triton", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    module = import_module(out)
    import torch

    q = torch.randn(64, 50, dtype=torch.float16)
    k = torch.randn(64, 128, dtype=torch.float16)
    v = torch.randn(64, 128, dtype=torch.float16)
    av = module.attention_1pass(q, k, v)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q.T[None].float(), k.T[None].float(), v.T[None].float()
    )[0].T
    assert (av.float() - ref).abs().max() < 1e-2


def test_emit_stages(capsys: Any) -> None:
    assert main(["compile", ONE_PASS, "--emit", "ir"]) == 0
    ir = capsys.readouterr().out
    assert main(["show", ONE_PASS]) == 0
    assert ir == capsys.readouterr().out
    assert main(["compile", ONE_PASS, "--emit", "schedule", "--dims", "M=4096,P=4096"]) == 0
    sched = capsys.readouterr().out
    assert "traffic at" in sched
    assert "1 kernel launch: the pass analysis gives 1 pass" in sched
    assert main(["compile", ONE_PASS, "--emit", "triton"]) == 0
    assert "@triton.jit" in capsys.readouterr().out
    assert main(["compile", ONE_PASS]) == 0  # no -o: the module on stdout
    assert "def attention_1pass(Q, K, V):" in capsys.readouterr().out


def test_run_target_triton_matches_oracle_json(tmp_path: Path, capsys: Any) -> None:
    args = ["run", ONE_PASS, "--dims", "M=256,P=40", "--json"]
    assert main(args) == 0
    oracle = json.loads(capsys.readouterr().out)
    save = tmp_path / "out.npz"
    assert main([*args, "--target", "triton", "--save", str(save)]) == 0
    triton = json.loads(capsys.readouterr().out)
    assert oracle.keys() == triton.keys() == {"outputs"}
    a, b = oracle["outputs"]["AV"], triton["outputs"]["AV"]
    assert a["shape"] == b["shape"] == [64, 40]
    assert abs(a["l2"] - b["l2"]) <= 4e-3 * a["l2"]
    with np.load(save) as npz:
        assert npz["AV"].shape == (64, 40)


def test_run_target_triton_text_and_inputs(tmp_path: Path, capsys: Any) -> None:
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in.npz"
    np.savez(inputs, A=rng.standard_normal(50), B=rng.standard_normal(50))
    path = str(EXAMPLES / "paper" / "cascade3.ein")
    assert main(["run", path, "--target", "triton", "--inputs", str(inputs), "--dims", "K=50"]) == 0
    out = capsys.readouterr().out
    assert "cascade3: triton" in out


def test_compile_errors_are_diagnostics(capsys: Any) -> None:
    assert main(["compile", ONE_PASS, "--tile", "P=100"]) == 1
    err = capsys.readouterr().err
    assert "attention_1pass.ein:11:1: error: --tile P=100: a tile is a power of two" in err
    assert "Traceback" not in err
    assert main(["compile", ONE_PASS, "--tile", "P"]) == 1
    assert "--tile: expected RANK=POWER_OF_TWO" in capsys.readouterr().err
    assert main(["run", ONE_PASS, "--target", "triton", "--dims", "M=100,P=4"]) == 1
    assert "extent of M1 = M/M0 is 25/16" in capsys.readouterr().err
