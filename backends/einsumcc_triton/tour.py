"""The Triton backend's part of ``einsumcc demo``: the 1-pass kernel under the interpreter."""

from __future__ import annotations

import importlib.util
import time
from importlib import resources

import numpy as np

from einsumcc.pipeline import load
from einsumcc.reference import evaluate, random_inputs


def tour() -> None:
    if importlib.util.find_spec("triton") is None or importlib.util.find_spec("torch") is None:
        print("  (install the `triton` extra to also run the kernels: pip install torch triton)")
        return
    from einsumcc_triton import compile as compile_triton

    small = {"M": 256, "P": 128}
    text = resources.files("einsumcc.examples").joinpath("attention_1pass.ein").read_text("utf-8")
    c = load(text)
    inputs = random_inputs(c, small, seed=0)
    start = time.perf_counter()
    kernel = compile_triton(c, small)
    out = kernel.run_numpy(inputs)["AV"]
    seconds = time.perf_counter() - start
    ref = evaluate(c, inputs, small)["AV"]
    err = float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))
    print(
        f"  the 1-pass kernel under Triton's interpreter (M=256, P=128): "
        f"max relative error {err:.1e} against the oracle, f16 output ({seconds:.1f} s)"
    )
