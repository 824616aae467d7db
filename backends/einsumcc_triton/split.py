"""When to run a recurrence as split-KV, and into how many runs.

The grid of a one-pass kernel has one program per query tile (times batch-like ranks).  With
few queries (decode, speculative decoding) that is a handful of programs on a GPU of 108-132
SMs, each streaming every key.  Split-KV (:mod:`einsumcc.schedule.split_kv`) cuts the chunks
into ``C`` runs, one program each, and merges the runs' final states in a second kernel.

The choice, at compile time when ``--dims`` bind the grid and the chunk count:

* only when the recurrence's kernel has fewer than :data:`TARGET_PROGRAMS` programs (two
  waves of the largest target's SMs) and the merge is proved
  (:func:`einsumcc.analysis.merging.merge`);
* ``C`` divides the chunk count and leaves each run at least :data:`MIN_CHUNKS_PER_RUN`
  chunks;
* the runs' final states, written once and read once by the merge, stay within
  :data:`PARTIAL_SHARE` of the inputs' bytes (so global traffic stays within 1.25x of the
  compulsory), and the merge kernel's largest register tile (a state's values per query,
  times ``C``) within :data:`REGISTER_BUDGET`;
* the smallest such ``C`` that reaches the target, else the largest allowed.

``--split-kv N`` forces ``N`` runs (an error when the merge is not proved), ``--split-kv 1``
turns splitting off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from einsumcc.analysis.merging import Merge, merge
from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.dump import render_einsum
from einsumcc.ir.nodes import Split, Tensor
from einsumcc.schedule import AxisRole, Kernel, Schedule, derive_schedule
from einsumcc.schedule.context import REGISTER_BUDGET
from einsumcc.schedule.extents import compile_extents
from einsumcc.schedule.split_kv import split_stream
from einsumcc_triton.tuning import TARGETS

TARGET_PROGRAMS = 2 * max(t.sms for t in TARGETS.values())
MIN_CHUNKS_PER_RUN = 4
PARTIAL_SHARE = 0.25


def recurrence_split(c: Cascade) -> Split | None:
    """The first split into two parts whose outer part a recurrence iterates over."""
    for s in c.splits:
        if len(s.children) == 2:
            var = c.rank(s.children[0]).var
            if any(e.iterative_variable == var for e in c.einsums):
                return s
    return None


def split_kv(
    c: Cascade,
    dims: Mapping[str, int] | None,
    tiles: Mapping[str, int] | None,
    materialize: Sequence[str],
    runs: int | None,
) -> tuple[Cascade, tuple[str, ...]]:
    """``c`` split into runs (``runs`` given, or chosen when None), and notes."""
    if runs is not None and runs < 1:
        raise EinError.plain(f"--split-kv {runs}: the number of runs must be at least 1")
    if runs == 1:
        return c, ()
    split = recurrence_split(c)
    if split is None:
        if runs is None:
            return c, ()
        raise EinError.plain(
            f"--split-kv {runs}: {c.name} has no recurrence over chunks to split",
            hint="split-KV runs a recurrence over the outer part of a split (split M -> M1, M0)",
        )
    if runs is not None:
        return _forced(c, split, dims or {}, runs)
    return _chosen(c, split, dims or {}, tiles, materialize)


def _forced(
    c: Cascade, split: Split, dims: Mapping[str, int], runs: int
) -> tuple[Cascade, tuple[str, ...]]:
    m = merge(c, split)
    if not m.proved:
        raise EinError.plain(
            f"--split-kv {runs}: the runs of {c.name}'s recurrence over {split.children[0]} "
            f"cannot be merged: {m.reason}",
            hint="--split-kv 1 compiles the recurrence as one run",
        )
    outer = split.children[0]
    if outer in dims:
        raise EinError.plain(
            f"--split-kv {runs} with --dims {outer}={dims[outer]}: {outer} becomes the chunks "
            "per run",
            hint=f"give the extent of {split.parent} instead",
        )
    chunks = compile_extents(c, dims).get(outer)
    if chunks is not None and chunks % runs:
        fits = [d for d in range(2, chunks + 1) if chunks % d == 0][:8]
        raise EinError.plain(
            f"--split-kv {runs}: {chunks} chunks of {split.children[1]} along {outer} do not "
            f"divide into {runs} runs",
            hint="runs that divide them: " + ", ".join(map(str, fits)),
        )
    out = split_stream(c, m, runs)
    return out, (_note(c, out, runs, None),)


def _chosen(
    c: Cascade,
    split: Split,
    dims: Mapping[str, int],
    tiles: Mapping[str, int] | None,
    materialize: Sequence[str],
) -> tuple[Cascade, tuple[str, ...]]:
    outer = split.children[0]
    if outer in dims or outer in (tiles or {}):
        return c, ()
    s = derive_schedule(c, dims, tiles=tiles, materialize=materialize)
    ext = s.extent_of
    k = _recurrence_kernel(s, c.rank(outer).var)
    chunks = ext.get(outer)
    programs = grid_programs(k) if k is not None else None
    if k is None or chunks is None or programs is None:
        return c, ()
    if programs >= TARGET_PROGRAMS:
        return c, ()
    m = merge(c, split)
    if not m.proved:
        return c, (f"split-KV not applied ({programs} programs): {m.reason}",)
    cap = _cap(c, m, k, ext)
    allowed = [
        d
        for d in range(2, min(cap, chunks) + 1)
        if chunks % d == 0 and chunks // d >= MIN_CHUNKS_PER_RUN
    ]
    if not allowed:
        return c, ()
    enough = [d for d in allowed if programs * d >= TARGET_PROGRAMS]
    runs = min(enough) if enough else max(allowed)
    out = split_stream(c, m, runs)
    return out, (_note(c, out, runs, (programs, chunks)),)


def _note(c: Cascade, out: Cascade, runs: int, chose: tuple[int, int] | None) -> str:
    """What was split and how the runs merge (the derived Einsums)."""
    split = recurrence_split(c)
    assert split is not None
    why = ""
    if chose is not None:
        programs, chunks = chose
        why = (
            f" ({programs} program{'s' if programs != 1 else ''} -> {programs * runs}, "
            f"{chunks // runs} chunks per run; --split-kv 1 keeps one run)"
        )
    old = {e.name for e in c.einsums}
    merged = "; ".join(render_einsum(e) for e in out.einsums if e.name not in old)
    return (
        f"split-KV: the recurrence over {split.children[0]} runs as {runs} independent runs"
        f"{why}, merged by {merged} (derived from the recurrence, proved for runs of 1-3 "
        "splits of 1-2 chunks)"
    )


def _recurrence_kernel(s: Schedule, var: str) -> Kernel | None:
    for k in s.kernels:
        if any(loop.var == var and loop.carried for loop in k.loops):
            return k
    return None


def grid_programs(k: Kernel) -> int | None:
    n = 1
    for a in k.axes:
        if a.role is AxisRole.GRID:
            if a.extent is None:
                return None
            n *= math.ceil(a.extent / a.block)
    return n


def _size(t: Tensor, ext: Mapping[str, int | None], skip: frozenset[str]) -> int | None:
    n = 1
    for d in t.dims:
        if d.iterative or d.rank in skip:
            continue
        e = ext.get(d.rank)
        if e is None:
            return None
        n *= e
    return n


def _cap(c: Cascade, m: Merge, k: Kernel, ext: Mapping[str, int | None]) -> int:
    """The most runs the traffic and the merge kernel's registers allow."""
    state = [c.tensor(cb.state) for cb in m.combines]
    inputs = 0
    for t in c.inputs:
        n = _size(t, ext, frozenset())
        if n is None:
            return 0
        inputs += n * t.dtype.itemsize
    per_run = 0
    for t in state:
        n = _size(t, ext, frozenset())
        if n is None:
            return 0
        per_run += n * t.dtype.itemsize
    grid = frozenset(a.rank for a in k.axes if a.role is AxisRole.GRID)
    widest = max((_size(t, ext, grid) or 1) for t in state)
    by_traffic = int(PARTIAL_SHARE * inputs // (2 * per_run)) if per_run else 0
    return min(by_traffic, REGISTER_BUDGET // max(widest, 1))
