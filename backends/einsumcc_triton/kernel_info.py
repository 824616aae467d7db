"""What lowering produces and what the launcher, the AOT compiler and the tests read: the
dtype spellings, each kernel's parameters and grid, and the lowering's own error."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from einsumcc.schedule.nodes import Node
    from einsumcc_triton import kernel_ast as ka

TL_DTYPE = {
    "f16": "float16",
    "bf16": "bfloat16",
    "f32": "float32",
    "f64": "float64",
    "i32": "int32",
    "i64": "int64",
    "bool": "int1",
}
SIG_DTYPE = {
    "f16": "fp16",
    "bf16": "bf16",
    "f32": "fp32",
    "f64": "fp64",
    "i32": "i32",
    "i64": "i64",
    "bool": "i1",
}
TORCH_DTYPE = {
    "f16": "float16",
    "bf16": "bfloat16",
    "f32": "float32",
    "f64": "float64",
    "i32": "int32",
    "i64": "int64",
    "bool": "bool",
}
IDENTITY = {"sum": 0.0, "max": -math.inf, "min": math.inf, "prod": 1.0}

# helper @triton.jit functions a module may need, by name
HELPERS = (
    "_ein_floordiv",
    "_ein_safe_div",
    "_ein_expm1",
    "_ein_tanh",
    "_ein_mul",
    "_ein_nanmax",
    "_ein_nanmin",
)
RESERVED = frozenset({"torch", "triton", "tl", *HELPERS})


@dataclass(frozen=True)
class KernelParam:
    """One argument of a generated kernel and where the launcher takes it from."""

    name: str
    kind: str  # ptr | tiles (the test-mode counter) | stride | extent | param | constexpr | interp
    tensor: str | None = None  # ptr, stride
    dim: int = 0  # stride: which dimension
    rank: str | None = None  # extent, and the rank of a stride's dimension
    value: int | None = None  # constexpr
    dtype: str = ""  # ptr: the element dtype (.ein spelling)


@dataclass(frozen=True)
class KernelInfo:
    name: str
    kernel: str  # the schedule's kernel name (k0, ...)
    params: tuple[KernelParam, ...]
    grid: tuple[tuple[str, int], ...]  # (rank, block) of each grid variable, fastest first
    num_warps: int
    # (arch, num_warps, num_stages) per GPU target, newest first (einsumcc_triton.tuning)
    configs: tuple[tuple[int, int, int], ...] = ()

    def config(self, arch: int) -> tuple[int, int]:
        """``(num_warps, num_stages)`` on ``sm_<arch>``: the newest target at or below it."""
        for a, warps, stages in self.configs:
            if a <= arch:
                return warps, stages
        return self.num_warps, 3


@dataclass(frozen=True)
class Lowered:
    module: ka.Module
    kernels: tuple[KernelInfo, ...]
    launcher: str


class UnsupportedError(Exception):
    """A construct the lowering cannot express (reported with the node's position)."""

    def __init__(self, node: Node | None, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message
