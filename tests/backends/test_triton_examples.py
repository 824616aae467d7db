"""Every example compiles to Triton and matches the oracle (and attention matches torch's
scaled_dot_product_attention), in Triton's interpreter on CPU, at three shapes each, one of
them not a multiple of the tiles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from einsumcc import load
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import DType
from einsumcc.reference import random_inputs
from tests.backends._triton import F16_TOL, F32_TOL, compiled, max_err, rel_err, run_both
from tests.conftest import EXAMPLES

torch = pytest.importorskip("torch")

# Run-time shapes per example; an entry that overrides a declared extent (M0 = 40) is a
# compile-time constant.  The second shape is never a multiple of the tiles (P = 77 is not a
# multiple of 128, M = 1000 with M0 = 40 leaves M0 padded to 64).
SHAPES: dict[str, list[dict[str, int]]] = {
    "attention_1pass.ein": [
        {"M": 256, "P": 64},
        {"M": 1000, "M0": 40, "P": 77},
        {"M": 192, "P": 130},
    ],
    "attention_2pass.ein": [
        {"M": 256, "P": 64},
        {"M": 1000, "M0": 40, "P": 77},
        {"M": 192, "P": 130},
    ],
    "attention_3pass.ein": [{"M": 256, "P": 64}, {"M": 1000, "P": 77}, {"M": 100, "P": 130}],
    "attention_causal.ein": [
        {"M": 256, "P": 256},
        {"M": 1000, "M0": 40, "P": 77},
        {"M": 128, "P": 200},
    ],
    "attention_gqa.ein": [
        {"M": 128, "P": 64},
        {"M": 1000, "M0": 40, "P": 77, "B": 2},
        {"M": 192, "P": 33, "G": 1, "R": 4},
    ],
    "matmul.ein": [
        {"M": 64, "N": 64, "K": 64},
        {"M": 77, "N": 40, "K": 100},
        {"M": 130, "N": 129, "K": 17},
    ],
    "softmax.ein": [{"M": 256, "P": 64}, {"M": 1000, "P": 77}, {"M": 33, "P": 130}],
    "cascade1.ein": [{"K": 64}, {"K": 1000}, {"K": 77}],
    "cascade2.ein": [{"K": 64}, {"K": 1000}, {"K": 77}],
    "cascade3.ein": [{"K": 64}, {"K": 1000}, {"K": 77}],
}
FUSEMAX: dict[str, list[dict[str, int]]] = {
    "attention_1pass.ein": [
        {"B": 1, "H": 2, "M": 256, "P": 64},
        {"B": 1, "H": 2, "M": 1000, "M0": 40, "P": 77},
        {"B": 2, "H": 1, "M": 512, "P": 20},
    ],
    "attention_3pass.ein": [
        {"B": 1, "H": 2, "M": 256, "P": 64},
        {"B": 1, "H": 2, "M": 1000, "P": 77},
        {"B": 2, "H": 1, "M": 100, "P": 130},
    ],
}


def shapes_of(path: Any) -> list[dict[str, int]]:
    rel = path.relative_to(EXAMPLES)
    if rel.parts[0] == "fusemax" and rel.name in FUSEMAX:
        return FUSEMAX[rel.name]
    if (len(rel.parts) == 1 or rel.parts[0] == "paper") and rel.name in SHAPES:
        return SHAPES[rel.name]
    return generic_shapes(load(path))


def generic_shapes(c: Cascade) -> list[dict[str, int]]:
    """Shapes for an example this file does not know: every free rank at 64, 77, 130."""
    free = [r.name for r in c.ranks if r.extent is None]
    derived = {ch for s in c.splits for ch in s.children if c.rank(ch).extent is not None}
    out = []
    for n in (64, 77, 130):
        dims = dict.fromkeys(free, n)
        for s in c.splits:
            if s.parent in dims:
                fixed = [c.rank(ch).extent for ch in s.children if ch in derived]
                inner: int = math.prod(
                    int(e) for e in fixed if e is not None and not e.free_symbols
                )
                dims[s.parent] = inner * max(1, n // 32)
        out.append(dims)
    return out


def compile_dims(c: Cascade, dims: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((k, v) for k, v in dims.items() if c.rank(k).extent is not None))


CASES = [
    pytest.param(path, i, id=f"{path.relative_to(EXAMPLES).as_posix()}-{i}")
    for path in sorted(EXAMPLES.rglob("*.ein"))
    for i in range(3)
]


def has_half(c: Cascade) -> bool:
    return any(t.dtype in (DType.F16, DType.BF16) for t in c.tensors)


@pytest.mark.parametrize(("path", "i"), CASES)
def test_example_matches_oracle_f32(path: Any, i: int) -> None:
    c = load(path)
    dims = shapes_of(path)[i]
    k = compiled(str(path), "f32", compile_dims(c, dims))
    _, ref, got = run_both(k, dims, seed=i)
    err = max_err(ref, got)
    assert err <= F32_TOL, f"relative error {err:.2e} at {dims}"


@pytest.mark.parametrize(("path", "i"), CASES)
def test_example_matches_oracle_declared_dtypes(path: Any, i: int) -> None:
    c = load(path)
    if not has_half(c):
        pytest.skip("no 16-bit tensors: the f32 test covers it")
    dims = shapes_of(path)[i]
    k = compiled(str(path), "declared", compile_dims(c, dims))
    _, ref, got = run_both(k, dims, seed=100 + i)
    err = max_err(ref, got)
    assert err <= F16_TOL, f"relative error {err:.2e} at {dims}"


# ---------------------------------------------------------------- torch SDPA


def _sdpa_case(name: str) -> tuple[str, dict[str, int], str]:
    return {
        "attention_1pass": ("attention_1pass.ein", {"M": 1000, "M0": 40, "P": 77}, "plain"),
        "attention_2pass": ("attention_2pass.ein", {"M": 1000, "M0": 40, "P": 77}, "plain"),
        "attention_3pass": ("attention_3pass.ein", {"M": 1000, "P": 77}, "plain"),
        "attention_causal": ("attention_causal.ein", {"M": 200, "M0": 40, "P": 130}, "causal"),
        "attention_gqa": ("attention_gqa.ein", {"M": 200, "M0": 40, "P": 77, "B": 2}, "gqa"),
    }[name]


@pytest.mark.parametrize(
    "name",
    ["attention_1pass", "attention_2pass", "attention_3pass", "attention_causal", "attention_gqa"],
)
def test_attention_matches_torch_sdpa(name: str) -> None:
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    file, dims, kind = _sdpa_case(name)
    path = EXAMPLES / file
    c = load(path)
    k = compiled(str(path), "f32", compile_dims(c, dims))
    inputs = random_inputs(k.cascade, dims, seed=7)
    got = k.run_numpy(inputs)["AV"]
    t = {n: torch.from_numpy(np.asarray(a)) for n, a in inputs.items()}  # float64
    scale = 1 / math.sqrt(c.rank("E").extent)  # type: ignore[arg-type]
    if kind == "gqa":
        q = t["Q"].transpose(-1, -2)  # [B, H, P, E]
        key = t["K"].transpose(-1, -2)  # [B, G, M, E]
        v = t["V"].transpose(-1, -2)
        out = sdpa(q, key, v, scale=scale, enable_gqa=True)
        want = out.transpose(-1, -2).numpy()  # [B, H, F, P]
    else:
        q, key, v = (t[n].T[None] for n in ("Q", "K", "V"))
        out = sdpa(q, key, v, scale=scale, is_causal=kind == "causal")
        want = out[0].T.numpy()
    err = rel_err(want, got)
    assert err <= F32_TOL, f"{name}: relative error {err:.2e} against SDPA"
