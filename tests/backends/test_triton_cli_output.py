"""``einsumcc compile -o``: written atomically, and every way the path can be wrong is a
diagnostic (exit status 1, no traceback), never an internal error."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from einsumcc.cli import main
from tests.conftest import EXAMPLES

ONE_PASS = str(EXAMPLES / "attention_1pass.ein")


def compile_to(output: str) -> int:
    return main(["compile", ONE_PASS, "--target", "triton", "-o", output])


def failed(capsys: Any, *expected: str) -> str:
    """The diagnostic on stderr, which names each of ``expected``; nothing on stdout."""
    out, err = capsys.readouterr()
    assert isinstance(err, str)
    assert out == ""
    assert err.startswith("error: cannot write"), err
    assert "Traceback" not in err
    assert "internal error" not in err
    for text in expected:
        assert text in err, err
    return err


def test_output_is_written_atomically_keeping_its_mode(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "kernel.py"
    out.write_text("old\n")
    out.chmod(0o640)
    assert compile_to(str(out)) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}")
    assert "@triton.jit" in out.read_text("utf-8")
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernel.py"]


def test_new_output_gets_the_umask_mode(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "kernel.py"
    old = os.umask(0o027)
    try:
        assert compile_to(str(out)) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_interrupted_write_leaves_the_old_file(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "kernel.py"
    out.write_text("old\n")

    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)  # Ctrl-C once the data is written
    assert compile_to(str(out)) == 130
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernel.py"]
    monkeypatch.undo()
    fresh = tmp_path / "fresh.py"
    monkeypatch.setattr(os, "fsync", interrupt)
    assert compile_to(str(fresh)) == 130
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernel.py"]


def test_a_symlink_or_device_is_written_through(tmp_path: Path, capsys: Any) -> None:
    """As the shell's ``> path``: a link's target is written (not the link replaced), and a
    device such as /dev/null is written to, never replaced by a file."""
    target = tmp_path / "target.py"
    target.write_text("old\n")
    link = tmp_path / "kernel.py"
    link.symlink_to(target)
    assert compile_to(str(link)) == 0
    assert link.is_symlink()
    assert "@triton.jit" in target.read_text("utf-8")
    devnull = Path(os.devnull)
    if devnull.exists() and stat.S_ISCHR(devnull.stat().st_mode):
        assert compile_to(str(devnull)) == 0
        assert stat.S_ISCHR(devnull.lstat().st_mode)
        assert not list(devnull.parent.glob(".null.*.tmp"))


def test_a_directory_as_output(tmp_path: Path, capsys: Any) -> None:
    assert compile_to(str(tmp_path)) == 1
    failed(capsys, "names a directory", "hint:")
    assert compile_to(str(tmp_path / "new") + "/") == 1
    failed(capsys, "names a directory")
    assert not (tmp_path / "new").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_path_too_long(tmp_path: Path, capsys: Any) -> None:
    long_name = tmp_path / ("x" * 5000 + ".py")  # one component over NAME_MAX
    assert compile_to(str(long_name)) == 1
    err = failed(capsys, "[...]")
    assert len(err) < 600  # the path is elided
    assert list(tmp_path.iterdir()) == []  # no temporary file left
    deep = str(tmp_path) + "/" + "/".join(["d" * 100] * 50) + "/k.py"  # over PATH_MAX
    assert len(deep) > 5000
    assert compile_to(deep) == 1
    failed(capsys)
    rel = "a" * 5000
    assert compile_to(rel) == 1
    failed(capsys, "[...]")


def test_a_missing_or_unwritable_directory(tmp_path: Path, capsys: Any) -> None:
    assert compile_to(str(tmp_path / "missing" / "k.py")) == 1
    failed(capsys, "No such file or directory", "must exist")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert compile_to(str(blocker / "k.py")) == 1
    failed(capsys, "Not a directory")
    assert compile_to(str(tmp_path / "nul\0.py")) == 1
    failed(capsys)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_directory(tmp_path: Path, capsys: Any) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert compile_to(str(ro / "k.py")) == 1
        failed(capsys, "Permission denied")
    finally:
        ro.chmod(0o700)


def test_a_read_only_filesystem(capsys: Any) -> None:
    proc = Path("/proc/self")
    if not proc.is_dir():
        pytest.skip("no /proc")
    assert compile_to(str(proc / "einsumcc-kernel.py")) == 1
    failed(capsys)
