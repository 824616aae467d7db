"""The user's output files: written whole or not at all.

Every command writes through :func:`atomic_path` (or :func:`write_text`): the data goes to a
temporary file beside the target, which is renamed over it only once it is complete, so a
Ctrl-C or an error never leaves a partial file.  Problems with the path itself (a missing
folder, a path that is too long, a folder where a file is expected, no permission) are
:class:`~einsumcc.diagnostics.EinError` s naming the option.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_text(d / "out.txt", "hello\\n", option="-o")
>>> (d / "out.txt").read_text()
'hello\\n'
>>> write_text(d / "missing" / "out.txt", "x", option="-o")
Traceback (most recent call last):
...
einsumcc.diagnostics.EinError: error: -o .../missing/out.txt: the folder .../missing does not exist
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from einsumcc.diagnostics import EinError


def path_error(option: str, path: str | Path, exc: OSError) -> EinError:
    """A clear error for an OSError on a path the user gave with ``option``."""
    shown = str(path) if len(str(path)) <= 200 else str(path)[:100] + "..." + str(path)[-40:]
    reasons = {
        errno.ENAMETOOLONG: "the path is too long",
        errno.ENOENT: f"the folder {Path(path).parent} does not exist",
        errno.EISDIR: "it is a folder, not a file",
        errno.EACCES: "permission denied",
        errno.EROFS: "the file system is read-only",
        errno.ENOSPC: "no space left on the device",
        errno.ENOTDIR: "a part of the path is not a folder",
    }
    if exc.errno == errno.ENOENT and Path(path).parent.is_dir():
        reasons[errno.ENOENT] = "no such file"
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    return EinError.plain(f"{option} {shown}: {reason}")


@contextlib.contextmanager
def atomic_path(path: str | Path, option: str = "-o") -> Iterator[Path]:
    """A temporary path to write to; renamed to ``path`` when the block ends normally."""
    target = Path(path)
    try:
        is_dir = target.is_dir()
    except OSError as exc:  # a name too long, a NUL-free but unusable path
        raise path_error(option, target, exc) from None
    except ValueError:  # an embedded NUL byte
        raise EinError.plain(f"{option}: the path holds a NUL byte") from None
    if is_dir:
        raise path_error(option, target, IsADirectoryError(errno.EISDIR, "is a directory"))
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name[:64]}.", suffix=".part" + target.suffix, dir=target.parent
        )
    except OSError as exc:
        raise path_error(option, target, exc) from None
    except ValueError:  # an embedded NUL byte
        raise EinError.plain(f"{option}: the path holds a NUL byte") from None
    os.close(fd)
    part = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    part.chmod(0o666 & ~umask)  # what a plain open() would have given
    try:
        yield part
        part.replace(target)
    except OSError as exc:
        raise path_error(option, target, exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


def write_text(path: str | Path, text: str, option: str = "-o") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path, option) as tmp:
        tmp.write_text(text, encoding="utf-8")
