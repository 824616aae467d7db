"""The reproduction's 120 points, simulated once per test session (about 30 s on two cores)
and shared by the modules that compare them with the artifact."""

from __future__ import annotations

import pytest

from einsumcc_fusemax.experiment import Point
from einsumcc_fusemax.grid import grouped, run_grid
from einsumcc_fusemax.results import DESIGNS, Row, reference_dir
from einsumcc_fusemax.workload import SEQ_LENS, load_models


@pytest.fixture(scope="session")
def grid() -> dict[str, list[Row]]:
    """Every design x model x length under the artifact's cost model and the default
    (sourced) energies; only for tests that compare with ../shared/reference."""
    if reference_dir() is None:
        pytest.skip("../shared/reference is not present")
    models = load_models()
    points = [Point(d.key, m, s) for d in DESIGNS for m in models for s in SEQ_LENS]
    return grouped(run_grid(points, "artifact", (), jobs=2), models, DESIGNS)
