"""The mapper (issue 18): ``einsumcc map``, ``einsumcc_sim.map_cascade`` and the default
mapping that comes from it.  Searches here are small (a few seconds each)."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import pytest

from einsumcc import load
from einsumcc.cli import main
from einsumcc_sim import MapResult, map_cascade, simulate_cascade
from einsumcc_sim.arch import load_arch
from einsumcc_sim.mapper import RooflineBounds, pareto_front, search
from einsumcc_sim.mapping import load_mapping
from tests.conftest import EXAMPLES

HERE = Path(__file__).resolve().parent
ONE = EXAMPLES / "fusemax" / "attention_1pass.ein"
SMALL = {"B": 1, "H": 2, "M": 4096, "P": 4096}


@pytest.fixture(scope="module")
def one_pass() -> MapResult:
    cascade = load(ONE.read_text())
    return map_cascade(cascade, "fusemax", SMALL, budget=30)


def test_map_beats_the_preset_from_no_mapping(one_pass):
    preset = simulate_cascade(load(ONE.read_text()), "fusemax", "fusemax", SMALL)
    assert one_pass.best.cycles <= preset.cycles
    assert one_pass.considered >= 100
    assert one_pass.simulated <= 30
    assert one_pass.mappings_per_second > 0


def test_map_result_is_frozen_and_its_dict_has_the_fields(one_pass):
    with pytest.raises(dataclasses.FrozenInstanceError):
        one_pass.considered = 0  # type: ignore[misc]
    d = one_pass.to_dict()
    assert {"cycles", "energy_pj", "mapping"} <= set(d["best"])
    assert {"best", "evaluated", "seconds", "pareto"} <= set(d)
    front = [(p["cycles"], p["energy_pj"]) for p in d["pareto"]]
    assert front == sorted(front)
    assert all(e1 > e2 for (_, e1), (_, e2) in itertools.pairwise(front))
    assert d["best"]["cycles"] == one_pass.best.cycles


def test_pareto_front_keeps_the_undominated():
    pts = [(10, 5.0), (12, 4.0), (11, 6.0), (20, 4.0), (9, 9.0)]
    assert pareto_front(pts) == ((9, 9.0), (10, 5.0), (12, 4.0))


def test_bound_is_below_the_simulation():
    cascade = load(ONE.read_text())
    arch = load_arch("fusemax", [])
    mapping = load_mapping("fusemax", cascade, arch)
    report = simulate_cascade(cascade, "fusemax", "fusemax", SMALL)
    bounds = RooflineBounds(cascade, arch, SMALL)
    assert 0 < bounds.cycles(mapping) <= report.cycles
    assert bounds.dram_bytes(dict(mapping.placement)) <= report.dram_bytes
    bounds.cycles(mapping)
    assert bounds.hits > 0  # the second bound comes from the memo of sub-mappings


def test_map_command_json_output_and_plot_read_back(tmp_path, capsys):
    best, plot = tmp_path / "best.toml", tmp_path / "pareto.png"
    dims = "B=1,H=2,M=2048,P=2048"
    argv = ["map", str(ONE), "--dims", dims, "--budget", "8", "--json"]
    assert main([*argv, "-o", str(best), "--plot", str(plot)]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["best"]["mapping"] == best.read_text()
    assert plot.stat().st_size > 10_000
    assert main(["simulate", str(ONE), "--dims", dims, "--mapping", str(best), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cycles"] == found["best"]["cycles"]


def test_map_text_report(capsys):
    assert main(["map", str(ONE), "--dims", "B=1,H=1,M=1024,P=1024", "--budget", "3"]) == 0
    out = capsys.readouterr().out
    for part in ("mappings considered", "mappings/s", "Pareto front"):
        assert part in out


def test_map_objective_is_checked():
    cascade = load(ONE.read_text())
    with pytest.raises(Exception, match="objective"):
        search(cascade, load_arch("fusemax", []), SMALL, objective="speed")


@pytest.mark.parametrize("objective", ["energy", "edp"])
def test_map_other_objectives(objective):
    cascade = load(ONE.read_text())
    got = map_cascade(cascade, "fusemax", SMALL, objective=objective, budget=6)
    assert got.objective == objective
    assert got.best.energy_pj == min(e for c, e in got.points if c == got.best.cycles)


@pytest.mark.parametrize("size", [4096, 16384])
@pytest.mark.parametrize("side", ["alibi_scale_side.ein", "alibi_bias_side.ein"])
def test_side_einsums_are_fused_by_default(side, size):
    """A score or a bias as an Einsum of its own costs (about) what the inlined cascade
    costs with the default mapping: its intermediates stay on chip, and an input that the
    side Einsum reads under the key loop (Q) is fetched once, not once per key tile."""
    dims = {"M": size, "P": size}
    inlined = simulate_cascade(load((EXAMPLES / "attention_alibi_causal.ein").read_text()),
                               "fusemax", None, dims)  # fmt: skip
    got = simulate_cascade(load((HERE / "side" / side).read_text()), "fusemax", None, dims)
    assert got.cycles <= 1.05 * inlined.cycles
    assert got.dram_bytes <= 1.1 * inlined.dram_bytes


def test_an_input_staged_once_is_single_buffered():
    """A staged input that no loop of its group indexes is fetched once: it takes one
    staging slot, not two (there is no next tile to prefetch); a tile fetched again under a
    loop keeps two."""
    from einsumcc_sim.model import FAITHFUL
    from einsumcc_sim.program import lower
    from einsumcc_sim.report import default_for
    from einsumcc_sim.work import Work

    cascade = load((HERE / "side" / "alibi_bias_side.ein").read_text())
    arch = load_arch("fusemax")
    dims = {"M": 16384, "P": 16384}
    mapping = default_for(cascade, arch, dims)
    assert dict(mapping.placement)["Q"] == "buffer"
    prog = lower(cascade, arch, mapping, dims, "default", FAITHFUL, Work())
    assert prog.spill_fraction == 0
    q = [x for x in prog.xfers if x.tensor == "Q" and not x.write]
    assert len(q) == 1
    assert all(lp.var is None for lp in q[0].loops)
    q_bytes = 64 * 16384 * 2  # Q[E, P] in f16, whole: one slot, not two
    assert q_bytes <= prog.staging_bytes < 2 * q_bytes
    assert prog.staging_bytes + prog.resident_bytes <= arch.buffer.bytes


def _best_preset(cascade, dims):
    from einsumcc import EinError
    from einsumcc_sim.names import MAPPING_PRESETS

    best = None
    for name in MAPPING_PRESETS:
        try:
            r = simulate_cascade(cascade, "fusemax", name, dims)
        except EinError:
            continue  # the preset does not apply to this cascade
        best = r if best is None or r.cycles < best.cycles else best
    assert best is not None
    return best


@pytest.mark.parametrize("path", sorted((EXAMPLES / "fusemax").glob("*.ein")), ids=lambda p: p.name)
def test_every_fusemax_cascade_maps_no_worse_than_its_best_preset(path):
    """From no mapping: ``map`` is no worse than the best preset that applies, and the
    default mapping of ``simulate`` is within 5% of it (small dims: seconds)."""
    cascade = load(path.read_text())
    preset = _best_preset(cascade, SMALL)
    found = map_cascade(cascade, "fusemax", SMALL, budget=15)
    assert found.best.cycles <= preset.cycles
    default = simulate_cascade(cascade, "fusemax", None, SMALL)
    assert default.cycles <= 1.05 * preset.cycles
