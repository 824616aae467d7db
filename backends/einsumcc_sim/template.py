"""The cycle-level timing of one array op (one fold of one or more interleaved kernels).

An op runs ``T`` steps of ``K`` cycles on the PEs ``i < u_r, j < u_c`` of an ``R x C`` array
(the 1D array is ``1 x C``).  Operands streamed from the left edge flow right one PE per cycle,
operands from the top edge flow down, partial sums flow down (a reduction over the rows) or
right (over the columns); a *stationary* operand is first shifted down into the PEs (``L``
cycles).  So PE ``(i, j)`` fires step ``s`` at ``L + a*i + b*j + s*K`` where ``a`` (``b``) is 1
when anything flows down (right).  Results leave through the bottom edge: reduced sums of
column ``j`` as they fall out of the last row, accumulated outputs by a drain of ``D`` values
per column once the column is done.

Two implementations give the same numbers:

* :class:`AffineTemplate` keeps each quantity as an affine function of ``(i, j)`` on a box, and
  answers max-differences at the box's corners (the fast mode);
* :class:`ExactTemplate` materializes the firing cycle of every PE at every step from the edge
  injections, by max-plus propagation through the links, queues the drain at each bottom
  port cycle by cycle, and reads every quantity off those arrays (the ``--exact`` mode, and
  the streams the functional mode consumes).

Relative to the op's start ``S``: ``first(i, j)``/``end(i, j)`` are a PE's busy window,
``bottom`` the window of column ``j``'s bottom port, ``ready(j)`` when column ``j``'s last
result has left the array, ``done`` the op's completion.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from einsumcc.diagnostics import EinError


@dataclass(frozen=True)
class OpShape:
    array: str  # "2d" | "1d"
    R: int
    C: int
    u_r: int
    u_c: int
    T: int  # steps
    K: int  # cycles per step
    L: int  # stationary load cycles
    a: int  # 1: the wavefront moves down a row per cycle
    b: int  # 1: ... right a column per cycle
    out: str  # acc (stays in the PEs or drains) | down (sums fall out of the bottom) | right
    drain: int  # values per column drained through the bottom port after compute (acc)
    scalesim: bool = False  # SCALE-Sim accounting: folds padded to R x C, done at the last MAC
    left: bool = False  # an operand streams from the left edge
    top: bool = False  # an operand streams from the top edge
    hop: int = 1  # cycles per PE hop; 0: operands and partial sums cross the array at once
    exit: int = 0  # hop == 0 or tree: cycles for a reduction's results to leave the array
    tree: bool = False  # the reduction meets in a tree (exit cycles), not along a chain


@dataclass(frozen=True)
class Aff:
    """``c0 + ci*i + cj*j`` on the box ``0 <= i < ni, 0 <= j < nj``."""

    c0: int
    ci: int
    cj: int
    ni: int
    nj: int


def _aff_max(x: Aff) -> int:
    return x.c0 + max(0, x.ci * (x.ni - 1)) + max(0, x.cj * (x.nj - 1))


def aff_maxdiff(p: Aff, q: Aff, shift_j: int = 0) -> int:
    """max over the common box of ``p(i, j) - q(i, j)``."""
    ni, nj = min(p.ni, q.ni), min(p.nj, q.nj)
    if ni <= 0 or nj <= 0:
        return -(1 << 62)
    return _aff_max(Aff(p.c0 - q.c0, p.ci - q.ci, p.cj - q.cj, ni, nj))


class AffineTemplate:
    """Closed-form timing of an op (fast mode)."""

    def __init__(self, s: OpShape) -> None:
        self.s = s
        ur, uc = (s.R, s.C) if s.scalesim else (s.u_r, s.u_c)
        self.first = Aff(s.L, s.a, s.b, ur, uc)
        self.end = Aff(s.L + s.T * s.K, s.a, s.b, ur, uc)
        self.compute_end = _aff_max(self.end)
        done = self.compute_end
        self.bottom: tuple[Aff, Aff] | None = None
        self.ready = Aff(self.compute_end, 0, 0, 1, uc)  # column j's results available
        self.out_first: Aff | None = None  # column j's first result (a streamed reduction)
        if s.scalesim:
            pass
        elif (s.hop == 0 or s.tree) and s.out in ("down", "right"):
            # no hop latency: the results leave ``exit`` cycles after the last step
            # (ports are not modeled there: no bottom-port windows)
            hi = s.L + s.T * s.K + s.exit
            self.out_first = Aff(s.L + s.K + s.exit, 0, 0, 1, uc)
            self.ready = Aff(hi, 0, 0, 1, uc)
            done = hi
        elif s.out == "down":
            lo = s.L + (s.R - 1) + s.K
            hi = s.L + (s.R - 1) + s.T * s.K + 1
            self.bottom = (Aff(lo, 0, s.b, 1, uc), Aff(hi, 0, s.b, 1, uc))
            self.ready = Aff(hi, 0, s.b, 1, uc)
            self.out_first = Aff(lo + 1, 0, s.b, 1, uc)
            done = _aff_max(self.ready)
        elif s.out == "right":
            done = s.L + s.a * (ur - 1) + (s.C - 1) + s.T * s.K + 1
            self.ready = Aff(done, 0, 0, 1, uc)
        elif s.drain > 0:
            lo = s.L + s.a * (ur - 1) + s.T * s.K + s.R - ur + 1
            self.bottom = (Aff(lo, 0, s.b, 1, uc), Aff(lo + s.drain, 0, s.b, 1, uc))
            self.ready = Aff(lo + s.drain, 0, s.b, 1, uc)
            done = _aff_max(self.ready)
        else:  # results stay in the PEs
            self.ready = Aff(s.L + s.T * s.K, s.a, s.b, ur, uc)
        self.done = done

    # the quantities the engine combines
    def gap_after(self, other: AffineTemplate) -> int:
        """Cycles after this op's start at which ``other`` may start on the same array."""
        if self.s.scalesim or other.s.scalesim:
            return self.compute_end
        d = aff_maxdiff(self.end, other.first)
        if self.bottom is not None and other.bottom is not None:
            d = max(d, aff_maxdiff(self.bottom[1], other.bottom[0]))
        if self.s.L and other.s.L:
            d = max(d, self.s.L)
        return d

    def need_inplace(self, producer: AffineTemplate) -> int:
        """``S_q - S_p`` needed for this op to read, in its PEs, what ``producer`` left there."""
        return aff_maxdiff(producer.ready, self.first)

    def need_from_columns(self, ready: Aff, link: int) -> int:
        """Column j's values, available at ``ready(j) + link``, feed this op's column/lane j."""
        mine = Aff(self.first.c0, 0, self.first.cj, 1, self.first.nj)
        return aff_maxdiff(Aff(ready.c0 + link, 0, ready.cj, 1, ready.nj), mine)

    def need_streamed(self, producer: AffineTemplate, link: int) -> int:
        """This op's step s reads the producer's step-s result from the bottom of column j
        (a streamed reduction consumed as it leaves the array)."""
        p = producer
        if p.out_first is None or p.s.T != self.s.T:
            return self.need_from_columns(p.ready, link)
        lag = max(0, (self.s.T - 1) * (p.s.K - self.s.K))
        return self.need_from_columns(p.out_first, link) + lag

    def busy_profile(self) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Grid:
    """Values of a quantity per PE (or per column: one row)."""

    a: np.ndarray


