"""Ctrl-C stops a command within a second or two with exit status 130, and leaves no partial
output file behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ctrl_c_stops_run_with_130_and_no_partial_output(tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    argv = [sys.executable, "-m", "einsumcc", "run", str(ROOT / "examples" / "attention_3pass.ein")]
    argv += ["--dims", "M=4096,P=4096", "--save", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # past start-up, inside the evaluation
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    waited = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert waited < 5.0, f"took {waited:.1f} s to stop"
    assert list(tmp_path.iterdir()) == []  # neither out.npz nor a temporary part
