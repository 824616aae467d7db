"""Ahead-of-time compilation of generated kernels for a GPU target, without a GPU.

``triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`` runs Triton's whole
pipeline (TTIR, TTGIR, LLVM IR, PTX, cubin) for a given architecture on any machine.  The
kernels are specialised the way Triton's JIT specialises them for contiguous tensors whose
extents are multiples of 16: the innermost stride is the constant 1, pointers and the other
strides are divisible by 16.  ``ptxas`` (bundled with Triton) is then run once more with
``-v`` on the PTX to report registers and spills, which only a loaded kernel otherwise knows.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from einsumcc_triton.kernel_info import SIG_DTYPE, KernelInfo, KernelParam
from einsumcc_triton.launch import Compiled, import_module

PROGRESS_DELAY = 2.0  # seconds before the progress bar appears


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
    num_stages: int = 3

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


def _compile_here(
    path: Path,
    kernels: list[KernelInfo],
    arch: int,
    done: Callable[[KernelStats], None] | None = None,
) -> list[KernelStats]:
    """Compile in this process, which must have imported triton in compiled (JIT) mode;
    ``done`` is called with each kernel's stats as soon as it is compiled."""
    module = import_module(path, interpret=False)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    out: list[KernelStats] = []
    for info in kernels:
        fn = getattr(module, info.name)
        sig, constexprs, attrs = _signature(info)
        warps, stages = info.config(arch)
        start = time.perf_counter()
        kernel = triton.compile(
            ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs),
            target=GPUTarget("cuda", arch, 32),
            options={"num_warps": warps, "num_stages": stages},
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
                num_warps=warps,
                ptx=ptx,
                num_stages=stages,
            )
        )
        if done is not None:
            done(out[-1])
    return out


def aot_compile_many(
    jobs: list[tuple[Compiled, int]], *, fresh: bool = False, quiet: bool = False
) -> list[list[KernelStats]]:
    """Compile every kernel of each ``(compiled, arch)`` job, in child processes.

    Triton decides when it is first imported whether its library functions are interpreted,
    and a process that runs kernels in the interpreter cannot also compile them, so the
    compilation runs in a fresh Python with ``TRITON_INTERPRET=0``.  ``fresh`` bypasses
    Triton's cache (for compile times).  A compilation that takes more than
    :data:`PROGRESS_DELAY` seconds shows a progress bar on stderr, one step per kernel and
    target, when stderr is a terminal and ``quiet`` is false; stdout is never written."""
    from tqdm import tqdm

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
    results: list[list[KernelStats]] = [[] for _ in payload]
    events: queue.Queue[tuple[int, dict[str, Any]] | None] = queue.Queue()
    bar = tqdm(
        total=sum(len(c.kernels) for c, _ in jobs),
        desc="AOT compile",
        unit="kernel",
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
        delay=PROGRESS_DELAY,
        leave=False,
        dynamic_ncols=True,
    )
    procs: list[subprocess.Popen[str]] = []
    logs: list[Any] = []
    with contextlib.ExitStack() as stack:
        stack.callback(_stop, procs, bar)
        for share in shares:
            # stderr to a file: nothing read from the child can block it
            log = stack.enter_context(
                tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
            )
            logs.append(log)
            proc = subprocess.Popen(
                [sys.executable, "-m", "einsumcc_triton.aot"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
            procs.append(proc)
            assert proc.stdin is not None
            # a child that died at start closed its stdin: its stderr says why, below
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(json.dumps([payload[i] for i in share]))
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        readers = [
            threading.Thread(target=_read_events, args=(proc, share, events), daemon=True)
            for proc, share in zip(procs, shares, strict=True)
        ]
        for t in readers:
            t.start()
        running = len(readers)
        start = time.monotonic()
        while running:
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                if not bar.disable and time.monotonic() - start >= PROGRESS_DELAY:
                    bar.refresh()  # the bar appears (and its clock ticks) between kernels too
                continue
            if event is None:
                running -= 1
                continue
            job, stats = event
            results[job].append(KernelStats(**stats))
            bar.set_postfix_str(f"sm_{stats['arch']} {stats['kernel']}", refresh=False)
            bar.update(1)
            late = time.monotonic() - start >= PROGRESS_DELAY
            if bar.n == bar.total and not bar.disable and late:
                bar.refresh()  # the last step shows even when it came within tqdm's interval
        errors = []
        for proc, log in zip(procs, logs, strict=True):
            if proc.wait() != 0:
                log.seek(0)
                errors.append(log.read()[-4000:])
    if errors:
        raise RuntimeError("AOT compilation failed:\n" + "\n".join(errors))
    return results


def _stop(procs: list[subprocess.Popen[str]], bar: Any) -> None:
    """Close the progress bar; kill the children still running (when interrupted)."""
    bar.close()
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _read_events(
    proc: subprocess.Popen[str],
    share: list[int],
    events: queue.Queue[tuple[int, dict[str, Any]] | None],
) -> None:
    """Forward a child's lines (``{"job": j, "stats": ...}``, one per kernel compiled, ``j``
    indexing its share of the jobs) to ``events``, then None when it closes its stdout."""
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip():
                msg = json.loads(line)
                events.put((share[msg["job"]], msg["stats"]))
    except (OSError, ValueError):  # a closed pipe or a garbled line: the exit status tells
        pass
    finally:
        events.put(None)


def aot_compile(
    compiled: Compiled, arch: int, *, fresh: bool = False, quiet: bool = False
) -> list[KernelStats]:
    """Compile every kernel of ``compiled`` for ``sm_<arch>`` (80, 90, ...) and report."""
    return aot_compile_many([(compiled, arch)], fresh=fresh, quiet=quiet)[0]


def _worker() -> None:
    """The child: jobs as JSON on stdin; one JSON line per kernel compiled on stdout."""
    jobs = json.load(sys.stdin)
    for j, job in enumerate(jobs):
        kernels = [
            KernelInfo(
                k["name"],
                k["kernel"],
                tuple(KernelParam(**p) for p in k["params"]),
                tuple(tuple(g) for g in k["grid"]),
                k["num_warps"],
                tuple(tuple(c) for c in k["configs"]),
            )
            for k in job["kernels"]
        ]

        def done(stats: KernelStats, j: int = j) -> None:
            sys.stdout.write(json.dumps({"job": j, "stats": asdict(stats)}) + "\n")
            sys.stdout.flush()

        _compile_here(Path(job["path"]), kernels, job["arch"], done)


if __name__ == "__main__":
    _worker()
