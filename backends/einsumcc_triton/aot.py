"""Ahead-of-time compilation of generated kernels for a GPU target, without a GPU.

``triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`` runs Triton's whole
pipeline (TTIR, TTGIR, LLVM IR, PTX, cubin) for a given architecture on any machine.  The
kernels are specialised the way Triton's JIT specialises them for contiguous tensors whose
extents are multiples of 16: the innermost stride is the constant 1, pointers and the other
strides are divisible by 16.  ``ptxas`` (bundled with Triton) is then run once more with
``-v`` on the PTX to report registers and spills, which only a loaded kernel otherwise knows.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from einsumcc_triton.launch import Compiled, import_module
from einsumcc_triton.lower import SIG_DTYPE, KernelInfo


@dataclass(frozen=True)
class KernelStats:
    kernel: str
    arch: int
    compile_seconds: float
    shared_bytes: int
    registers: int
    spill_stores: int
    spill_loads: int
    wgmma: int  # wgmma.mma_async instructions in the PTX (Hopper tensor cores)
    mma: int  # mma.sync instructions (Ampere-style tensor cores)
    num_warps: int
    ptx: str

    @property
    def spills(self) -> int:
        return self.spill_stores + self.spill_loads


def _signature(
    info: KernelInfo, compiled: Compiled
) -> tuple[dict[str, str], dict[str, Any], dict[Any, Any]]:
    sig: dict[str, str] = {}
    constexprs: dict[str, Any] = {}
    attrs: dict[Any, Any] = {}
    last_dim: dict[str, int] = {}
    for p in info.params:
        if p.kind == "stride" and p.tensor is not None:
            last_dim[p.tensor] = max(last_dim.get(p.tensor, -1), p.dim)
    for i, p in enumerate(info.params):
        if p.kind == "ptr":
            sig[p.name] = "*" + SIG_DTYPE[p.dtype]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif p.kind == "stride":
            assert p.tensor is not None
            if p.dim == last_dim[p.tensor]:
                sig[p.name] = "constexpr"
                constexprs[p.name] = 1
            else:
                sig[p.name] = "i32"
                attrs[(i,)] = [["tt.divisibility", 16]]
        elif p.kind == "extent":
            sig[p.name] = "i32"
        elif p.kind == "param":
            sig[p.name] = "fp32"
        else:
            sig[p.name] = "constexpr"
            constexprs[p.name] = p.value
    del compiled
    return sig, constexprs, attrs


def _ptxas_stats(ptx: str, arch: int) -> tuple[int, int, int]:
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    ptxas = get_ptxas(arch).path
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "k.ptx"
        src.write_text(ptx)
        out = subprocess.run(
            [
                ptxas,
                "-v",
                f"--gpu-name={sm_arch_from_capability(arch)}",
                str(src),
                "-o",
                str(Path(d) / "k.o"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    log = out.stdout + out.stderr
    regs = re.search(r"Used (\d+) registers", log)
    stores = re.search(r"(\d+) bytes spill stores", log)
    loads = re.search(r"(\d+) bytes spill loads", log)
    return (
        int(regs.group(1)) if regs else 0,
        int(stores.group(1)) if stores else 0,
        int(loads.group(1)) if loads else 0,
    )


def aot_compile(compiled: Compiled, arch: int) -> list[KernelStats]:
    """Compile every kernel of ``compiled`` for ``sm_<arch>`` (80, 90, ...) and report."""
    # import the module first: it puts triton in the process's mode (interpreter or not)
    module = import_module(compiled.path, interpret=False)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    out: list[KernelStats] = []
    for info in compiled.kernels:
        fn = getattr(module, info.name)
        sig, constexprs, attrs = _signature(info, compiled)
        start = time.perf_counter()
        kernel = triton.compile(
            ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs),
            target=GPUTarget("cuda", arch, 32),
            options={"num_warps": info.num_warps},
        )
        seconds = time.perf_counter() - start
        ptx = kernel.asm["ptx"]
        regs, st, ld = _ptxas_stats(ptx, arch)
        out.append(
            KernelStats(
                kernel=info.name,
                arch=arch,
                compile_seconds=seconds,
                shared_bytes=int(kernel.metadata.shared),
                registers=regs,
                spill_stores=st,
                spill_loads=ld,
                wgmma=len(re.findall(r"\bwgmma\.mma_async", ptx)),
                mma=len(re.findall(r"\bmma\.sync", ptx)),
                num_warps=info.num_warps,
                ptx=ptx,
            )
        )
    return out
