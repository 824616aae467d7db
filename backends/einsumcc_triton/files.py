"""Writing files safely: the compile cache and ``einsumcc compile -o``.

A file is written whole or not at all: into a temporary file created (``O_EXCL``) next to it,
then renamed over it (``os.replace``), so an interrupted write (Ctrl-C, a full disk) leaves
no partial file and concurrent writers of the same file both succeed.  The rename replaces a
symbolic link at the target rather than writing where it points.

The cache holds modules that are imported, so it must be the current user's alone: its
directories are created with mode 0o700, and a cache directory or a cached file that is a
symbolic link, is not owned by the current user, or (a directory) is writable by others is
refused with an :class:`EinError` rather than used.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from einsumcc.diagnostics import EinError

CACHE_ENV = "EINSUMCC_CACHE_DIR"
_CACHE_HINT = f"set {CACHE_ENV} to a directory of your own, or remove the offending entry"


def _current_uid() -> int | None:
    """The current user's id (None where the platform has none: no ownership checks)."""
    getuid = getattr(os, "getuid", None)
    return getuid() if getuid is not None else None


def shown(path: str | os.PathLike[str], limit: int = 160) -> str:
    """``path`` for a message, its middle elided when it is very long."""
    text = os.fspath(path)
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]}[...]{text[-keep:]}"


def cache_root() -> Path:
    """``$EINSUMCC_CACHE_DIR`` when set, else the per-user cache directory of the platform
    (``$XDG_CACHE_HOME/einsumcc``, by default ``~/.cache/einsumcc``, on Linux)."""
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_cache_dir("einsumcc", appauthor=False)).absolute()


def _refuse(path: Path, problem: str, hint: str = _CACHE_HINT) -> EinError:
    return EinError.plain(f"refusing to use the cache {shown(path)}: {problem}", hint=hint)


def check_private_dir(path: Path) -> None:
    """Raise unless ``path`` is a real directory (not a link) of the current user's that
    nobody else can write to."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, "it is a symbolic link, and einsumcc does not follow links there")
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, "it is not a directory")
    uid = _current_uid()
    if uid is not None and st.st_uid != uid:
        raise _refuse(path, f"it is owned by another user (uid {st.st_uid}, not {uid})")
    if uid is not None and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(
            path,
            f"it is writable by other users (mode {stat.S_IMODE(st.st_mode):o})",
            hint=f"chmod go-w {shown(path)}, or set {CACHE_ENV} to a private directory",
        )


def make_private_dirs(path: Path, checked: Iterable[Path] = ()) -> None:
    """Create ``path`` with mode 0o700 and check it with :func:`check_private_dir`, and so
    each of ``checked`` (its ancestors, outermost first) before anything is created in it.
    Missing directories above them are created with mode 0o700 too, unchecked."""
    for d in (*checked, path):
        missing = []
        p = d
        while not os.path.lexists(p):  # a dangling link counts as there (and is refused)
            missing.append(p)
            if p.parent == p:
                break
            p = p.parent
        for m in reversed(missing):
            # a concurrent writer may make it first: it is checked like any other
            with contextlib.suppress(FileExistsError):
                m.mkdir(mode=0o700)
        check_private_dir(d)


def read_private(path: Path) -> bytes | None:
    """The contents of ``path`` (None if there is none), never through a symbolic link;
    raises unless it is a regular file owned by the current user."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)  # a planted FIFO must not block the open
    if not hasattr(os, "O_NOFOLLOW") and path.is_symlink():
        raise _refuse(path, "it is a symbolic link, and einsumcc does not follow links there")
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) or path.is_symlink():
            raise _refuse(
                path, "it is a symbolic link, and einsumcc does not follow links there"
            ) from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "it is not a regular file")
        uid = _current_uid()
        if uid is not None and st.st_uid != uid:
            raise _refuse(path, f"it is owned by another user (uid {st.st_uid}, not {uid})")
        return f.read()


def write_atomic(path: Path, data: bytes, *, private: bool = False, sync: bool = False) -> None:
    """Write ``data`` to ``path`` whole or not at all: into a new temporary file next to it,
    then renamed over it.  ``private``: the file gets mode 0o600; otherwise the mode of the
    file it replaces, or 0o666 less the umask.  ``sync``: fsync before the rename."""
    directory = path.parent
    mode = 0o600 if private else 0o666
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    while True:
        # short enough that a target whose name fits has a temporary name that fits too
        tmp = directory / f".{path.name[:48]}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, flags, mode)  # O_EXCL: never an existing file or link
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "wb") as f:
            if not private:
                try:
                    old = os.lstat(path)
                except FileNotFoundError:
                    pass
                else:
                    if stat.S_ISREG(old.st_mode) and hasattr(os, "fchmod"):
                        os.fchmod(f.fileno(), stat.S_IMODE(old.st_mode))
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_through(path: Path, data: bytes) -> None:
    """Write ``data`` into whatever ``path`` names, following a symbolic link, the way a
    shell's ``> path`` does: for a device, a pipe or a link (``/dev/stdout``, ``/dev/null``),
    which renaming a new file over would replace instead of write to.  Not atomic."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0), 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
