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

A cascade without such a recurrence that streams a rank (three-pass attention, a long
contraction) gets its reductions over that rank split instead
(:mod:`einsumcc.schedule.split_reduce`, split-K), by the same rules with runs of at least
:data:`MIN_CHUNKS_PER_RUN` stream tiles; the split is kept only when the derived schedule runs
the partial reductions in at least half the programs asked for and moves at most a quarter
more bytes (:func:`_kept`), trying at most :data:`SPLIT_TRIALS` run counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from einsumcc.analysis.merging import merge
from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.dump import render_einsum
from einsumcc.ir.nodes import Split, Tensor
from einsumcc.schedule import AxisRole, Kernel, Schedule, derive_schedule
from einsumcc.schedule.context import REGISTER_BUDGET
from einsumcc.schedule.extents import compile_extents
from einsumcc.schedule.split_kv import split_stream
from einsumcc.schedule.split_reduce import reduction_problem, split_reductions
from einsumcc_triton.tuning import TARGETS

TARGET_PROGRAMS = 2 * max(t.sms for t in TARGETS.values())
MIN_CHUNKS_PER_RUN = 4
PARTIAL_SHARE = 0.25
SPLIT_TRIALS = 3  # run counts whose split schedule is derived before giving up


def recurrence_split(c: Cascade) -> Split | None:
    """The first split into two parts whose outer part a recurrence iterates over."""
    for s in c.splits:
        if len(s.children) == 2:
            var = c.rank(s.children[0]).var
            if any(e.iterative_variable == var for e in c.einsums):
                return s
    return None


SplitResult = tuple[Cascade, tuple[str, ...], Schedule | None]


def split_kv(
    c: Cascade,
    dims: Mapping[str, int] | None,
    tiles: Mapping[str, int] | None,
    materialize: Sequence[str],
    runs: int | None,
) -> SplitResult:
    """``c`` split into runs (``runs`` given, or chosen when None), notes, and the schedule
    of the cascade returned when the choice already derived it (None: not derived)."""
    if runs is not None and runs < 1:
        raise EinError.plain(f"--split-kv {runs}: the number of runs must be at least 1")
    if runs == 1:
        return c, (), None
    if runs is None and None in compile_extents(c, dims).values():
        return c, (), None  # the grid is known only at run time: nothing to choose from
    split = recurrence_split(c)
    if split is None:
        return _reductions(c, dims or {}, tiles, materialize, runs)
    if runs is not None:
        return _forced(c, split, dims or {}, runs)
    return _chosen(c, split, dims or {}, tiles, materialize)


def _forced(c: Cascade, split: Split, dims: Mapping[str, int], runs: int) -> SplitResult:
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
    return out, (_note(c, out, runs, None),), None


def _chosen(
    c: Cascade,
    split: Split,
    dims: Mapping[str, int],
    tiles: Mapping[str, int] | None,
    materialize: Sequence[str],
) -> SplitResult:
    outer = split.children[0]
    if outer in dims or outer in (tiles or {}):
        return c, (), None
    s = derive_schedule(c, dims, tiles=tiles, materialize=materialize)
    ext = s.extent_of
    k = _recurrence_kernel(s, c.rank(outer).var)
    chunks = ext.get(outer)
    programs = grid_programs(k) if k is not None else None
    if k is None or chunks is None or programs is None or programs >= TARGET_PROGRAMS:
        return c, (), s
    m = merge(c, split)
    if not m.proved:
        return c, (f"split-KV not applied ({programs} programs): {m.reason}",), s
    state = [c.tensor(cb.state) for cb in m.combines]
    allowed = _allowed(chunks, _runs_cap(c, state, k, ext), MIN_CHUNKS_PER_RUN)
    if not allowed:
        return c, (), s
    runs = _choose(programs, allowed)
    out = split_stream(c, m, runs)
    return out, (_note(c, out, runs, (programs, chunks)),), None


