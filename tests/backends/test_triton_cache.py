"""The compile cache: a per-user directory (``$XDG_CACHE_HOME`` through platformdirs, or
``$EINSUMCC_CACHE_DIR``), created private, written atomically, never through a symbolic
link, and safe for concurrent writers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from einsumcc.cli import main
from einsumcc.diagnostics import EinError
from einsumcc_triton import files
from einsumcc_triton.launch import cache_dir, write_module
from tests.conftest import EXAMPLES

SOURCE = "# a generated module\nX = 1\n"
ONE_PASS = str(EXAMPLES / "attention_1pass.ein")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$EINSUMCC_CACHE_DIR`` set to a directory that does not exist yet."""
    root = tmp_path / "cache"
    monkeypatch.setenv("EINSUMCC_CACHE_DIR", str(root))
    return root


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG is Linux's convention")
def test_cache_dir_honours_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EINSUMCC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "einsumcc" / "triton"
    monkeypatch.setenv("EINSUMCC_CACHE_DIR", "")  # empty: as if unset
    assert cache_dir() == tmp_path / "xdg" / "einsumcc" / "triton"


def test_cache_dir_env_var_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("EINSUMCC_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine" / "triton"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EINSUMCC_CACHE_DIR", "rel")  # relative: made absolute
    assert cache_dir() == tmp_path / "rel" / "triton"


def test_write_module_creates_private_dirs_and_reuses_the_file(cache: Path) -> None:
    path = write_module(SOURCE, "k")
    assert path.parent == cache / "triton"
    assert path.read_text("utf-8") == SOURCE
    for d in (cache, cache / "triton"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    inode = path.stat().st_ino
    assert write_module(SOURCE, "k") == path
    assert path.stat().st_ino == inode  # the same text: not written again
    other = write_module(SOURCE + "Y = 2\n", "k")
    assert other != path
    assert leftovers(path.parent) == []


def test_a_symlink_at_the_cache_file_is_not_followed(cache: Path, tmp_path: Path) -> None:
    path = write_module(SOURCE, "k")
    path.unlink()
    victim = tmp_path / "victim.py"
    victim.write_text("precious\n")
    path.symlink_to(victim)
    with pytest.raises(EinError, match="symbolic link"):
        write_module(SOURCE, "k")
    assert victim.read_text() == "precious\n"
    # a dangling link: its target is not created either
    path.unlink()
    missing = tmp_path / "created.py"
    path.symlink_to(missing)
    with pytest.raises(EinError, match="symbolic link"):
        write_module(SOURCE, "k")
    assert not missing.exists()
    assert leftovers(path.parent) == []


@pytest.mark.parametrize("planted", ["triton", "root"])
def test_a_symlink_at_the_cache_dir_is_not_followed(
    cache: Path, tmp_path: Path, planted: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    if planted == "root":
        cache.symlink_to(elsewhere)
    else:
        cache.mkdir(mode=0o700)
        (cache / "triton").symlink_to(elsewhere)
    with pytest.raises(EinError, match="symbolic link") as info:
        write_module(SOURCE, "k")
    assert info.value.diagnostics[0].hint
    assert list(elsewhere.iterdir()) == []


def test_an_explicit_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(EinError, match="symbolic link"):
        write_module(SOURCE, "k", link)
    assert list(real.iterdir()) == []


def test_a_cache_of_another_user_is_refused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_module(SOURCE, "k")
    me = files._current_uid()
    if me is None:
        pytest.skip("no user ids on this platform")
    monkeypatch.setattr(files, "_current_uid", lambda: me + 1)
    with pytest.raises(EinError, match="owned by another user"):
        write_module(SOURCE, "k")
    with pytest.raises(EinError, match="owned by another user"):
        files.read_private(path)


def test_a_cache_file_of_another_user_is_refused(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_module(SOURCE, "k")
    me = files._current_uid()
    if me is None:
        pytest.skip("no user ids on this platform")
    st = path.stat()  # the directories stay ours (lstat), the file is someone else's (fstat)
    fake = os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, me + 1, *st[5:]))
    monkeypatch.setattr(os, "fstat", lambda fd: fake)
    with pytest.raises(EinError, match="owned by another user"):
        write_module(SOURCE, "k")


def test_a_cache_dir_writable_by_others_is_refused(cache: Path) -> None:
    write_module(SOURCE, "k")
    (cache / "triton").chmod(0o777)
    with pytest.raises(EinError, match="writable by other users") as info:
        write_module(SOURCE, "k")
    assert "chmod go-w" in (info.value.diagnostics[0].hint or "")


def test_an_unusable_cache_is_an_ein_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("EINSUMCC_CACHE_DIR", str(blocker))
    with pytest.raises(EinError, match="not a directory"):
        write_module(SOURCE, "k")
    monkeypatch.setenv("EINSUMCC_CACHE_DIR", str(blocker / "sub"))
    with pytest.raises(EinError, match="cannot write the generated module"):
        write_module(SOURCE, "k")
    monkeypatch.setenv("EINSUMCC_CACHE_DIR", str(tmp_path / ("x" * 5000)))
    with pytest.raises(EinError, match="cannot write the generated module") as info:
        write_module(SOURCE, "k")
    assert "[...]" in info.value.diagnostics[0].message  # the long path is elided


def test_run_with_an_unusable_cache_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("EINSUMCC_CACHE_DIR", str(blocker))
    assert main(["run", ONE_PASS, "--target", "triton", "--dims", "M=64,P=4"]) == 1
    err = capsys.readouterr().err
    assert "not a directory" in err
    assert "EINSUMCC_CACHE_DIR" in err
    assert "Traceback" not in err


def test_concurrent_writers_in_threads_all_succeed(cache: Path) -> None:
    n = 16
    barrier = threading.Barrier(n)
    paths: list[Path] = []
    errors: list[BaseException] = []
    target = cache / "triton" / "direct.py"

    def work() -> None:
        try:
            barrier.wait()
            paths.append(write_module(SOURCE, "k"))
            # the same file written concurrently, past the "already there" check
            files.write_atomic(target, SOURCE.encode(), private=True)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(paths)) == 1
    assert paths[0].read_text("utf-8") == SOURCE
    assert target.read_text("utf-8") == SOURCE
    assert leftovers(cache / "triton") == []


def test_concurrent_writer_processes_all_succeed(cache: Path) -> None:
    go = cache.parent / "go"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from einsumcc_triton import files
        from einsumcc_triton.launch import write_module
        while not os.path.exists({str(go)!r}):
            time.sleep(0.001)
        for i in range(20):
            path = write_module({SOURCE!r}, "k")
            files.write_atomic(path.with_name("direct.py"), {SOURCE!r}.encode(), private=True)
        print(path)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), [err for _, err in outs]
    paths = {out.strip() for out, _ in outs}
    assert len(paths) == 1
    path = Path(paths.pop())
    assert path.read_text("utf-8") == SOURCE
    assert path.with_name("direct.py").read_text("utf-8") == SOURCE
    assert leftovers(path.parent) == []