def grid_maxdiff(p: np.ndarray, q: np.ndarray) -> int:
    ni, nj = min(p.shape[0], q.shape[0]), min(p.shape[1], q.shape[1])
    if ni <= 0 or nj <= 0:
        return -(1 << 62)
    return int(np.max(p[:ni, :nj] - q[:ni, :nj]))


class ExactTemplate:
    """Cycle-level timing of an op, materialized (``--exact``).

    ``fire[i, j, s]`` is built from the edge injections: the left port of row ``i`` injects
    step ``s`` at ``L + a*i + s*K`` (the skew the compiler puts on the feed), the top port of
    column ``j`` at ``L + b*j + s*K``; a value moves one PE per cycle; a PE fires when its
    operands are there, its previous step is done and, on a reduction chain, its neighbour's
    partial sum has arrived.  Drains are queued at each bottom port, one value per cycle.
    """

    def __init__(self, s: OpShape) -> None:
        if s.tree:
            raise EinError.plain(
                "--exact models reductions that move one PE per cycle along a chain; this "
                'architecture reduces across the PEs in a tree (reduce = "tree")',
                hint="drop --exact (the fast mode models the tree), or simulate the chain "
                "with --set array1d.reduce=chain (and array2d.reduce)",
            )
        if s.hop != 1:
            raise ValueError(
                "the exact templates model one hop per cycle along chains (the faithful model)"
            )
        self.s = s
        ur, uc = s.u_r, s.u_c
        self.fire = exact_fire(s, ur, uc)
        first = self.fire[:, :, 0].astype(np.int64)
        end = self.fire[:, :, -1].astype(np.int64) + s.K
        self.first, self.end = first, end
        self.compute_end = int(end.max())
        if s.scalesim:
            # SCALE-Sim pads a partial fold to the whole array: the wave still crosses the
            # idle rows and columns before the fold ends
            self.compute_end += s.a * (s.R - ur) + s.b * (s.C - uc)
        self.bottom: tuple[np.ndarray, np.ndarray] | None = None
        self.exits: np.ndarray | None = None
        done = self.compute_end
        self.ready = np.full((1, uc), self.compute_end, dtype=np.int64)
        if s.scalesim:
            pass
        elif s.out == "down":
            # the last used row's sums, forwarded through the unused rows below it
            exits = self.fire[ur - 1, :, :].astype(np.int64) + s.K + (s.R - ur)
            self.exits = exits + 1  # [j, s]: column j's step-s sum has left the array
            self.bottom = (exits[None, :, 0], exits[None, :, -1] + 1)
            self.ready = exits[None, :, -1] + 1
            done = int(self.ready.max())
        elif s.out == "right":
            exits = self.fire[:, uc - 1, :].astype(np.int64) + s.K + (s.C - uc)
            done = int(exits.max()) + 1
            self.ready = np.full((1, uc), done, dtype=np.int64)
        elif s.drain > 0:
            per_row = max(1, s.drain // ur) if s.drain >= ur else 1
            # value of row i reaches the bottom edge R - i cycles after the PE is done
            arrive = end + (s.R - np.arange(ur))[:, None]  # (ur, uc)
            rows = np.repeat(arrive, per_row, axis=0)[: max(s.drain, 1)]
            rows = np.sort(rows, axis=0)
            q = np.arange(rows.shape[0])[:, None]
            exits = q + np.maximum.accumulate(rows - q, axis=0)  # one value per cycle per port
            self.bottom = (exits[None, 0, :], exits[None, -1, :] + 1)
            self.ready = exits[None, -1, :] + 1
            done = int(self.ready.max())
        else:
            self.ready = end
        self.done = done

    def gap_after(self, other: ExactTemplate) -> int:
        if self.s.scalesim or other.s.scalesim:
            return self.compute_end
        d = grid_maxdiff(self.end, other.first)
        if self.bottom is not None and other.bottom is not None:
            d = max(d, grid_maxdiff(self.bottom[1], other.bottom[0]))
        if self.s.L and other.s.L:
            d = max(d, self.s.L)
        return d

    def need_inplace(self, producer: ExactTemplate) -> int:
        return grid_maxdiff(producer.ready, self.first)

    def need_from_columns(self, ready: np.ndarray, link: int) -> int:
        return grid_maxdiff(ready + link, self.first[:1, :])

    def need_streamed(self, producer: ExactTemplate, link: int) -> int:
        p = producer
        if p.exits is None or p.s.T != self.s.T:
            return self.need_from_columns(p.ready, link)
        mine = self.fire[:1, :, :].astype(np.int64)
        n = min(mine.shape[1], p.exits.shape[0])
        return int(np.max(p.exits[:n, :].T[None, :, :] + link - mine[:, :n, :].transpose(0, 2, 1)))

    @functools.cached_property
    def profile(self) -> np.ndarray:
        return self.busy_profile()

    def busy_profile(self) -> np.ndarray:
        """Busy PEs per cycle from the op's start (a PE is busy K cycles per step)."""
        s = self.s
        first = self.fire[:, :, 0]
        if np.array_equal(self.fire, first[:, :, None] + np.arange(s.T, dtype=np.int32) * s.K):
            # every PE fires every K cycles: a histogram of first firings, repeated T times
            hist = np.bincount(first.ravel(), minlength=self.done + 1)
            comb = np.zeros((s.T - 1) * s.K + 1, dtype=np.int64)
            comb[:: s.K] = 1
            prof = np.convolve(hist, comb)[: self.done + 1] if s.T > 1 else hist
        else:
            prof = np.bincount(self.fire.ravel(order="K"), minlength=self.done + 1)
        if self.s.K > 1:  # busy K cycles from each firing
            prof = np.convolve(prof, np.ones(self.s.K, dtype=np.int64))[
                : max(len(prof), self.done + 1)
            ]
        return prof


def exact_fire(s: OpShape, ur: int, uc: int) -> np.ndarray:
    """Firing cycle of every used PE at every step, by propagation from the edges.

    Built step-major (``[s, i, j]``, int32) so that every scan runs over contiguous rows, and
    returned as an ``[i, j, s]`` view.
    """
    st = (np.arange(s.T, dtype=np.int32) * s.K)[:, None, None]
    i = np.arange(ur, dtype=np.int32)[None, :, None]
    j = np.arange(uc, dtype=np.int32)[None, None, :]
    # the start token of the op's program enters at PE (0, 0) once the stationary operands are
    # loaded and ripples down (a) and right (b), one PE per cycle
    token = s.L + np.cumsum(np.full(ur, s.a, dtype=np.int32))[None, :, None] - s.a
    token = token + (np.cumsum(np.full(uc, s.b, dtype=np.int32))[None, None, :] - s.b)
    fire = np.empty((s.T, ur, uc), dtype=np.int32)
    np.add(token, st, out=fire)
    tmp = np.empty_like(fire)
    if s.left:  # injected at row i's port, then one column per cycle
        np.add((s.L + s.a * i) + j, st, out=tmp)
        np.maximum(fire, tmp, out=fire)
    if s.top:
        np.add((s.L + s.b * j) + i, st, out=tmp)
        np.maximum(fire, tmp, out=fire)
    del tmp
    if s.out == "down" and ur > 1:  # the partial sum from the PE above, one cycle later
        fire -= i
        _prefix_max(fire, 1)
        fire += i
    if s.out == "right" and uc > 1:
        fire -= j
        _prefix_max(fire, 2)
        fire += j
    if s.T > 1:  # a PE runs its steps one after another
        fire -= st
        _prefix_max(fire, 0)
        fire += st
    return np.moveaxis(fire, 0, 2)


def _prefix_max(x: np.ndarray, axis: int) -> None:
    """In-place running maximum along ``axis``: a doubling scan (log2(n) vectorized passes),
    skipped when the values already never decrease (then it is the identity)."""
    n = x.shape[axis]
    lo = [slice(None)] * x.ndim
    hi = [slice(None)] * x.ndim
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    if np.all(x[tuple(hi)] >= x[tuple(lo)]):
        return
    k = 1
    while k < n:
        a = [slice(None)] * x.ndim
        b = [slice(None)] * x.ndim
        a[axis], b[axis] = slice(k, None), slice(None, n - k)
        np.maximum(x[tuple(a)], x[tuple(b)].copy(), out=x[tuple(a)])
        k *= 2


@functools.lru_cache(maxsize=4096)
def affine(shape: OpShape) -> AffineTemplate:
    return AffineTemplate(shape)


@functools.lru_cache(maxsize=256)
def exact(shape: OpShape) -> ExactTemplate:
    return ExactTemplate(shape)


Template = AffineTemplate | ExactTemplate
