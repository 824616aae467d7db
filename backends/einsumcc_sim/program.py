"""Lowering: (cascade, mapping, architecture, dims) → a loop tree of array ops and transfers.

Each group's Einsums share the group's loops: an Einsum sits under the loops over variables
it has (or that it runs ``at_last`` of), and two Einsums share a loop instance only when every
dependence between them is pointwise (or carried) in that loop's variable; otherwise the later
one opens a new loop (a new pass).  Below the group loops each kernel has *fold loops*: over
its spatial variables in tiles of the array's rows and columns, over its chunked streamed
variables in chunks, and over its other non-streamed variables one by one.  The leaf is one
fold: an op on an array (:class:`Leaf`).

Within an epoch of a loop its children issue in the mapping's ``order`` (default: older
pipeline stages first, then the cascade's order), loads first; two ``interleave``d Einsums are
placed side by side and share their array cycle by cycle.

DRAM transfers (:class:`Xfer`) follow the tensors' placement:

* ``stream``: fetched from DRAM by every op that reads it (no on-chip copy; an operand held
  stationary in the PEs is kept while consecutive ops use the same tile);
* ``dram``: staged in the global buffer in the body of the innermost loop whose variable
  indexes it (fetched again when its tile changes); results are written back per fold;
* ``buffer``: an input staged once per iteration of the group's DRAM-level loops and kept for
  the loops inside them; an intermediate kept in the buffer; an output accumulated there and
  written back once per DRAM-level tile;
* ``registers``: in the PEs (same PEs, or through the 2D → 1D link).

Loads run one stage ahead of their consumers (double buffering).  The global buffer must hold
the double-buffered staged tiles plus the buffer-resident tensors' live tiles (with
``inplace``, a result may overwrite a tensor it reads for the last time, pointwise); when it
cannot, the fraction that does not fit, ``s = 1 - capacity / need``, of every access to the
kept tensors goes to DRAM instead (spills), and staged inputs are fetched ``1 - s`` times.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from einsumcc.diagnostics import EinError
from einsumcc.ir.bind import Bindings
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import Access
from einsumcc_sim.arch import Arch, ArrayArch
from einsumcc_sim.kernel import PEKernel
from einsumcc_sim.mapping import KernelMap
from einsumcc_sim.mapping import Mapping as SimMapping
from einsumcc_sim.model import FAITHFUL, ModelOptions
from einsumcc_sim.template import OpShape

if TYPE_CHECKING:
    from einsumcc_sim.work import Work


class BufferOverflowError(EinError):
    """The staged tiles do not fit the global buffer (a smaller tile may)."""

    @staticmethod
    def make(message: str, hint: str | None = None) -> BufferOverflowError:
        err = EinError.plain(message, hint)
        return BufferOverflowError(err.diagnostics, err.source)


@dataclass(eq=False)
class SimLoop:
    var: str | None  # None: a group's body (one trip)
    tile: int
    kind: str  # root | group | fold
    children: list[Node] = field(default_factory=list)
    stages: list[int] = field(default_factory=list)
    depth: int = 0  # number of loops above this one's body... set by finish()
    # static facts for the extrapolation
    arrays: frozenset[str] = frozenset()
    dram: bool = False
    leaves: tuple[Leaf, ...] = ()
    group: int = -1
    dram_level: bool = True  # a group loop over DRAM tiles (outside the buffer's tile)
    order: list[int] = field(default_factory=list)  # issue order of the children in an epoch
    carry: bool = False  # a software pipeline that continues into the next run of the loop
    serial: bool = False  # tile-serial: an epoch starts when the previous one is done
    last_guard: bool = False  # some op below runs only at this loop's last iteration
    pairs: bool = False  # interleaved partners issue among this loop's children
    xfer_ids: frozenset[int] = frozenset()  # the transfers below
    sub_loops: frozenset[int] = frozenset()  # ids of the loops below, this one included
    # loops merged into this one, iterated inside its own variable (a product loop)
    axes: tuple[tuple[str, int], ...] = ()

    @property
    def vars(self) -> tuple[str, ...]:
        own = (self.var,) if self.var is not None else ()
        return own + tuple(v for v, _ in self.axes)

    def add(self, node: Node, stage: int = 0) -> None:
        self.children.append(node)
        self.stages.append(stage)


@dataclass(eq=False)
class Operand:
    """How one read reaches the op."""

    kernel: str
    access: Access
    tensor: str  # after aliases
    place: str
    producer: Leaf | None = None
    kind: str = "scalar"  # inplace | down | up | scalar | input | forward
    carried: str | None = None  # loop variable read at the previous iterate
    streamed: bool = False  # read step by step as the producer's reduction streams out
    same_pes: bool = False  # a buffer result read back by the same PEs on the same wavefront


@dataclass(eq=False)
class Leaf:
    id: int
    kernels: tuple[PEKernel, ...]
    maps: tuple[KernelMap, ...]
    array: str
    group: int
    mode: str
    loops: list[SimLoop] = field(default_factory=list)  # ancestors, outer → inner
    operands: list[Operand] = field(default_factory=list)
    loads: list[Xfer] = field(default_factory=list)
    skew: tuple[int, int] = (0, 0)
    flows: dict[str, tuple[bool, bool, bool, int]] = field(default_factory=dict)
    out_kind: str = "acc"
    drains: bool = False
    stage: int = 0
    guard: tuple[str, ...] = ()  # runs only at the last iteration of these variables' loops
    partner: Leaf | None = None  # interleaved cycle by cycle with this op
    leads: bool = False  # issues first of its interleaved pair

    @property
    def name(self) -> str:
        return "|".join(k.name for k in self.kernels)

    @property
    def kernel(self) -> PEKernel:
        return self.kernels[0]


@dataclass(eq=False)
class Xfer:
    id: int
    tensor: str
    write: bool
    accesses: list[tuple[PEKernel, Access]]
    key_vars: frozenset[str]
    fraction: float = 1.0  # spills move a fraction of the tile
    producer: Leaf | None = None  # a write waits for it
    consumers: list[Leaf] = field(default_factory=list)
    loops: list[SimLoop] = field(default_factory=list)
    spill: bool = False
    always: bool = False  # fetched by every op (a streamed operand with no on-chip copy)
    guard: tuple[str, ...] = ()  # moves only at the last iteration of these loops (at_last)
    repeat: int = 1  # a spill read for every fold of the op that reads the same tile again
    # a load of a DRAM intermediate waits for the writes of the producer's iterations that
    # share its first ``after`` loops (the data it reads)
    after: int = 0


Node = SimLoop | Leaf | Xfer


@dataclass
class SimProgram:
    """A lowered mapping: the loop tree of array ops and DRAM transfers that the engine
    walks, with the facts it needs (placement, spills, buffer need)."""

    cascade: Cascade
    arch: Arch
    mapping: SimMapping
    bindings: Bindings
    root: SimLoop
    leaves: list[Leaf]
    xfers: list[Xfer]
    kernels: dict[str, PEKernel]
    placement: dict[str, str]
    spill_fraction: float
    buffer_need: int  # bytes of staging + resident tiles
    timing: str
    source_of: dict[str, str]  # alias tensor -> its source tensor
    model: ModelOptions = FAITHFUL
    staging_bytes: int = 0
    resident_bytes: int = 0
    spilled: frozenset[str] = frozenset()  # tensors whose buffer accesses spill
    registers_needed: dict[str, int] = field(default_factory=dict)
    tiles: dict[str, int] = field(default_factory=dict)  # fitted loop tiles

    def extent(self, var: str) -> int:
        return self.bindings.extents[self.cascade.var_ranks[var]]


def _walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, SimLoop):
        for c in node.children:
            yield from _walk(c)


def chain_leaf(node: Node) -> Leaf | None:
    """The leaf at the end of a chain of loops with one child each besides transfers (or the
    node itself)."""
    while isinstance(node, SimLoop):
        ops = [c for c in node.children if not isinstance(c, Xfer)]
        if len(ops) != 1:
            return None
        node = ops[0]
    return node if isinstance(node, Leaf) else None


def _first_leaf(node: Node) -> Leaf | None:
    for n in _walk(node):
        if isinstance(n, Leaf):
            return n
    return None


def lower(
    cascade: Cascade,
    arch: Arch,
    mapping: SimMapping,
    dims: Mapping[str, int],
    timing: str = "default",
    model: ModelOptions = FAITHFUL,
    work: Work | None = None,
) -> SimProgram:
    """The program a mapping makes of a cascade on an architecture at these dims (see
    :func:`einsumcc_sim.lowering.lower`); ``work`` memoizes and counts the lowerings."""
    from einsumcc_sim.lowering import lower as lower_

    return lower_(cascade, arch, mapping, dims, timing, model, work)


def op_cycles(arr: ArrayArch, k: PEKernel) -> int:
    """Cycles a PE of ``arr`` spends on one point of ``k``."""
    return arr.point_cycles(k.ops)


def _partner_steps(prog: SimProgram, leaf: Leaf, ext: Mapping[str, int]) -> int:
    """Steps of ``leaf``'s interleaved partner in the fold at ``ext``."""
    partner = leaf.partner
    assert partner is not None
    arr = prog.arch.array(partner.array)
    m = partner.maps[0]
    dim = {m.rows: arr.rows, m.cols: arr.cols}
    steps = 1
    for v in m.stream:
        n = ext[v] if v in ext else prog.extent(v)
        steps *= -(-n // dim[v]) if v in dim and v is not None else n
    return steps


def op_shape(prog: SimProgram, leaf: Leaf, ext: Mapping[str, int], paired: int = 0) -> OpShape:
    """The shape of one fold of ``leaf`` at the local extents ``ext``; ``paired`` is the
    per-step cycles of an interleaved partner sharing the PEs cycle by cycle (and the
    buffer's read ports: the two ops' edge streams share them)."""
    arch = prog.arch
    model = prog.model
    arr = arch.array(leaf.array)
    k0, m0 = leaf.kernel, leaf.maps[0]
    R, C = (arr.rows, arr.cols)
    dim = {m0.rows: R, m0.cols: C}
    tiled = {v for v in m0.stream if v in dim and v is not None}
    u_r = ext[m0.rows] if m0.rows is not None else 1
    u_c = ext[m0.cols] if m0.cols is not None else 1
    if m0.rows in tiled:
        u_r = min(u_r, R)
    if m0.cols in tiled:
        u_c = min(u_c, C)
    T = 1
    K = 0
    for k, m in zip(leaf.kernels, leaf.maps, strict=True):
        # a rank both spatial and streamed is tiled: the array takes one tile per step
        t = math.prod(-(-ext[v] // dim[v]) if v in tiled else ext[v] for v in m.stream)
        T = max(T, t)
        K += op_cycles(arr, k) or 1
    share = _partner_steps(prog, leaf, ext) if paired else 0
    K += paired if share >= T else 0  # the two alternate for all of this op's steps
    left, top, load, _ = leaf.flows["edge"]
    scalesim = prog.timing == "scalesim"
    a, b = leaf.skew
    if not model.skew:
        a = b = 0
    L = 0
    if load and model.loads:
        L = R if scalesim else u_r
    drain = 0
    if leaf.drains and model.drains:
        out_stream = math.prod(
            -(-ext[v] // dim[v]) if v in tiled else ext[v]
            for v in m0.stream
            if v in k0.output.variables
        )
        drain = u_r * out_stream
    if not scalesim and model.ports:
        word = max(1, k0.itemsize)
        rd = arch.buffer.words_per_cycle(word, write=False)
        wr = arch.buffer.words_per_cycle(word, write=True)
        per_step = (u_r if left else 0) + (u_c if top else 0)
        if paired and leaf.partner is not None:
            pl, pt, _, _ = leaf.partner.flows["edge"]
            per_step += (u_r if pl else 0) + (u_c if pt else 0)
        K = max(K, -(-per_step // rd) if per_step else 0)
        if leaf.out_kind == "down":
            K = max(K, -(-u_c // wr))
        if load and model.loads:
            L = max(L, -(-(u_r * u_c) // rd))
    exit_ = 0
    tree = arr.reduce == "tree" and leaf.out_kind in ("down", "right") and not scalesim
    if model.hop == 0 and leaf.out_kind == "down" and T == 1 and model.reduce != "hops":
        exit_ = R  # the artifact's drain: a one-step reduction leaves after R cycles
    elif tree and model.hop:
        # a tree over the reduced PEs; no wavefront along the reduced dimension
        exit_ = max(1, (max(u_r, 1) if leaf.out_kind == "down" else max(u_c, 1)) - 1).bit_length()
        if leaf.out_kind == "down":
            a = 0
        else:
            b = 0
    # the partner's steps run out first: they alternate with this op's first ``share``
    # steps, and the rest run back to back (T*K + share*paired cycles in all)
    L += share * paired if share < T else 0
    return OpShape(
        leaf.array,
        R if leaf.array == "2d" else 1,
        C,
        u_r,
        u_c,
        T,
        K,
        L,
        a,
        b,
        leaf.out_kind,
        drain,
        scalesim,
        left,
        top,
        model.hop if not scalesim else 1,
        exit_,
        tree and model.hop == 1,
    )
