"""Tiles for one GPU target, checked by ahead-of-time compilation (``compile --aot sm_XX``).

The schedule's default tiles come from a register budget that knows no target, and the launch
model (:mod:`einsumcc_triton.tuning`) chooses ``num_warps`` and ``num_stages``.  Neither can
tell for sure whether a tile spills: ptxas decides (the model's register estimate is off by up
to ~40-190 registers on the wgmma path at wide heads, ``benchmarks/triton_tuning.py``).  With a
target, the row tile (the tiled grid rank the products' rows walk: the queries) is searched,
largest first, and each candidate is compiled for the target:

* candidates: 128, 64, 32, 16 rows, at most the rank's extent rounded up to 16 (more rows:
  fewer re-reads of the keys per query, and Hopper's wgmma needs 64);
* each candidate's kernels are compiled at the model's launch choice, falling back through the
  model's next choices on a spill (:func:`aot_checked`);
* the first candidate whose every kernel compiles without a spill and within the target's
  shared memory per block wins; when none does, the default tiles are kept and the spill is a
  warning naming the choice that caused it.

A tile the user gave (``--tile P=..``) is not searched, only checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc.schedule import AxisRole, Schedule
from einsumcc.schedule.contraction import contraction
from einsumcc_triton.aot import KernelStats, aot_compile
from einsumcc_triton.kernel_info import KernelInfo
from einsumcc_triton.launch import Compiled, write_module
from einsumcc_triton.module import generate
from einsumcc_triton.tuning import TARGETS, ranked

AOT_RETRIES = 3  # launch choices tried after the model's first
ROW_TILES = (128, 64, 32, 16)


@dataclass(frozen=True)
class TargetCheck:
    """A schedule compiled for one target: each kernel's final stats and what spilled."""

    cascade: Cascade
    schedule: Schedule
    stats: tuple[KernelStats, ...]
    warnings: tuple[str, ...]

    def clean(self, arch: int) -> bool:
        limit = TARGETS[arch].shared_per_block if arch in TARGETS else None
        return all(
            st.spills == 0 and (limit is None or st.shared_bytes <= limit) for st in self.stats
        )


def _tiles_text(s: Schedule, i: int) -> str:
    return ", ".join(f"{a.var}={a.block}" for a in s.kernels[i].axes if a.lanes)


def aot_checked(
    cascade: Cascade, schedule: Schedule, dims: Mapping[str, int] | None, arch: int
) -> TargetCheck:
    """Compile every kernel for ``sm_<arch>`` at the model's launch choice; on a spill, the
    model's next choices (at most :data:`AOT_RETRIES` more), keeping the first without."""
    source, lowered = generate(cascade, schedule, dims)
    path = write_module(source, lowered.launcher)
    infos: list[KernelInfo] = list(lowered.kernels)
    options = [ranked(schedule, k, arch)[: AOT_RETRIES + 1] for k in schedule.kernels]
    final: dict[str, KernelStats] = {}
    warnings: list[str] = []
    for attempt in range(AOT_RETRIES + 1):
        todo = [i for i, info in enumerate(infos) if info.name not in final]
        compiled = Compiled(cascade, schedule, source, path, lowered.launcher, tuple(infos))
        stats = {st.kernel: st for st in aot_compile(compiled, arch)}
        for i in todo:
            st = stats[infos[i].name]
            nxt = options[i][attempt + 1] if attempt + 1 < len(options[i]) else None
            if not st.spills or nxt is None:
                final[infos[i].name] = st
                continue
            warnings.append(
                f"kernel {schedule.kernels[i].name} spills {st.spills} B on sm_{arch} with "
                f"tiles {_tiles_text(schedule, i)}, {st.num_warps} warps and {st.num_stages} "
                f"stages; trying {nxt.describe()}"
            )
            choice = ((arch, nxt.num_warps, nxt.num_stages),)
            infos[i] = dataclasses.replace(infos[i], configs=choice)
        if len(final) == len(infos):
            break
    out = tuple(final[info.name] for info in infos)
    for i, st in enumerate(out):
        if st.spills:
            warnings.append(
                f"kernel {schedule.kernels[i].name} spills {st.spills} B on sm_{arch} with tiles "
                f"{_tiles_text(schedule, i)}, {st.num_warps} warps and {st.num_stages} stages "
                "(no launch choice avoids it); try smaller tiles (--tile)"
            )
    return TargetCheck(cascade, schedule, out, tuple(warnings))


