"""The simulator's library entry point, its report object and the work one request does."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from einsumcc import load
from einsumcc.cli import main
from einsumcc.diagnostics import EinError
from einsumcc_sim import SimReport, simulate_cascade
from einsumcc_sim.arch import load_arch

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
ONE_PASS = EX / "attention_1pass.ein"


@pytest.fixture(scope="module")
def one_pass():
    return load(ONE_PASS.read_text())


@pytest.mark.parametrize(
    ("dims", "args", "kwargs"),
    [
        ({"M": 4096, "P": 4096}, [], {}),
        ({"M": 65536, "P": 65536}, [], {}),  # spills: the default-mapping search runs
        ({"M": 1024, "P": 1024}, ["--model", "artifact"], {"model": "artifact"}),
        ({"M": 1024, "P": 1024}, ["--timing", "scalesim"], {"timing": "scalesim"}),
        (
            {"M": 1024, "P": 1024},
            ["--arch", "flat", "--set", "array2d.rows=64"],
            {"arch": "flat", "overrides": ["array2d.rows=64"]},
        ),
    ],
)
def test_to_dict_is_the_json_of_the_command(one_pass, capsys, dims, args, kwargs):
    report = simulate_cascade(one_pass, dims=dims, **kwargs)
    given = ",".join(f"{k}={v}" for k, v in dims.items())
    assert main(["simulate", str(ONE_PASS), "--dims", given, "--json", *args]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert report.to_dict() == json.loads(json.dumps(report.to_dict()))  # plain JSON values
    assert json.loads(json.dumps(report.to_dict())) == printed


def test_text_report_is_drawn_from_the_same_object(one_pass, capsys):
    report = simulate_cascade(one_pass, dims={"M": 4096, "P": 4096})
    assert main(["simulate", str(ONE_PASS), "--dims", "M=4096,P=4096"]) == 0
    assert capsys.readouterr().out == report.render()


def test_report_is_frozen_and_answers_the_protocol(one_pass):
    report = simulate_cascade(one_pass, "fusemax", None, {"M": 2048, "P": 2048})
    assert isinstance(report, SimReport)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.cycles = 0  # type: ignore[misc]
    d = report.to_dict()
    assert report.cycles == d["cycles"]
    assert isinstance(report.cycles, int)
    assert report.energy_pj == d["energy_pj"]
    assert report.dram_bytes == d["dram_bytes"] == report.dram_read_bytes + report.dram_write_bytes
    assert report.utilization == d["utilization"]
    assert set(report.per_einsum) == set(d["per_einsum"])
    assert report.per_einsum["BQK"].array == "2d"
    text = repr(report)
    assert "\n" not in text
    assert text.startswith("<SimReport attention_1pass on fusemax: ")
    assert f"{report.cycles:,} cycles" in text
    assert text.endswith(" pJ>")


def test_arch_may_be_an_arch_object(one_pass):
    dims = {"M": 1024, "P": 1024}
    by_name = simulate_cascade(one_pass, "flat", dims=dims)
    by_object = simulate_cascade(one_pass, load_arch("flat"), dims=dims)
    assert by_object.to_dict() == by_name.to_dict()
    with pytest.raises(EinError):
        simulate_cascade(one_pass, load_arch("flat"), dims=dims, overrides=["array2d.rows=8"])


def test_unknown_model_is_an_error(one_pass):
    with pytest.raises(EinError):
        simulate_cascade(one_pass, dims={"M": 64, "P": 64}, model="both")


def _counting(monkeypatch):
    """Count the lowerings by mapping and the engine runs by program."""
    import einsumcc_sim.engine as engine
    import einsumcc_sim.lowering as lowering

    lowered: Counter[object] = Counter()
    runs: Counter[int] = Counter()
    lower, run = lowering._Lowering.lower, engine.Engine.run

    def counted_lower(self):
        lowered[(self.m, self.timing, self.model)] += 1
        return lower(self)

    def counted_run(self):
        runs[id(self.p)] += 1
        return run(self)

    monkeypatch.setattr(lowering._Lowering, "lower", counted_lower)
    monkeypatch.setattr(engine.Engine, "run", counted_run)
    return lowered, runs


@pytest.mark.parametrize("dims", ["M=16384,P=16384", "M=65536,P=65536"])
def test_a_default_simulate_lowers_each_candidate_once(monkeypatch, capsys, dims):
    lowered, runs = _counting(monkeypatch)
    assert main(["simulate", str(ONE_PASS), "--dims", dims, "--json", "--verbose"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["cycles"] > 0
    assert lowered
    assert max(lowered.values()) == 1  # no mapping lowered twice
    assert max(runs.values()) == 1  # no program run twice
    work = simulate_cascade(
        load(ONE_PASS.read_text()),
        dims={k: int(v) for k, v in (x.split("=") for x in dims.split(","))},
    ).work
    assert work is not None
    assert work["lowerings"] == sum(lowered.values()) // 2  # the command, then the call
    assert work["engine_runs"] == sum(runs.values()) // 2
    assert f"work: {work['lowerings']} lowerings" in out.err


def test_work_counts_at_a_spilling_size(one_pass):
    work = simulate_cascade(one_pass, dims={"M": 65536, "P": 65536}).work
    assert work is not None
    # four fitted recipes seed the mapper (issue 18), which simulates its budget of
    # mappings once each; the winner's SCALE-Sim comparison is one more run
    from einsumcc_sim.report import DEFAULT_BUDGET

    assert work["candidates"] == 4
    assert work["engine_runs"] == DEFAULT_BUDGET + 1


def test_verbose_text_report_shows_the_work(capsys):
    assert main(["simulate", str(ONE_PASS), "--dims", "M=4096,P=4096", "--verbose"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "  work: 1 lowerings, 2 engine runs, 1 candidates"


def test_command_modules_import_nothing_heavy():
    code = (
        "import sys\n"
        "from einsumcc_sim.command import add_parser, run\n"
        "from einsumcc_fusemax.command import add_parser, run\n"
        "heavy = ('numpy', 'sympy', 'networkx', 'matplotlib', 'einsumcc_sim.engine')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
