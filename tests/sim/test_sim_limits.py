"""Work that cannot finish stops before it starts (or as soon as it is clear), with the
estimate and the flag that raises the budget; ``--plot`` path errors; every figure has a
title, labelled axes with units and a legend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from einsumcc.cli import main
from einsumcc.pipeline import load
from einsumcc_sim.arch import load_arch
from einsumcc_sim.limits import Limits, bar, limits, op_count
from einsumcc_sim.mapping import default_mapping
from einsumcc_sim.program import lower
from einsumcc_sim.report import simulate, timeline_figure
from tests.conftest import EXAMPLES

HUGE = "M=10000000000,P=10000000000"
ATT = str(EXAMPLES / "attention_1pass.ein")


def _run(argv: list[str], capsys) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    status = main(argv)
    return status, capsys.readouterr().err, time.perf_counter() - t0


@pytest.mark.parametrize(
    ("flags", "says", "flag"),
    [
        (["--exact"], "would visit about 1.33e+22 iteration points", "--max-points"),
        (["--exact", "--arch", "flat"], "would visit about", "--max-points"),
        (["--functional"], "of arrays (budget 4 GiB)", "--max-memory"),
    ],
)
def test_absurd_sizes_stop_before_they_start(flags, says, flag, capsys):
    status, err, seconds = _run(["simulate", ATT, "--dims", HUGE, *flags], capsys)
    assert status == 1
    assert "Traceback" not in err
    assert "internal error" not in err
    assert says in err
    assert flag in err
    assert seconds < 10


def test_budgets_can_be_raised_and_lowered(capsys):
    argv = ["simulate", str(EXAMPLES / "matmul.ein"), "--dims", "M=64,N=64,K=64", "--exact"]
    status, err, _ = _run([*argv, "--max-points", "1000"], capsys)
    assert status == 1
    assert "budget 1e+03" in err
    status, err, _ = _run([*argv, "--functional", "--max-memory", "1K"], capsys)
    assert status == 1
    assert "(budget 1 KiB)" in err
    assert main(argv) == 0


def test_exact_refuses_more_ops_than_its_budget_before_it_starts(capsys):
    argv = ["simulate", str(EXAMPLES / "matmul.ein"), "--dims", "M=512,N=512,K=8"]
    status, err, _ = _run([*argv, "--exact", "--set", "array2d.rows=4", "--arch", "systolic",
                           "--set", "array2d.cols=4", "--max-ops", "100"], capsys)  # fmt: skip
    assert status == 1
    assert "simulate --exact would simulate about 16,384 ops one by one (budget 100)" in err
    assert "--max-ops N" in err


def test_fast_mode_stops_at_its_budget_of_ops(capsys, tmp_path):
    """A run whose steady state does not come soon stops at ``--max-ops`` (here: no
    loop repeats before 1024 ops, under the fitted recipe "P:fit", the default mapping
    before issue 18; the mapper's default now finds one that repeats sooner)."""
    from einsumcc import load
    from einsumcc.ir.bind import bind
    from einsumcc_sim.arch import load_arch
    from einsumcc_sim.mapping import FIT, default_mapping

    fitted = tmp_path / "fitted.toml"
    cascade = load(Path(ATT).read_text())
    b = bind(cascade, {"M": 65536, "P": 65536})
    extents = {v: int(b.extents[r]) for v, r in cascade.var_ranks.items()}
    arch = load_arch("fusemax", [])
    fitted.write_text(default_mapping(cascade, arch, extents, [("p", FIT)]).render())
    argv = ["simulate", ATT, "--dims", "M=65536,P=65536", "--max-ops", "1000", "--model",
            "artifact", "--mapping", str(fitted)]  # fmt: skip
    status, err, seconds = _run(argv, capsys)
    assert status == 1
    assert "simulate stopped after 1,024 ops of about" in err
    assert "--max-ops N" in err
    assert seconds < 30


def test_exact_on_a_tree_reduction_is_an_error_not_a_crash(capsys):
    argv = ["simulate", str(EXAMPLES / "fusemax" / "attention_3pass.ein"), "--dims",
            "B=1,H=1,M=256,P=256", "--arch", "flat", "--mapping", "flat-offchip", "--exact"]  # fmt: skip
    status, err, _ = _run(argv, capsys)
    assert status == 1
    assert "internal error" not in err
    assert 'reduces across the PEs in a tree (reduce = "tree")' in err
    assert "--set array1d.reduce=chain" in err


def test_op_count_is_what_exact_mode_simulates():
    c = load((EXAMPLES / "matmul.ein").read_text())
    a = load_arch("systolic", ["array2d.rows=4", "array2d.cols=4"])
    m = default_mapping(c, a)
    dims = {"M": 16, "N": 12, "K": 8}
    prog = lower(c, a, m, dims)
    from einsumcc_sim.engine import Engine

    eng = Engine(prog, exact_mode=True)
    eng.run()
    assert op_count(prog) == 12
    assert eng.total_ops == 12


def test_progress_bars_only_when_asked():
    assert bar(10, "x") is None
    with limits(Limits(progress=True)):
        shown = bar(10, "x")
        assert shown is not None
        shown.close()


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("missing/out.png", "missing does not exist"),
        ("a" * 300 + ".png", "the path is too long"),
    ],
)
def test_plot_path_errors(path, says, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["simulate", str(EXAMPLES / "matmul.ein"), "--dims", "M=8,N=8,K=8", "--plot", path]
    status, err, _ = _run(argv, capsys)
    assert status == 1
    assert err.startswith("error: --plot ")
    assert says in err
    assert list(tmp_path.iterdir()) == []


def _check_axes(fig) -> None:
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    title = (fig._suptitle.get_text() if fig._suptitle else "") or axes[0].get_title()
    assert title.strip()
    assert any(ax.get_legend() is not None for ax in axes)
    for ax in axes:
        assert ax.get_xlabel().strip()
        assert "(" in ax.get_xlabel()  # a unit
    labelled = [ax.get_ylabel() for ax in axes if ax.get_ylabel().strip()]
    assert labelled
    assert all("(" in y for y in labelled)


def test_timeline_figure_is_labelled(tmp_path):
    c = load((EXAMPLES / "matmul.ein").read_text())
    a = load_arch("systolic", ["array2d.rows=4", "array2d.cols=4"])
    r = simulate(c, a, default_mapping(c, a), {"M": 64, "N": 64, "K": 9})
    plt, fig = timeline_figure(r)
    try:
        _check_axes(fig)
        assert "cycles" in fig.axes[0].get_xlabel()
    finally:
        plt.close(fig)
