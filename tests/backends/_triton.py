"""What the Triton backend tests share: compiling once, shapes per example, comparing with
the oracle and with torch's scaled_dot_product_attention."""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from einsumcc import EinError, load
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import DType, Role
from einsumcc.reference import evaluate, random_inputs
from einsumcc_triton import Compiled, compile

CACHE = Path(tempfile.mkdtemp(prefix="einsumcc-triton-tests-"))

# float32: the bound.  float16 inputs (and f16 outputs) with float32 accumulation:
# the output is rounded to f16 (relative 2^-11 = 4.9e-4 of |out|), and the probabilities of
# an attention are rounded to f16 before the P.V tensor-core product (FlashAttention does the
# same), which moves each output by at most 2^-11 * max|V|; with standard-normal V and the
# test shapes, max|V| / max|out| stays below 4, so the error stays below 2^-11 * (1 + 4) =
# 2.4e-3 of max|out|.  4e-3 leaves a margin for the f32 accumulation order.
F32_TOL = 1e-4
F16_TOL = 4e-3


def as_f32(c: Cascade) -> Cascade:
    """The cascade with its 16-bit inputs and outputs declared f32."""
    tensors = tuple(
        dataclasses.replace(t, dtype=DType.F32)
        if t.role is not Role.INTERMEDIATE and t.dtype in (DType.F16, DType.BF16)
        else t
        for t in c.tensors
    )
    return dataclasses.replace(c, tensors=tensors)


@functools.cache
def compiled(
    path: str,
    variant: str = "declared",
    compile_dims: tuple[tuple[str, int], ...] = (),
    tiles: tuple[tuple[str, int], ...] = (),
    materialize: tuple[str, ...] = (),
) -> Compiled:
    c = load(path)
    if variant == "f32":
        c = as_f32(c)
    try:
        return compile(
            c,
            dict(compile_dims) or None,
            tiles=dict(tiles),
            materialize=materialize,
            directory=CACHE,
        )
    except EinError as exc:
        if "yet:" in str(exc):  # a v2 construct the backend rejects (never a wrong result)
            pytest.xfail(str(exc).splitlines()[0])
        raise


def unsupported(path: str) -> str | None:
    """Why the backend rejects a (v2) cascade, or None when it compiles it."""
    from einsumcc.schedule import derive_schedule

    try:
        derive_schedule(load(path))
    except EinError as exc:
        if "yet:" in str(exc):
            return str(exc).splitlines()[0]
        raise
    return None


def rel_err(ref: np.ndarray, got: np.ndarray) -> float:
    """max |got - ref| / max |ref| over the points where the oracle is a number; NaN where
    the oracle gives NaN must be NaN here too (else the error is infinite)."""
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    assert ref.shape == got.shape, (ref.shape, got.shape)
    nan_ref, nan_got = np.isnan(ref), np.isnan(got)
    if (nan_ref != nan_got).any():
        return float("inf")
    ok = ~nan_ref
    if not ok.any():
        return 0.0
    inf_ref = np.isinf(ref) & ok
    if (ref[inf_ref] != got[inf_ref]).any():
        return float("inf")
    fin = ok & ~inf_ref
    if not fin.any():
        return 0.0
    scale = max(float(np.max(np.abs(ref[fin]))), 1e-30)
    return float(np.max(np.abs(got[fin] - ref[fin]))) / scale


def run_both(
    k: Compiled, dims: Mapping[str, int], seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs, oracle outputs, Triton outputs) on seeded random inputs."""
    c = k.cascade
    inputs = random_inputs(c, dims, seed=seed)
    ref = evaluate(c, inputs, dims)
    got = k.run_numpy(inputs)
    return inputs, ref, got


def max_err(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> float:
    return max(rel_err(ref[name], got[name]) for name in ref)
