"""Placement of every tensor (registers, loop-carried state, global memory, a view) and the
global reads, writes and per-iteration stores of every kernel."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from einsumcc.ir.nodes import Role
from einsumcc.schedule.context import ScheduleContext
from einsumcc.schedule.nodes import Node, ReadKind
from einsumcc.schedule.schedule import Kernel, Loop, Placement


@dataclass(frozen=True)
class KernelEvaluation:
    """Which kernel computes each node (first time), and what each kernel evaluates."""

    kernel_of: Mapping[str, int]
    evaluated: Sequence[set[str]]  # per kernel: the nodes it evaluates (recomputed included)


def render_access(a: object) -> str:
    from einsumcc.ir.dump import render_access
    from einsumcc.ir.nodes import Access

    assert isinstance(a, Access)
    return render_access(a)


def _dependencies(n: Node) -> list[str]:
    deps = [a.tensor for a in n.reads]
    if n.survive is not None:
        deps.append(n.survive)
    return deps


def _readers(ctx: ScheduleContext, ev: KernelEvaluation) -> dict[str, set[int]]:
    """Node -> the kernels that read it without evaluating it."""
    readers: dict[str, set[int]] = {}
    for i, evaluated in enumerate(ev.evaluated):
        for key in evaluated:
            for t in _dependencies(ctx.prog.node(key)):
                p = ctx.prog.producer(t)
                if p is None or p.key in evaluated:
                    continue
                readers.setdefault(p.key, set()).add(i)
    return readers


def placements(
    ctx: ScheduleContext, kernels: Sequence[Kernel], ev: KernelEvaluation
) -> list[Placement]:
    out: list[Placement] = []
    views = dict(ctx.prog.views)
    readers = _readers(ctx, ev)
    for tensor in ctx.c.tensors:
        if tensor.role is Role.INPUT:
            out.append(Placement(tensor.name, "input", "global memory, read by the kernels"))
            continue
        if tensor.name in views:
            out.append(
                Placement(
                    tensor.name,
                    "view",
                    f"no storage: reads become {render_access(views[tensor.name])}",
                )
            )
            continue
        p = ctx.prog.producer(tensor.name)
        if p is None:
            continue
        out.append(place(p, kernels, ev.kernel_of, readers, tensor.role is Role.OUTPUT))
    for key in ctx.prog.parts:
        p = ctx.prog.node(key)
        out.append(place(p, kernels, ev.kernel_of, readers, False))
    return out


def place(
    p: Node,
    kernels: Sequence[Kernel],
    kernel_of: Mapping[str, int],
    readers: Mapping[str, set[int]],
    output: bool,
) -> Placement:
    i = kernel_of[p.key]
    k = kernels[i]
    later = sorted(j for j in readers.get(p.key, set()) if j != i)
    loop = next((lp for lp in k.loops if p.key in lp.nodes and p.key not in lp.recomputed), None)
    local = _local(p.key, k, kernels, loop)
    where = (
        "loop-carried"
        if loop is not None and (p.key in loop.accumulators or p.key in loop.carried)
        else "registers"
    )
    if output:
        return Placement(p.key, "output", f"global memory, written by {k.name}; {local}")
    if later:
        names = ", ".join(kernels[j].name for j in later)
        return Placement(p.key, "global", f"written by {k.name}, read by {names}; {local}")
    return Placement(p.key, where, f"{local} in {k.name}")


def _local(key: str, k: Kernel, kernels: Sequence[Kernel], loop: Loop | None) -> str:
    """Where kernel ``k`` holds ``key`` while computing it, and where it is recomputed."""
    recomputed_in = [
        f"loop {lp.number}" if kk.name == k.name else f"{kk.name} loop {lp.number}"
        for kk in kernels
        for lp in kk.loops
        if key in lp.recomputed
    ]
    if loop is None:
        local = "registers (once per program)"
    elif key in loop.accumulators:
        local = f"loop-carried accumulator over {loop.var} in loop {loop.number}"
    elif key in loop.carried:
        local = f"loop-carried state of the recurrence over {loop.var} in loop {loop.number}"
    else:
        local = f"registers, one tile per iteration of loop {loop.number} over {loop.var}"
    if recomputed_in:
        local += "; recomputed in " + ", ".join(recomputed_in)
    return local


def with_reads_and_writes(
    ctx: ScheduleContext, k: Kernel, index: int, ev: KernelEvaluation, global_names: set[str]
) -> Kernel:
    """Kernel ``k`` with the global tensors it reads and writes and its loops' stores."""
    evaluated = ev.evaluated[index]
    reads: list[str] = []
    for key in evaluated:
        for t in _dependencies(ctx.prog.node(key)):
            p = ctx.prog.producer(t)
            if (p is None or p.key not in evaluated) and t not in reads:
                reads.append(t)
    outputs = {t.name for t in ctx.c.outputs}
    writes = [
        key
        for key in evaluated
        if ev.kernel_of.get(key) == index and (key in outputs or key in global_names)
    ]
    order = {t.name: i for i, t in enumerate(ctx.c.tensors)}
    for i, key in enumerate(ctx.prog.parts):
        order[key] = len(order) + i

    def sort(names: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(set(names), key=lambda x: order.get(x, 10**6)))

    loops = []
    for lp in k.loops:
        finals = tuple(
            n
            for n in lp.carried
            if n in writes
            and n not in outputs
            and n not in lp.recomputed
            and _only_final_read(ctx, n, set(evaluated))
        )
        stores = tuple(
            n
            for n in lp.nodes
            if n in writes
            and n not in lp.recomputed
            and n not in lp.accumulators
            and n not in finals
        )
        loops.append(replace(lp, stores=stores, finals=finals))
    return replace(k, reads=sort(reads), writes=sort(writes), loops=tuple(loops))


def _only_final_read(ctx: ScheduleContext, key: str, evaluated: set[str]) -> bool:
    """Every read of recurrence state ``key`` outside its kernel is of its last iterate."""
    for n in ctx.prog.nodes:
        if n.key in evaluated:
            continue
        for a in n.reads:
            if a.tensor == key and ctx.prog.read_kind(a, n) is not ReadKind.FINAL:
                return False
    return True
