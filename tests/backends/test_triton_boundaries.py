"""The backend's boundaries with its callers: it never writes the caller's environment, it
refuses inputs that ask for gradients, and importing its command line stays cheap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from einsumcc import EinError
from einsumcc.reference import random_inputs
from einsumcc_triton import compile
from tests.backends._triton import CACHE, F32_TOL, max_err, run_both
from tests.conftest import EXAMPLES, ROOT

torch = pytest.importorskip("torch")

MATMUL = "rank M\nrank N\nrank K\ninput A[M, K] : f32\ninput B[K, N] : f32\n"
MATMUL += "output C[M, N] : f32\nC[m, n] = sum{k} (A[m, k] * B[k, n])\n"


def test_compiling_and_running_leaves_the_environment_alone(tmp_path: Path) -> None:
    import triton.knobs

    before = dict(os.environ)
    knob_before = dict(triton.knobs.runtime.__dict__)
    k = compile(MATMUL, directory=tmp_path)
    _, ref, got = run_both(k, {"M": 9, "N": 7, "K": 5})
    assert max_err(ref, got) <= F32_TOL
    assert dict(os.environ) == before
    assert dict(triton.knobs.runtime.__dict__) == knob_before


def test_a_fresh_process_keeps_its_environment(tmp_path: Path) -> None:
    """The first import of triton (its library interpreted without a GPU) included."""
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from pathlib import Path
        before = dict(os.environ)
        import numpy as np
        import einsumcc_triton
        k = einsumcc_triton.compile({MATMUL!r}, directory=Path({str(tmp_path)!r}))
        a = np.arange(6.0).reshape(2, 3)
        b = np.ones((3, 4))
        out = k.run_numpy({{"A": a, "B": b}})["C"]
        print(json.dumps({{
            "same": dict(os.environ) == before,
            "interpret": "TRITON_INTERPRET" in os.environ,
            "close": bool(np.allclose(out, a @ b)),
        }}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "backends")])
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == {
        "same": True,
        "interpret": False,
        "close": True,
    }


def test_inputs_that_require_grad_are_refused() -> None:
    k = compile(str(EXAMPLES / "attention_1pass.ein"), {"M0": 32}, directory=CACHE)
    dims = {"M": 64, "P": 20, "M0": 32}
    inputs = random_inputs(k.cascade, dims, seed=0)
    q, key, v = (torch.from_numpy(inputs[n]).half() for n in ("Q", "K", "V"))
    with pytest.raises(EinError, match="requires grad") as info:
        k(q.requires_grad_(), key, v)
    assert "no backward" in str(info.value)
    assert ".detach()" in str(info.value)
    assert "torch.no_grad()" in str(info.value)
    expected = k(q.detach(), key, v)
    with torch.no_grad():
        assert torch.equal(k(q, key, v), expected)


def test_importing_the_command_line_imports_nothing_heavy() -> None:
    """``einsumcc --help`` imports einsumcc_triton.command: it must add none of torch,
    triton, numpy, sympy or networkx to what the core's own modules import."""
    heavy = ("torch", "triton", "numpy", "sympy", "networkx")
    script = textwrap.dedent(
        f"""
        import json, sys
        import einsumcc.diagnostics, einsumcc.options
        core = set(sys.modules)
        import einsumcc_triton, einsumcc_triton.command
        added = set(sys.modules) - core
        print(json.dumps(sorted(m for m in added if m.split(".")[0] in {heavy!r})))
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "backends")])
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == []
