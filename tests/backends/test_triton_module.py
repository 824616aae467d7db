"""The generated module: self-contained, deterministic, documented, one launch per pass group."""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import Any

import pytest

from einsumcc import EinError, load
from einsumcc.reference import random_inputs
from einsumcc.schedule import derive_schedule
from einsumcc_triton import compile
from einsumcc_triton.module import generate
from tests.backends._triton import CACHE, F32_TOL, compiled, max_err, run_both
from tests.backends.test_triton_cascades import HERE
from tests.conftest import EXAMPLES, ROOT
from tests.golden import assert_golden

torch = pytest.importorskip("torch")


def test_module_imports_only_torch_and_triton() -> None:
    for path in sorted(EXAMPLES.rglob("*.ein")):
        tree = ast.parse(compiled(str(path)).source)
        imports = set()
        for node in ast.walk(tree):
            assert not isinstance(node, ast.ImportFrom), path
            if isinstance(node, ast.Import):
                imports |= {a.name for a in node.names}
        assert imports == {"torch", "triton", "triton.language"}, path


def test_module_is_deterministic_and_documented(update_golden: bool) -> None:
    c = load(EXAMPLES / "attention_1pass.ein")
    a, _ = generate(c, derive_schedule(c))
    b, _ = generate(load(EXAMPLES / "attention_1pass.ein"), derive_schedule(c))
    assert a == b
    assert str(ROOT) not in a
    header = a[: a.index("import torch")]
    for part in ("---- cascade", "BQK[m1, m0, p] = sum{e}", "---- pass analysis", "---- schedule"):
        assert part in header
    assert_golden(a, "triton/attention_1pass.triton.txt", update=update_golden)


class _Counting:
    """Wraps a kernel: counts launches, then launches."""

    def __init__(self, fn: Any, calls: list[str]) -> None:
        self.fn, self.calls = fn, calls

    def __getitem__(self, grid: Any) -> Any:
        self.calls.append(self.fn.__name__ if hasattr(self.fn, "__name__") else "kernel")
        return self.fn[grid]


@pytest.mark.parametrize(
    ("path", "dims", "launches"),
    [
        (EXAMPLES / "attention_1pass.ein", {"M": 256, "P": 77}, 1),
        (EXAMPLES / "attention_causal.ein", {"M": 256, "P": 77}, 1),
        (EXAMPLES / "attention_gqa.ein", {"M": 128, "P": 40}, 1),
        (EXAMPLES / "paper" / "cascade3.ein", {"K": 40}, 1),
        (HERE / "linear_attention.ein", {"M": 100, "P": 40}, 2),
    ],
)
def test_launch_count(path: Any, dims: dict[str, int], launches: int, monkeypatch: Any) -> None:
    k = compiled(str(path))
    calls: list[str] = []
    for info in k.kernels:
        monkeypatch.setattr(k.module, info.name, _Counting(getattr(k.module, info.name), calls))
    _, ref, got = run_both(k, dims, seed=1)
    assert len(calls) == launches == len(k.kernels)
    assert max_err(ref, got) <= 4e-3


def test_import_einsumcc_does_not_import_torch() -> None:
    code = (
        "import einsumcc, einsumcc.cli, sys; print('torch' in sys.modules, 'triton' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_einsumcc_compile_api() -> None:
    import einsumcc

    k = einsumcc.compile(str(EXAMPLES / "attention_1pass.ein"), target="triton", M0=32)
    assert k.schedule.kernels[0].axis("m0").block == 32
    inputs = random_inputs(k.cascade, {"M": 96, "P": 20, "M0": 32}, seed=0)
    q, key, v = (torch.from_numpy(inputs[n]).half() for n in ("Q", "K", "V"))
    out = k(q, key, v)
    assert out.shape == (64, 20)
    assert out.dtype == torch.float16
    with pytest.raises(EinError, match="'cuda'"):  # no such target (backend)
        einsumcc.compile(str(EXAMPLES / "matmul.ein"), target="cuda")


def test_rank_in_no_input_needs_a_compile_time_extent() -> None:
    text = "rank M\nrank N\ninput X[M] : f32\noutput Y[M, N] : f32\nY[m, n] = X[m] * n\n"
    with pytest.raises(EinError, match="rank N is the extent of no input dimension"):
        compile(text, directory=CACHE)
    k = compile(text, {"N": 5}, directory=CACHE)
    _, ref, got = run_both(k, {"M": 7, "N": 5})
    assert max_err(ref, got) <= F32_TOL
