"""Ahead-of-time compilation of generated kernels for a GPU target, without a GPU.

``triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`` runs Triton's whole
pipeline (TTIR, TTGIR, LLVM IR, PTX, cubin) for a given architecture on any machine.  The
kernels are specialised the way Triton's JIT specialises them for contiguous tensors whose
extents are multiples of 16: the innermost stride is the constant 1, pointers and the other
strides are divisible by 16.  ``ptxas`` (bundled with Triton) is then run once more with
``-v`` on the PTX to report registers and spills, which only a loaded kernel otherwise knows.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from einsumcc_triton.launch import Compiled, import_module
from einsumcc_triton.lower import SIG_DTYPE, KernelInfo, KernelParam


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


def _signature(info: KernelInfo) -> tuple[dict[str, str], dict[str, Any], dict[Any, Any]]:
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
        elif p.kind == "interp":
            sig[p.name] = "constexpr"
            constexprs[p.name] = False
        else:
            sig[p.name] = "constexpr"
            constexprs[p.name] = p.value
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


def _compile_here(path: Path, kernels: list[KernelInfo], arch: int) -> list[KernelStats]:
    """Compile in this process, which must have imported triton in compiled (JIT) mode."""
    module = import_module(path, interpret=False)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    out: list[KernelStats] = []
    for info in kernels:
        fn = getattr(module, info.name)
        sig, constexprs, attrs = _signature(info)
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


def aot_compile_many(
    jobs: list[tuple[Compiled, int]], *, fresh: bool = False
) -> list[list[KernelStats]]:
    """Compile every kernel of each ``(compiled, arch)`` job, in child processes.

    Triton decides when it is first imported whether its library functions are interpreted,
    and a process that runs kernels in the interpreter cannot also compile them, so the
    compilation runs in a fresh Python with ``TRITON_INTERPRET=0``.  ``fresh`` bypasses
    Triton's cache (for compile times)."""
    payload = [
        {"path": str(c.path), "arch": arch, "kernels": [asdict(k) for k in c.kernels]}
        for c, arch in jobs
    ]
    env = dict(os.environ)
    env["TRITON_INTERPRET"] = "0"
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    if fresh:
        env["TRITON_ALWAYS_COMPILE"] = "1"
    # one child per core, jobs dealt round-robin
    workers = max(1, min(len(payload), os.cpu_count() or 1, 8))
    shares = [list(range(i, len(payload), workers)) for i in range(workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "einsumcc_triton.aot"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in shares
    ]
    results: list[list[KernelStats]] = [[] for _ in payload]
    errors = []
    for proc, share in zip(procs, shares, strict=True):
        out, err = proc.communicate(json.dumps([payload[i] for i in share]))
        if proc.returncode != 0:
            errors.append(err[-4000:])
            continue
        for i, job in zip(share, json.loads(out), strict=True):
            results[i] = [KernelStats(**k) for k in job]
    if errors:
        raise RuntimeError("AOT compilation failed:\n" + "\n".join(errors))
    return results


def aot_compile(compiled: Compiled, arch: int, *, fresh: bool = False) -> list[KernelStats]:
    """Compile every kernel of ``compiled`` for ``sm_<arch>`` (80, 90, ...) and report."""
    return aot_compile_many([(compiled, arch)], fresh=fresh)[0]


def _worker() -> None:
    jobs = json.load(sys.stdin)
    out = []
    for job in jobs:
        kernels = [
            KernelInfo(
                k["name"],
                k["kernel"],
                tuple(KernelParam(**p) for p in k["params"]),
                tuple(tuple(g) for g in k["grid"]),
                k["num_warps"],
            )
            for k in job["kernels"]
        ]
        stats = _compile_here(Path(job["path"]), kernels, job["arch"])
        out.append([asdict(s) for s in stats])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    _worker()
