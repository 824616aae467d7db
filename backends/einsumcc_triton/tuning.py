"""Launch choices per GPU target: ``num_warps`` and ``num_stages`` from a cost model of
registers, shared memory and occupancy, checked by ahead-of-time compilation.

The model reads a kernel's schedule (its tiles, what each loop iteration loads, what the
loop carries) and, for a target (:data:`TARGETS`: sm_80, sm_90) and a candidate
``(num_warps, num_stages)``, estimates

* **registers per thread**: a fixed cost for addresses, indices and loop state
  (:data:`BASE_REGISTERS`) plus the values each thread holds: the loop-carried tiles, the
  largest register tile (weighted 1.25: a score tile, its exponentials and their 16-bit copy
  overlap) and the operands of the products, two 16-bit values per register (half of that on
  the wgmma path, whose right-hand operands stay in shared memory).  On the wgmma path a tile
  is spread over the warp groups its rows fill (64 rows each), not over every warp;
* **shared memory**: Triton's software pipeline keeps ``num_stages`` copies of the tiles one
  iteration loads (one copy of the largest with a single stage), plus, for wgmma, the tiles
  loaded once per program that feed a product;
* **occupancy**: programs per SM, limited by registers, shared memory and warps.

A candidate is feasible when its registers fit the target's per-thread limit (else it would
spill) and its shared memory fits a block.  Among feasible ones the model prefers more
resident warps per SM (latency hiding, capped at 16), then more stages (up to 3), then the
schedule's warps.  :func:`ranked` gives every candidate best first; ``compile --report --aot``
compiles the first, and when ptxas reports a spill the next, warning with the choice that
spilled (:func:`einsumcc_triton.tile_search.aot_checked`).  ``benchmarks/triton_tuning.py`` prints
the model next to ptxas for every example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from einsumcc.ir.nodes import Access
from einsumcc.schedule import AxisRole, Kernel, Schedule
from einsumcc.schedule.contraction import contraction
from einsumcc.schedule.tiling import footprint
from einsumcc.schedule.traffic import itemsize, read_levels

BASE_REGISTERS = 48
TILE_WEIGHT = 1.25  # a score tile, its exponentials and their 16-bit copy overlap
WARPS = (4, 8)
STAGES = (1, 2, 3, 4)
DEFAULT_STAGES = 3  # Triton's default, used by the interpreter and unknown targets


@dataclass(frozen=True)
class TargetSpec:
    """What the model needs of a GPU generation (NVIDIA's tuning guides)."""

    arch: int
    name: str
    registers_per_sm: int
    max_registers_per_thread: int
    shared_per_sm: int
    shared_per_block: int
    max_warps_per_sm: int
    max_programs_per_sm: int
    wgmma: bool  # Hopper's warp-group products (64-row tiles)
    sms: int  # streaming multiprocessors of the flagship part (A100: 108, H100 SXM: 132)


TARGETS = {
    80: TargetSpec(80, "sm_80 (A100)", 65536, 255, 167936, 166912, 64, 32, False, 108),
    90: TargetSpec(90, "sm_90 (H100)", 65536, 255, 233472, 232448, 64, 32, True, 132),
}


@dataclass(frozen=True)
class KernelShape:
    """What the model reads of one kernel: values per tile, bytes per load."""

    rows: int  # the smallest tiled grid block: the rows of the kernel's products
    dots: int  # tile products (tl.dot) per iteration
    tile_values: int  # the largest register tile
    carried_values: int  # loop-carried tiles (accumulators, recurrence state)
    operand_values: int  # right-hand operands of the products, per iteration
    stage_bytes: int  # global tiles one loop iteration loads
    largest_load: int  # the largest of them
    resident_bytes: int  # global tiles loaded once per program


@dataclass(frozen=True)
class LaunchEstimate:
    target: int
    num_warps: int
    num_stages: int
    registers: int
    shared_bytes: int
    programs_per_sm: int
    spills: bool  # registers above the per-thread limit
    fits: bool  # shared memory within a block's limit

    @property
    def feasible(self) -> bool:
        return self.fits and not self.spills and self.programs_per_sm > 0

    def describe(self) -> str:
        return (
            f"{self.num_warps} warps, {self.num_stages} stages (model: {self.registers} "
            f"registers, {self.shared_bytes:,} B shared, {self.programs_per_sm} per SM)"
        )


def kernel_shape(s: Schedule, k: Kernel) -> KernelShape:
    assert s.program is not None
    prog = s.program
    roles = {a.var: (a.role, a.block) for a in k.axes}
    lanes = {a.var: a.block for a in k.axes if a.lanes}
    keys = list(dict.fromkeys([*k.before, *(n for lp in k.loops for n in lp.nodes + lp.after)]))
    nodes = [prog.node(key) for key in keys]

    def values(variables: set[str]) -> int:
        return math.prod(lanes.get(v, 1) for v in variables)

    def tile_bytes(acc: Access) -> int:
        return values(set(acc.variables)) * itemsize(prog, acc.tensor)

    carried = 0
    operands = dots = 0
    for lp in k.loops:
        for key in lp.accumulators + lp.carried:
            carried += values(set(prog.node(key).variables))
        for key in lp.nodes:
            con = contraction(prog.node(key), lanes)
            if con is not None:
                dots += 1
                operands += lanes[con.k] * lanes[con.j]
    once, per_iteration = read_levels(prog, k)
    stage = largest = 0
    for accs in per_iteration.values():
        sizes = {str(a): tile_bytes(a) for a in accs}
        stage = max(stage, sum(sizes.values()))
        largest = max(largest, max(sizes.values(), default=0))
    resident = {str(a): tile_bytes(a) for a in once}
    grid_tiles = [a.block for a in k.axes if a.role is AxisRole.GRID and a.block > 1]
    return KernelShape(
        rows=min(grid_tiles, default=1),
        dots=dots,
        tile_values=footprint(nodes, roles),
        carried_values=carried,
        operand_values=operands,
        stage_bytes=stage,
        largest_load=largest,
        resident_bytes=sum(resident.values()),
    )


def estimate(shape: KernelShape, target: TargetSpec, warps: int, stages: int) -> LaunchEstimate:
    threads = 32 * warps
    wgmma = target.wgmma and shape.rows >= 64 and warps % 4 == 0
    held = shape.carried_values + TILE_WEIGHT * shape.tile_values + shape.operand_values / 2
    holders = threads
    if shape.dots and wgmma:
        held -= shape.operand_values / 4  # right-hand operands stay in shared memory
        # a warp group multiplies 64 rows: fewer rows leave warp groups without a share
        holders = 32 * min(warps, 4 * max(1, shape.rows // 64))
    registers = BASE_REGISTERS + math.ceil(held / holders)
    limit = min(target.max_registers_per_thread, target.registers_per_sm // threads)
    loads = shape.stage_bytes * stages if stages > 1 else shape.largest_load
    shared = loads + (shape.resident_bytes if shape.dots and wgmma else 0)  # wgmma's A operand
    allocated = 8 * math.ceil(min(registers, limit) / 8)  # registers are allocated in 8s
    per_sm = min(
        target.registers_per_sm // (allocated * threads),
        target.shared_per_sm // shared if shared else target.max_programs_per_sm,
        target.max_warps_per_sm // warps,
        target.max_programs_per_sm,
    )
    return LaunchEstimate(
        target.arch,
        warps,
        stages,
        registers,
        shared,
        per_sm,
        spills=registers > limit,
        fits=shared <= target.shared_per_block,
    )


def ranked(s: Schedule, k: Kernel, arch: int) -> list[LaunchEstimate]:
    """Every candidate for kernel ``k`` on ``sm_<arch>``, best first (feasible ones first)."""
    target = TARGETS[arch]
    shape = kernel_shape(s, k)
    stages = STAGES if k.loops else (1,)
    out = [estimate(shape, target, w, st) for w in WARPS for st in stages]

    def key(e: LaunchEstimate) -> tuple[int, ...]:
        return (
            int(e.feasible),
            min(e.programs_per_sm * e.num_warps, 16),
            min(e.num_stages, 3),
            int(e.num_warps == k.num_warps),
            -e.registers,
        )

    return sorted(out, key=key, reverse=True)


def launch_choices(s: Schedule, k: Kernel) -> tuple[tuple[int, int, int], ...]:
    """``(arch, num_warps, num_stages)`` of kernel ``k`` for every target, newest first."""
    out = []
    for arch in sorted(TARGETS, reverse=True):
        best = ranked(s, k, arch)[0]
        out.append((arch, best.num_warps, best.num_stages))
    return tuple(out)