def row_ranks(s: Schedule) -> tuple[str, ...]:
    """Tiled grid ranks whose rows feed a tile product (``tl.dot``) in some kernel."""
    assert s.program is not None
    out: list[str] = []
    for k in s.kernels:
        lanes = {a.var: a.block for a in k.axes if a.lanes}
        rows = {a.var: a.rank for a in k.axes if a.role is AxisRole.GRID and a.block > 1}
        for key in k.nodes:
            con = contraction(s.program.node(key), lanes)
            if con is not None and con.i in rows and rows[con.i] not in out:
                out.append(rows[con.i])
    return tuple(out)


def _candidates(s: Schedule, ranks: Sequence[str]) -> list[int]:
    ext = s.extent_of
    largest = max(ROW_TILES)
    for r in ranks:
        e = ext.get(r)
        if e is not None:
            largest = min(largest, max(16, 1 << max(0, (e - 1).bit_length())))
    return [t for t in ROW_TILES if t <= largest]


def search_tiles(
    cascade: Cascade,
    dims: Mapping[str, int] | None,
    arch: int,
    *,
    tiles: Mapping[str, int] | None = None,
    materialize: Sequence[str] = (),
    split_kv: int | None = None,
) -> tuple[TargetCheck, tuple[str, ...]]:
    """The largest row tile whose kernels compile for ``sm_<arch>`` without a spill; notes."""
    from einsumcc_triton import compile_schedule

    def build(extra: Mapping[str, int]) -> tuple[Cascade, Schedule]:
        return compile_schedule(
            cascade,
            dims,
            tiles={**(tiles or {}), **extra},
            materialize=materialize,
            split_kv=split_kv,
        )

    c, s = build({})
    ranks = tuple(r for r in row_ranks(s) if r not in (tiles or {}))
    if not ranks:
        return aot_checked(c, s, dims, arch), ()
    default = {a.rank: a.block for k in s.kernels for a in k.axes if a.rank in ranks}
    tried: list[str] = []
    kept: TargetCheck | None = None
    for rows in _candidates(s, ranks):
        extra = dict.fromkeys(ranks, rows)
        if extra == default:
            cand_c, cand_s = c, s
        else:
            try:
                cand_c, cand_s = build(extra)
            except EinError as e:
                tried.append(f"{rows} rows: {e.diagnostics[0].message}")
                continue
        checked = aot_checked(cand_c, cand_s, dims, arch)
        if extra == default:
            kept = checked
        if checked.clean(arch):
            chosen = ", ".join(f"{r}={rows}" for r in ranks)
            was = ", ".join(f"{r}={default[r]}" for r in ranks)
            note = f"tiles for sm_{arch} checked by ptxas: {chosen} (schedule default {was})"
            if tried:
                note += f"; larger tiles spill or exceed shared memory: {'; '.join(tried)}"
            return checked, (note,)
        worst = max(checked.stats, key=lambda st: (st.spills, st.shared_bytes))
        tried.append(
            f"{rows} rows: {worst.spills} B spilled, {worst.shared_bytes:,} B shared "
            f"({worst.num_warps} warps, {worst.num_stages} stages)"
        )
    keep = kept or aot_checked(c, s, dims, arch)
    return keep, (f"no row tile compiles for sm_{arch} without a spill: {'; '.join(tried)}",)
