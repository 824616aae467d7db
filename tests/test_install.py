"""A plain ``pip install .`` in a fresh virtual environment: the command line works, and
``simulate --plot`` draws a PNG (matplotlib is a core dependency, imported only to plot)."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("plain") / "venv"
    venv.create(env_dir, with_pip=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT)]
    out = subprocess.run(pip, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return env_dir / "bin"


def test_simulate_plot_on_a_plain_install(plain_install: Path, tmp_path: Path) -> None:
    png = tmp_path / "timeline.png"
    argv = [str(plain_install / "einsumcc"), "simulate", str(ROOT / "examples" / "matmul.ein")]
    argv += ["--arch", "systolic", "--dims", "M=64,N=64,K=32", "--plot", str(png)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, check=False)
    if out.returncode == 1:  # the only other acceptable outcome: the install hint
        assert "pip install" in out.stderr
        return
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in out.stdout


def test_plain_install_has_no_torch_and_says_how_to_get_the_triton_backend(
    plain_install: Path, tmp_path: Path
) -> None:
    argv = [str(plain_install / "einsumcc"), "run", str(ROOT / "examples" / "matmul.ein")]
    argv += ["--dims", "M=8,N=8,K=8", "--target", "triton"]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert out.returncode == 1
    assert "pip install" in out.stderr
    assert "Traceback" not in out.stderr
    check = [str(plain_install / "einsumcc"), "check", str(ROOT / "examples" / "matmul.ein")]
    assert subprocess.run(check, capture_output=True, check=False).returncode == 0
