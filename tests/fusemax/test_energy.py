"""Energy against the FuseMax artifact (issue 19): the sourced model's deviation per design
and where it comes from, and the calibrated option, validated leave-one-model-out."""

from __future__ import annotations

import pytest

from einsumcc.cli import main
from einsumcc_fusemax.calibration import FAMILIES, calibrate, leave_one_model_out
from einsumcc_fusemax.experiment import ARCHS
from einsumcc_fusemax.results import DESIGNS, ENERGY_BOUNDS, Row, read_csv, reference_dir
from einsumcc_sim.arch import load_arch

REF = reference_dir()
needs_reference = pytest.mark.skipif(REF is None, reason="../shared/reference is not present")
CALIBRATED = ["energy.model=calibrated"]


def artifact() -> dict[str, list[Row]]:
    assert REF is not None
    return {d.key: read_csv(REF / f"attn-{d.key}.csv") for d in DESIGNS}


def signed(grid: dict[str, list[Row]], key: str) -> list[tuple[float, Row, float]]:
    """(relative energy error, our row, the artifact's energy) per row of a design."""
    ref = {(r.model, r.seq): r.energy for r in artifact()[key]}
    return [(r.energy / ref[(r.model, r.seq)] - 1, r, ref[(r.model, r.seq)]) for r in grid[key]]


@needs_reference
@pytest.mark.parametrize("key", [d.key for d in DESIGNS])
def test_the_energy_deviation_is_the_global_buffers(grid, key):
    """Sourced energies, nothing fitted: every row within the design's bound, and the whole
    difference from the artifact is smaller than our global-buffer energy alone, i.e. the
    buffer (its row accesses x CACTI's energy) is the one component that can account for
    it; on FuseMax we are above the artifact at every row (+3.9 to +5.1%)."""
    rows = signed(grid, key)
    assert len(rows) == 24
    for err, r, theirs in rows:
        assert abs(err) <= ENERGY_BOUNDS[key], (r.model, r.seq, err)
        assert abs(r.energy - theirs) < dict(r.extra)["energy.buffer"], (r.model, r.seq)
    if key in FAMILIES["fusemax"]:
        assert min(err for err, _, _ in rows) > 0.03


@needs_reference
def test_the_calibrated_option_ships_the_global_fit(grid):
    """[energy.calibrated] of each preset is the fit of calibration.py to the artifact."""
    for arch, (buf, rf) in calibrate(grid, artifact()).items():
        table = dict(load_arch(arch, CALIBRATED).energy)
        assert table["buffer_read"] == pytest.approx(buf, rel=0.01), arch
        assert table["buffer_write"] == pytest.approx(buf, rel=0.01), arch
        assert table["array2d.rf_read"] == pytest.approx(rf, rel=0.01), arch


# Worst held-out error of the calibrated model, leave-one-model-out (docs/fusemax.md):
# FuseMax's designs 0.32%, FLAT's 10.2% (XLM held out), rounded up to the next percent.
LOMO_BOUNDS = {"fusemax": 0.01, "flat": 0.11}


@needs_reference
@pytest.mark.parametrize("family", list(FAMILIES))
def test_calibrated_model_left_one_model_out(grid, family):
    folds = leave_one_model_out(grid, artifact(), family)
    assert sorted(m for m, _, _ in folds) == ["BERT", "T5", "TrXL", "XLM"]
    for model, _, err in folds:
        assert abs(err) <= LOMO_BOUNDS[family], (family, model, err)
    if family == "flat":
        # the two constants are poorly identified on FLAT's designs: the buffer's fitted
        # energy moves by more than 2x depending on which model is left out
        bufs = [x[0] for _, x, _ in folds]
        assert max(bufs) > 2 * min(bufs)


def test_the_calibrated_option_is_labelled_in_every_output(tmp_path, capsys):
    argv = ["reproduce", "fusemax", "--models", "XLM", "--seq", "1K", "--designs", "fusemax",
            "--out", str(tmp_path), "--jobs", "1", "--no-plots", "--quiet",
            "--set", "energy.model=calibrated"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "energy model CALIBRATED" in text
    assert (
        (tmp_path / "attn-binding.csv")
        .read_text()
        .startswith("model,seq_len,traffic,latency,energy(calibrated),")
    )
    argv[argv.index("energy.model=calibrated")] = "energy.model=sourced"
    assert main(argv) == 0
    assert "energy model sourced" in capsys.readouterr().out
    assert "energy(" not in (tmp_path / "attn-binding.csv").read_text()


def test_the_designs_architectures_have_a_calibrated_option():
    for arch in set(ARCHS.values()):
        sourced, cal = load_arch(arch), load_arch(arch, CALIBRATED)
        assert (sourced.energy_model, cal.energy_model) == ("sourced", "calibrated")
        changed = {k for k, v in cal.energy if dict(sourced.energy)[k] != v}
        assert changed == {"buffer_read", "buffer_write", "array2d.rf_read", "array2d.rf_write"}
