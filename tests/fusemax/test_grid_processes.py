"""``reproduce``'s worker processes: a failing or killed worker ends the command at once with
its error (never a hang), Ctrl-C leaves no partial files, progress shows on a terminal, and
every figure has a title, labelled axes with units and a legend."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

import einsumcc_fusemax.grid as grid
from einsumcc import EinError
from einsumcc.cli import main
from einsumcc_fusemax import figures
from einsumcc_fusemax.experiment import Point, run_point
from einsumcc_fusemax.results import DESIGNS
from einsumcc_fusemax.workload import load_models

K = 1024
BERT = load_models("BERT")[0]
POINTS = [Point(d, BERT, s) for d in ("binding", "cascade", "flat") for s in (K, 4 * K)]


def _dies_on(design: str, how: str):
    def run(point: Point, model: str, overrides: tuple[str, ...]):
        if point.design == design:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if how == "exit":
                os._exit(3)
            raise ValueError("a bug in one point")
        if point.design == "flat":
            time.sleep(30)  # a long point still running: it must not be waited for
        return run_point(point, model, overrides)

    return run


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
@pytest.mark.parametrize("how", ["kill", "exit"])
def test_a_killed_worker_ends_the_run_within_seconds(how, monkeypatch):
    monkeypatch.setattr(grid, "run_point", _dies_on("cascade", how))
    t0 = time.perf_counter()
    with pytest.raises(EinError) as exc:
        grid.run_grid(POINTS, "artifact", (), jobs=3)
    assert time.perf_counter() - t0 < 15
    assert "a worker process died" in str(exc.value)
    assert "--jobs 1" in str(exc.value)


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_worker_exception_names_its_point(monkeypatch):
    monkeypatch.setattr(grid, "run_point", _dies_on("cascade", "raise"))
    t0 = time.perf_counter()
    with pytest.raises(EinError) as exc:
        grid.run_grid(POINTS, "artifact", (), jobs=3)
    assert time.perf_counter() - t0 < 15
    assert "simulating cascade BERT" in str(exc.value)
    assert "ValueError: a bug in one point" in str(exc.value)


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_reproduce_exits_non_zero_when_a_worker_is_killed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(grid, "run_point", _dies_on("cascade", "kill"))
    argv = ["reproduce", "fusemax", "--models", "BERT", "--seq", "1K,4K", "--designs",
            "binding,cascade,flat", "--out", str(tmp_path), "--jobs", "3", "--quiet"]  # fmt: skip
    t0 = time.perf_counter()
    assert main(argv) == 1
    assert time.perf_counter() - t0 < 15
    err = capsys.readouterr().err
    assert "a worker process died" in err
    assert "Traceback" not in err
    assert list(tmp_path.glob("*.csv")) == []


def test_ctrl_c_leaves_no_partial_files(tmp_path, monkeypatch, capsys):
    """A Ctrl-C while a figure is being written: the command returns 130 and leaves the
    CSVs written before it, but no figure and no temporary file."""
    from matplotlib.figure import Figure

    def interrupted(self, fname, **kwargs):
        Path(fname).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    argv = ["reproduce", "fusemax", "--models", "BERT", "--seq", "1K", "--designs",
            "binding,unfused", "--out", str(tmp_path), "--jobs", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attn-binding.csv", "attn-unfused.csv"]


def test_progress_bar_on_a_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    argv = ["reproduce", "fusemax", "--models", "BERT", "--seq", "1K", "--designs",
            "binding", "--out", str(tmp_path), "--jobs", "1", "--no-plots"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "1/1" in err
    assert "point" in err


def test_every_figure_is_labelled(tmp_path, monkeypatch):
    shown = []

    def keep(plt, fig, path):
        shown.append((path.name, fig))

    monkeypatch.setattr(figures, "_save", keep)
    rows = {d.key: [run_point(Point(d.key, BERT, s), "artifact", ())[1] for s in (K, 4 * K)]
            for d in DESIGNS}  # fmt: skip
    figures.draw_all(rows, tmp_path)
    names = [n for n, _ in shown]
    assert names == ["fig6a_util_1d.png", "fig6b_util_2d.png", "fig7_util_by_einsum.png",
                     "fig8_speedup.png", "fig9_energy.png"]  # fmt: skip
    import matplotlib.pyplot as plt

    for name, fig in shown:
        try:
            assert fig._suptitle is not None, name
            assert fig._suptitle.get_text().strip(), name
            axes = fig.axes
            assert any(ax.get_legend() is not None for ax in axes), name
            for ax in axes:
                assert "(tokens)" in ax.get_xlabel(), name
                assert ax.get_title().strip(), name
                assert all(t.get_text() for t in ax.get_xticklabels()), name
            assert "(" in axes[0].get_ylabel(), name
        finally:
            plt.close(fig)


def test_points_run_on_the_sweeps_dask_machinery(monkeypatch):
    """``reproduce --jobs N`` runs its points as Dask tasks on the client ``einsumcc sweep``
    uses (a local cluster, no retry of a point whose worker dies), with the figures of an
    in-process run."""
    import einsumcc_sim.sweep as sweep

    made = []
    real = sweep._client

    def spy(scheduler, workers, retries=True):
        made.append((scheduler, workers, retries))
        return real(scheduler, workers, retries)

    monkeypatch.setattr(sweep, "_client", spy)
    points = POINTS[:2]
    on_dask = grid.run_grid(points, "artifact", (), jobs=2)
    assert made == [(None, 2, False)]
    here = grid.run_grid(points, "artifact", (), jobs=1)
    assert len(made) == 1
    key = lambda r: (r[0].design, r[0].seq)  # noqa: E731
    assert [r[:2] for r in sorted(on_dask, key=key)] == [r[:2] for r in sorted(here, key=key)]
