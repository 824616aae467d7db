"""Integer ids in data filters are compared as integers: ids that float32 cannot tell apart
(2**24 and 2**24 + 1) still separate the documents."""

from __future__ import annotations

import numpy as np

from einsumcc.pipeline import load
from einsumcc.reference import evaluate, random_inputs
from einsumcc_triton import compile as compile_triton
from tests.conftest import EXAMPLES


def test_document_ids_beyond_float32_precision() -> None:
    cascade = load(EXAMPLES / "document_mask.ein")
    dims = {"M": 320, "P": 200}
    inputs = random_inputs(cascade, dims, seed=5)
    base = 2**24  # float32 rounds base + 1 to base
    inputs["SEGK"] = base + (np.arange(320) >= 150).astype(np.float64)
    inputs["SEGQ"] = base + (np.arange(200) >= 90).astype(np.float64)
    assert np.float32(base) == np.float32(base + 1)
    ref = evaluate(cascade, inputs, dims)["AV"]
    got = compile_triton(cascade, dims).run_numpy(inputs)["AV"]
    assert np.all(np.isfinite(got) == np.isfinite(ref))
    scale = np.max(np.abs(np.nan_to_num(ref)))
    assert np.max(np.abs(np.nan_to_num(got - ref))) <= 4e-3 * scale
