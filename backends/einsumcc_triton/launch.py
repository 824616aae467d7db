"""Writing a generated module to a real file, importing it and running it.

``@triton.jit`` needs the kernel's source in a file, so a module is written to a cache
directory under a name keyed by the hash of its text, then imported with
``importlib.util.spec_from_file_location``.  Without a CUDA device the kernels run in
Triton's interpreter: ``TRITON_INTERPRET=1`` is set before the module is imported (it is
read when ``@triton.jit`` decorates a function).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from einsumcc.ir.cascade import Cascade
from einsumcc.schedule.schedule import Schedule
from einsumcc_triton.lower import KernelInfo


def cache_dir() -> Path:
    """``$EINSUMCC_CACHE_DIR`` or ``~/.cache/einsumcc``, then ``triton/``."""
    base = os.environ.get("EINSUMCC_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "einsumcc"
    return root / "triton"


def use_interpreter() -> bool:
    """True when kernels run in Triton's interpreter: asked for with ``TRITON_INTERPRET=1``,
    or no CUDA device.  In the second case ``TRITON_INTERPRET=1`` is set here, which must
    happen before triton is first imported: Triton decides at import time whether its own
    library functions are interpreted."""
    env = os.environ.get("TRITON_INTERPRET", "")
    if env not in ("", "0"):
        return True
    if env == "0":
        return False  # asked for compiled kernels explicitly
    import torch

    if torch.cuda.is_available():
        return False
    if "triton" in sys.modules and env == "":
        import triton.language as tl

        if type(tl.standard.max).__name__ != "InterpretedFunction":
            raise RuntimeError(
                "there is no CUDA device, so einsumcc runs the kernels in Triton's interpreter, "
                "but triton was imported before without TRITON_INTERPRET=1 and cannot switch "
                "now: set TRITON_INTERPRET=1 before importing triton"
            )
    os.environ["TRITON_INTERPRET"] = "1"
    return True


def write_module(source: str, name: str, directory: Path | None = None) -> Path:
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}_{digest}.py"
    if not path.exists() or path.read_text("utf-8") != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source, "utf-8")
        tmp.replace(path)
    return path


def import_module(path: Path, *, interpret: bool | None = None) -> ModuleType:
    """Import a generated module.  ``interpret`` decides interpreter mode (default: when
    there is no CUDA device); a module imported for AOT compilation passes False."""
    mode = use_interpreter()
    import triton.language  # noqa: F401 - imported in the process's mode before it is switched

    if interpret is None:
        interpret = mode
    tag = "interp" if interpret else "jit"
    mod_name = f"einsumcc_generated_{path.stem}_{tag}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    try:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    finally:
        if old is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = old
    return module


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
        if use_interpreter():
            with np.errstate(all="ignore"):  # the interpreter computes with numpy
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
        import torch

        from einsumcc_triton.lower import TORCH_DTYPE

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
