"""Writing a generated module to a real file, importing it and running it.

``@triton.jit`` needs the kernel's source in a file, so a module is written to a private
per-user cache directory (see :func:`cache_dir`) under a name keyed by the hash of its text,
atomically and never through a symbolic link (see :mod:`einsumcc_triton.files`), then
imported with ``importlib.util.spec_from_file_location``.  Without a CUDA device the kernels run in
Triton's interpreter.  Triton decides whether a function is interpreted when ``@triton.jit``
decorates it, reading ``triton.knobs.runtime.interpret`` (by default the environment's
``TRITON_INTERPRET``): that knob is set, without writing the environment, for exactly as
long as it is needed (importing triton's own library, importing a generated module, running
its launcher) and restored afterwards.  The process's ``os.environ`` is never written.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from einsumcc.diagnostics import EinError
from einsumcc_triton.files import (
    CACHE_ENV,
    cache_root,
    make_private_dirs,
    read_private,
    shown,
    write_atomic,
)

if TYPE_CHECKING:
    import numpy as np

    from einsumcc.ir.cascade import Cascade
    from einsumcc.schedule.schedule import Schedule
    from einsumcc_triton.kernel_info import KernelInfo

_MISSING = object()


def cache_dir() -> Path:
    """Where generated modules are written: ``triton/`` in ``$EINSUMCC_CACHE_DIR``, or in the
    per-user cache directory (``platformdirs.user_cache_dir("einsumcc")``: on Linux
    ``$XDG_CACHE_HOME/einsumcc``, by default ``~/.cache/einsumcc``)."""
    return cache_root() / "triton"


def use_interpreter() -> bool:
    """True when kernels run in Triton's interpreter: asked for with ``TRITON_INTERPRET=1``,
    or no CUDA device (``TRITON_INTERPRET=0`` asks for compiled kernels).  Triton is imported
    here, its own library interpreted when the kernels will be (see :func:`import_triton`)."""
    env = os.environ.get("TRITON_INTERPRET", "")
    if env not in ("", "0"):
        interpret = True
    elif env == "0":
        interpret = False
    else:
        import torch

        interpret = not torch.cuda.is_available()
    import_triton(interpret)
    return interpret


def _set_interpret(value: object) -> object:
    """Set ``triton.knobs.runtime.interpret`` to ``value`` (``_MISSING``: back to its default,
    the environment's) without writing the environment; returns the previous setting."""
    import triton.knobs as knobs

    runtime = knobs.runtime
    old = runtime.__dict__.get("interpret", _MISSING)
    propagate = knobs.propagate_env
    knobs.propagate_env = False  # a knob set with this on is also written to os.environ
    try:
        if value is _MISSING:
            del runtime.interpret
        else:
            runtime.interpret = value
    finally:
        knobs.propagate_env = propagate
    return old


@contextmanager
def interpret_knob(interpret: bool) -> Iterator[None]:
    """``triton.knobs.runtime.interpret`` set to ``interpret`` inside the block only."""
    old = _set_interpret(interpret)
    try:
        yield
    finally:
        _set_interpret(old)


class _InterpretTritonLibrary(importlib.abc.MetaPathFinder):
    """While triton is first imported: as soon as ``triton.knobs`` is initialised (it is,
    before any ``@triton.jit`` function of triton's library is decorated), switch its
    interpreter knob on.  Finds nothing itself."""

    def __init__(self) -> None:
        self.old: object = None
        self.switched = False

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        knobs = sys.modules.get("triton.knobs")
        if not self.switched and fullname.startswith("triton.") and hasattr(knobs, "runtime"):
            self.old = _set_interpret(True)
            self.switched = True
        return None


def _library_interpreted() -> bool:
    import triton.language as tl

    return type(tl.standard.max).__name__ == "InterpretedFunction"


def import_triton(interpret: bool) -> None:
    """Import triton with its library functions (``tl.max``, ``tl.cdiv``, ...) interpreted
    when ``interpret``: Triton decorates them once, when it is first imported, and a kernel
    run in the interpreter can only call interpreted functions."""
    if "triton.language" not in sys.modules and interpret:
        finder = _InterpretTritonLibrary()
        sys.meta_path.insert(0, finder)
        try:
            importlib.import_module("triton.language")
        finally:
            sys.meta_path.remove(finder)
            if finder.switched:
                _set_interpret(finder.old)
    if interpret and not _library_interpreted():
        raise RuntimeError(
            "einsumcc runs the kernels in Triton's interpreter (there is no CUDA device, or "
            "TRITON_INTERPRET=1), but triton was imported before in compiled mode and cannot "
            "switch now: compile with einsumcc_triton before importing triton, or set "
            "TRITON_INTERPRET=1 before starting Python"
        )


def write_module(source: str, name: str, directory: Path | None = None) -> Path:
    """Write ``source`` to ``directory`` (default :func:`cache_dir`) as ``NAME_HASH.py`` and
    return its path; a file already there with the same text is reused.  The directory is
    created private (0o700) and the file written atomically; a directory or a file there
    that is a symbolic link or belongs to another user is refused (:class:`EinError`), as is
    a directory that cannot be written."""
    data = source.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()[:16]
    where = directory
    try:
        if directory is None:
            root = cache_root()
            where = directory = root / "triton"
            make_private_dirs(directory, checked=(root,))
        else:
            where = directory = Path(directory)
            make_private_dirs(directory)
        path = directory / f"{name}_{digest}.py"
        if read_private(path) != data:
            write_atomic(path, data, private=True)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte or lone surrogate in a path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise EinError.plain(
            f"cannot write the generated module to {shown(where) if where else 'the cache'}: "
            f"{reason}",
            hint=f"set {CACHE_ENV} to a writable directory of your own",
        ) from None
    return path


def import_module(path: Path, *, interpret: bool | None = None) -> ModuleType:
    """Import a generated module.  ``interpret`` decides interpreter mode (default: when
    there is no CUDA device); a module imported for AOT compilation passes False."""
    mode = use_interpreter()
    if interpret is None:
        interpret = mode
    tag = "interp" if interpret else "jit"
    mod_name = f"einsumcc_generated_{path.stem}_{tag}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        with interpret_knob(interpret):  # read by @triton.jit as it decorates
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[mod_name]
        raise
    return module


def check_no_grad(names: Sequence[str], tensors: Sequence[Any]) -> None:
    """A clear error for an input that asks for gradients: the kernels have no backward."""
    for name, t in zip(names, tensors, strict=False):
        if getattr(t, "requires_grad", False):
            raise EinError.plain(
                f"input {name} requires grad, but the Triton kernels have no backward pass yet: "
                "the outputs would silently carry no gradient",
                hint="pass the input with .detach(), or call the kernel inside "
                "`with torch.no_grad():`",
            )


@dataclass
class Compiled:
    """A cascade compiled to Triton: call it with torch tensors (inputs in declaration order).

    ``source`` is the generated module, ``schedule`` the schedule it implements, ``path`` the
    file it was written to.  :meth:`run_numpy` takes and returns numpy arrays by name.
    """

    cascade: Cascade
    schedule: Schedule
    source: str
    path: Path
    launcher: str
    kernels: tuple[KernelInfo, ...]
    _module: ModuleType | None = field(default=None, repr=False)

    @property
    def module(self) -> ModuleType:
        if self._module is None:
            self._module = import_module(self.path)
        return self._module

    @property
    def fn(self) -> Any:
        return getattr(self.module, self.launcher)

    def __call__(self, *tensors: Any) -> Any:
        """Run the kernels on torch tensors (inputs in declaration order).  Raises
        :class:`EinError` for an input with ``requires_grad``: there is no backward yet."""
        import torch

        if torch.is_grad_enabled():
            check_no_grad(self.input_names, tensors)
        if use_interpreter():
            import numpy as np

            # the interpreter computes with numpy; the launcher reads the knob
            with np.errstate(all="ignore"), interpret_knob(True):
                return self.fn(*tensors)
        return self.fn(*tensors)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.cascade.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.cascade.outputs)

    def run_numpy(
        self, inputs: Mapping[str, np.ndarray], device: str | None = None
    ) -> dict[str, np.ndarray]:
        """Inputs by name (any float array; converted to each input's dtype), outputs as
        float64 arrays by name."""
        import numpy as np
        import torch

        from einsumcc_triton.kernel_info import TORCH_DTYPE

        if device is None:
            device = "cpu" if use_interpreter() else "cuda"
        args = []
        for t in self.cascade.inputs:
            arr = np.asarray(inputs[t.name])
            dtype = getattr(torch, TORCH_DTYPE[t.dtype.value])
            args.append(torch.as_tensor(np.array(arr, copy=True)).to(device=device, dtype=dtype))
        out = self(*args)
        outs: Sequence[Any] = out if isinstance(out, tuple) else (out,)
        return {
            name: o.detach().to("cpu", torch.float64).numpy()
            for name, o in zip(self.output_names, outs, strict=True)
        }