def _allowed(count: int, cap: int, minimum: int) -> list[int]:
    """Run counts from 2 to ``cap`` that divide ``count`` into runs of at least ``minimum``."""
    return [d for d in range(2, min(cap, count) + 1) if count % d == 0 and count // d >= minimum]


def _choose(programs: int, allowed: Sequence[int]) -> int:
    """The fewest runs that reach :data:`TARGET_PROGRAMS`, else the most allowed."""
    enough = [d for d in allowed if programs * d >= TARGET_PROGRAMS]
    return min(enough) if enough else max(allowed)


def _reductions(
    c: Cascade,
    dims: Mapping[str, int],
    tiles: Mapping[str, int] | None,
    materialize: Sequence[str],
    runs: int | None,
) -> SplitResult:
    """Split-K: the reductions over a streamed rank as partial reductions and a combine."""
    s = derive_schedule(c, dims, tiles=tiles, materialize=materialize)
    streamed = [k for k in s.kernels if k.loops and k.stream is not None]
    ranks = list(dict.fromkeys(k.stream for k in streamed if k.stream is not None))
    problems = {r: reduction_problem(c, r) for r in ranks}
    ok = [r for r in ranks if problems[r] is None and r not in (tiles or {})]
    if not ok:
        if runs is None:
            return c, (), s
        why = "; ".join(f"{r}: {p}" for r, p in problems.items() if p) or "no streamed rank"
        raise EinError.plain(
            f"--split-kv {runs}: {c.name} has no recurrence over chunks and no reduction over "
            f"a streamed rank to split ({why})",
            hint="--split-kv 1 compiles it as one run",
        )
    rank = ok[0]
    k = next(k for k in streamed if k.stream == rank)
    count = s.extent_of.get(rank)
    if runs is not None:
        if count is not None and count % runs:
            fits = [d for d in range(2, count + 1) if count % d == 0][:8]
            raise EinError.plain(
                f"--split-kv {runs}: {rank} = {count} does not divide into {runs} runs",
                hint="runs that divide it: " + ", ".join(map(str, fits)),
            )
        out = split_reductions(c, rank, runs)
        return out, (_reduce_note(c, out, rank, runs, None),), None
    programs = grid_programs(k)
    if count is None or programs is None or programs >= TARGET_PROGRAMS:
        return c, (), s
    tile = k.axis(c.rank(rank).var).block
    old = {t.name for t in c.tensors}
    parts = [t for t in split_reductions(c, rank, 2).tensors if t.name not in old]
    allowed = _allowed(
        count, _runs_cap(c, parts, k, s.extent_of, parts[0].dims[0].rank), MIN_CHUNKS_PER_RUN * tile
    )
    if not allowed:
        return c, (), s
    first_choice = _choose(programs, allowed)
    order = [first_choice, *sorted((d for d in allowed if d != first_choice), reverse=True)]
    before = _moved(s, dims)
    tried = []
    for runs in order[:SPLIT_TRIALS]:
        out = split_reductions(c, rank, runs)
        verdict = _kept(c, out, programs * runs, before, dims, tiles, materialize)
        if not isinstance(verdict, str):
            return out, (_reduce_note(c, out, rank, runs, programs),), verdict
        tried.append(f"{runs} runs: {verdict}")
    return c, (f"split reductions not applied: {'; '.join(tried)}",), s


def _kept(
    c: Cascade,
    out: Cascade,
    wanted: int,
    before: int | None,
    dims: Mapping[str, int],
    tiles: Mapping[str, int] | None,
    materialize: Sequence[str],
) -> Schedule | str:
    """The split cascade's schedule when it is kept, else why not.  It is kept only when it
    runs the partial reductions in at least half the ``wanted`` programs and moves at most a
    quarter more bytes than ``before``: the kernels are the scheduler's, which may hold the
    runs in registers of one program (a small run count) and fuse the combine back into the
    loop."""
    try:
        split_s = derive_schedule(out, dims, tiles=tiles, materialize=materialize)
    except EinError as e:
        return f"the schedule refuses it ({e.diagnostics[0].message})"
    old = {e.name for e in c.einsums}
    first = next(e.name for e in out.einsums if e.name not in old)
    pk = next((k for k in split_s.kernels if first in k.nodes), None)
    if pk is None:
        return f"no kernel computes {first}"
    got = grid_programs(pk) or 0
    if 2 * got < wanted:
        return f"the schedule runs {first} in {got} program{'s' if got != 1 else ''}"
    after = _moved(split_s, dims)
    if before is not None and after is not None and after > 1.25 * before:
        return f"it would move {after:,} B instead of {before:,} B"
    return split_s


def _moved(s: Schedule, dims: Mapping[str, int]) -> int | None:
    from einsumcc.schedule import traffic_for

    t = traffic_for(s, dims)
    return None if t is None else t.read + t.written


def _reduce_note(c: Cascade, out: Cascade, rank: str, runs: int, programs: int | None) -> str:
    old = {e.name for e in c.einsums}
    parts = [e for e in out.einsums if e.name not in old]
    why = ""
    if programs is not None:
        why = (
            f" ({programs} program{'s' if programs != 1 else ''} per pass -> "
            f"{programs * runs}; --split-kv 1 keeps one run)"
        )
    return (
        f"split reductions: the {len(parts)} reduction{'s' if len(parts) != 1 else ''} over "
        f"{rank} run as {runs} partial reductions{why}, each combined over the runs by its "
        f"own operator: {'; '.join(render_einsum(e) for e in parts)}"
    )


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


def _runs_cap(
    c: Cascade,
    per_run: Sequence[Tensor],
    k: Kernel,
    ext: Mapping[str, int | None],
    run_rank: str | None = None,
) -> int:
    """The most runs that keep what each run writes (``per_run``: a recurrence's final state,
    or the partial reductions, indexed by ``run_rank`` when they already have it) within
    :data:`PARTIAL_SHARE` of the inputs' bytes, written and read once, and the combine's
    register tile (a tensor's values per program of ``k``'s grid, times the runs) within
    :data:`REGISTER_BUDGET`."""
    own = frozenset({run_rank}) if run_rank else frozenset()
    inputs = sum((_size(t, ext, frozenset()) or 0) * t.dtype.itemsize for t in c.inputs)
    per = sum((_size(t, ext, own) or 0) * t.dtype.itemsize for t in per_run)
    grid = frozenset(a.rank for a in k.axes if a.role is AxisRole.GRID) | own
    widest = max((_size(t, ext, grid) or 1) for t in per_run)
    by_traffic = int(PARTIAL_SHARE * inputs // (2 * per)) if per else 0
    return min(by_traffic, REGISTER_BUDGET // max(widest, 1))
