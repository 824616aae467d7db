"""``einsumcc sweep`` on Dask (issue 18): a real ``dask scheduler`` and two ``dask worker``
processes, every row checked against ``einsumcc simulate`` at its point."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from einsumcc.cli import main
from tests.conftest import EXAMPLES

ONE = EXAMPLES / "fusemax" / "attention_1pass.ein"
DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A scheduler and two single-threaded workers, as separate processes."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = (tmp_path / "dask.log").open("w")
    procs = [
        subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        str(DASK),
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


@pytest.mark.skipif(not DASK.exists(), reason="the dask command is not installed")
def test_sweep_on_a_dask_scheduler_matches_simulate(cluster, tmp_path, capsys):
    out = tmp_path / "sweep.csv"
    argv = ["sweep", str(ONE), "--dims", "B=1,H=1", "--sweep", "M=1024,2048",
            "--sweep", "P=512,1024", "--scheduler", cluster, "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["M"], r["P"]) for r in rows] == [
        ("1024", "512"), ("1024", "1024"), ("2048", "512"), ("2048", "1024")
    ]  # fmt: skip
    capsys.readouterr()
    for r in rows:
        assert r["error"] == ""
        dims = f"B=1,H=1,M={r['M']},P={r['P']}"
        assert main(["simulate", str(ONE), "--dims", dims, "--json"]) == 0
        want = json.loads(capsys.readouterr().out)
        assert int(r["cycles"]) == want["cycles"]
        assert float(r["energy_pj"]) == pytest.approx(want["energy_pj"], rel=1e-12)
        assert int(r["dram_bytes"]) == want["dram_bytes"]
        assert float(r["utilization_2d"]) == pytest.approx(want["utilization"]["2d"])
        assert r["mapping"] == want["mapping"]


def test_sweep_reports_a_failed_point_and_keeps_the_others(tmp_path, capsys):
    """A point the simulator refuses (a dims that does not divide) is a row with its error;
    the command ends with status 1 after writing every row (a local cluster here)."""
    out = tmp_path / "sweep.csv"
    argv = ["sweep", str(ONE), "--dims", "B=1,H=1,P=512", "--sweep", "M=1024,1000",
            "--workers", "1", "-o", str(out)]  # fmt: skip
    assert main(argv) == 1
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2
    assert rows[0]["error"] == ""
    assert int(rows[0]["cycles"]) > 0
    assert rows[1]["error"]
    assert rows[1]["cycles"] == ""
    assert "point B=1,H=1,P=512,M=1000 failed" in capsys.readouterr().err


def test_sweep_needs_a_sweep(tmp_path, capsys):
    assert main(["sweep", str(ONE), "-o", str(tmp_path / "x.csv")]) != 0
    assert "--sweep" in capsys.readouterr().err
