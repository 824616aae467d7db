"""Lowering: (cascade, mapping, architecture, dims) → a loop tree of array ops and transfers.

Each group's Einsums share the group's loops: an Einsum sits under the loops over variables
it has, and two Einsums share a loop instance only when every dependence between them is
pointwise (or carried) in that loop's variable; otherwise the later one opens a new loop (a
new pass).  Below the group loops each kernel has *fold loops*: over its spatial variables in
tiles of the array's rows and columns and over its other non-streamed variables one by one.
The leaf is one fold: an op on an array (:class:`Leaf`).

DRAM transfers (:class:`Xfer`) are placed from the tensors' placement: a DRAM tensor is loaded
in the body of the innermost loop whose variable indexes it (so it is fetched again only when
its tile changes), one stage ahead of its consumers (double buffering); DRAM outputs are
written after the fold or, when a fold loop runs over a reduced variable, after the leaf's
folds.  Buffer-resident tensors that do not fit spill a fraction of their traffic to DRAM.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import sympy

from einsumcc.diagnostics import EinError
from einsumcc.ir.bind import Bindings, bind, index_coefficients
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import Access, var_symbol
from einsumcc_sim.arch import Arch, ArrayArch
from einsumcc_sim.kernel import Kernel, kernels
from einsumcc_sim.mapping import Group, KernelMap
from einsumcc_sim.mapping import Mapping as SimMapping
from einsumcc_sim.template import OpShape


@dataclass(eq=False)
class Loop:
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
    kind: str = "scalar"  # inplace | down | up | scalar | input
    carried: str | None = None  # loop variable read at the previous iterate


@dataclass(eq=False)
class Leaf:
    id: int
    kernels: tuple[Kernel, ...]
    maps: tuple[KernelMap, ...]
    array: str
    group: int
    mode: str
    loops: list[Loop] = field(default_factory=list)  # ancestors, outer → inner
    operands: list[Operand] = field(default_factory=list)
    loads: list[Xfer] = field(default_factory=list)
    skew: tuple[int, int] = (0, 0)
    flows: dict[str, tuple[bool, bool, bool, int]] = field(default_factory=dict)
    out_kind: str = "acc"
    drains: bool = False

    @property
    def name(self) -> str:
        return "|".join(k.name for k in self.kernels)


@dataclass(eq=False)
class Xfer:
    id: int
    tensor: str
    write: bool
    accesses: list[tuple[Kernel, Access]]
    key_vars: frozenset[str]
    fraction: float = 1.0  # spills move a fraction of the tile
    producer: Leaf | None = None  # a write waits for it
    consumers: list[Leaf] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)
    spill: bool = False


Node = Loop | Leaf | Xfer


@dataclass
class Program:
    cascade: Cascade
    arch: Arch
    mapping: SimMapping
    bindings: Bindings
    root: Loop
    leaves: list[Leaf]
    xfers: list[Xfer]
    kernels: dict[str, Kernel]
    placement: dict[str, str]
    spill_fraction: float
    buffer_need: int  # bytes of staging + resident tiles
    timing: str
    source_of: dict[str, str]  # alias tensor -> its source tensor

    def extent(self, var: str) -> int:
        return self.bindings.extents[self.cascade.var_ranks[var]]


def _walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, Loop):
        for c in node.children:
            yield from _walk(c)


class _Lowering:
    def __init__(
        self,
        cascade: Cascade,
        arch: Arch,
        mapping: SimMapping,
        dims: Mapping[str, int],
        timing: str,
    ) -> None:
        self.c = cascade
        self.arch = arch
        self.m = mapping
        self.b = bind(cascade, dims)
        self.timing = timing
        self.ks = {k.name: k for k in kernels(cascade)}
        self.place = dict(mapping.placement)
        self.source: dict[str, str] = {}
        for k in self.ks.values():
            if k.alias and isinstance(k.body, Access):
                self.source[k.name] = k.body.tensor
        self.leaves: list[Leaf] = []
        self.xfers: list[Xfer] = []
        self.producer_leaf: dict[str, Leaf] = {}

    def src(self, tensor: str) -> str:
        while tensor in self.source:
            tensor = self.source[tensor]
        return tensor

    def ext(self, var: str) -> int:
        return self.b.extents[self.c.var_ranks[var]]

    # ------------------------------------------------------------ validation
    def check_map(self, k: Kernel, m: KernelMap) -> None:
        where = f"mapping of {k.name}"
        arr = self.arch.array(m.array) if m.array != "none" else None
        if arr is None:
            return
        missing = [o for o in k.op_names if arr.op(o) is None]
        if missing:
            raise EinError.plain(
                f"{where}: the {m.array} array of {self.arch.name} has no '{missing[0]}' op "
                f"({k.origin} needs {', '.join(k.op_names)})",
                hint="map it to the other array, or add the op to the architecture file",
            )
        if m.rows is not None and m.rows == m.cols:
            raise EinError.plain(
                f"{where}: rank {m.rows.upper()} is spatial on two array dimensions",
                hint="map one rank to the rows and another to the columns",
            )
        for role, v in (("rows", m.rows), ("cols", m.cols)):
            if v is not None and v not in k.space:
                raise EinError.plain(
                    f"{where}: {role} = {v.upper()}, which {k.name} does not iterate"
                )
        for v in m.stream:
            if v not in k.space:
                raise EinError.plain(f"{where}: stream {v.upper()} is not a rank of {k.name}")
            if v in (m.rows, m.cols):
                raise EinError.plain(
                    f"{where}: rank {v.upper()} is both spatial and streamed",
                    hint="a rank is spatial on one array dimension or temporal, not both",
                )
        if (
            m.rows is not None
            and m.rows in k.reduced
            and m.cols is not None
            and m.cols in k.reduced
        ):
            raise EinError.plain(
                f"{where}: both array dimensions reduce; keep one output rank spatial"
            )

    # ------------------------------------------------------------ tree
    def pointwise(self, consumer: Kernel, producer_tensor: str, var: str) -> bool:
        """Every read of ``producer_tensor`` by ``consumer`` is at the same ``var`` (or the
        previous iterate of a recurrence over it)."""
        p = self.ks.get(producer_tensor)
        if p is None:
            return True
        pos = [i for i, ix in enumerate(p.output.indices) if var_symbol(var) in ix.free_symbols]
        for acc in consumer.reads:
            if self.src(acc.tensor) != self.src(producer_tensor) and acc.tensor != producer_tensor:
                continue
            if acc.tensor != producer_tensor:
                return False  # through an alias: no pointwise guarantee
            if not pos:
                return False
            for i in pos:
                mine, theirs = p.output.indices[i], acc.indices[i]
                if mine != theirs and sympy.expand(mine - theirs) != 1:
                    return False
        return True

    def build(self) -> Loop:
        root = Loop(None, 1, "root")
        for gi, g in enumerate(self.m.groups):
            body = Loop(None, 1, "group")
            root.add(body)
            self.build_group(gi, g, body)
        return root

    def group_kernels(self, g: Group) -> list[list[Kernel]]:
        """Kernels of the group in order, interleaved ones fused into one entry."""
        fused: dict[str, tuple[str, ...]] = {}
        for grp in g.interleave:
            for e in grp:
                fused[e] = grp
        out: list[list[Kernel]] = []
        seen: set[str] = set()
        for k in self.ks.values():
            if k.origin not in g.einsums or k.alias or k.name in seen:
                continue
            if k.name in fused:
                members = [self.ks[n] for n in fused[k.name]]
                seen.update(m.name for m in members)
                out.append(members)
            else:
                seen.add(k.name)
                out.append([k])
        return out

    def build_group(self, gi: int, g: Group, body: Loop) -> None:
        stage_of = dict(g.stages)
        open_: list[Loop] = []
        members_under: dict[int, list[Kernel]] = {}
        for ks in self.group_kernels(g):
            maps = tuple(self.m.kernel(k.name) for k in ks)
            for k, m in zip(ks, maps, strict=True):
                self.check_map(k, m)
            arrays = {m.array for m in maps}
            if len(arrays) != 1:
                raise EinError.plain(
                    f"interleaved {', '.join(k.name for k in ks)} are mapped to different arrays"
                )
            want = [(v, t) for v, t in g.loops if all(v in k.space for k in ks)]
            keep = 0
            while keep < len(open_) and keep < len(want):
                lp = open_[keep]
                if (lp.var, lp.tile) != want[keep]:
                    break
                under = members_under.get(id(lp), [])
                if not all(
                    self.pointwise(k, p.output.tensor, want[keep][0]) for k in ks for p in under
                ):
                    break
                keep += 1
            open_ = open_[:keep]
            for v, t in want[keep:]:
                lp = Loop(v, t, "group")
                parent = open_[-1] if open_ else body
                parent.add(lp, self.stage(stage_of, ks))
                open_.append(lp)
            for lp in open_:
                members_under.setdefault(id(lp), []).extend(ks)
            parent = open_[-1] if open_ else body
            leaf = Leaf(len(self.leaves), tuple(ks), maps, maps[0].array, gi, g.mode)
            self.leaves.append(leaf)
            for k in ks:
                self.producer_leaf[k.name] = leaf
            self.attach_folds(leaf, parent, self.stage(stage_of, ks))

    @staticmethod
    def stage(stage_of: dict[str, int], ks: list[Kernel]) -> int:
        return max(stage_of.get(k.origin, 0) for k in ks)

    def attach_folds(self, leaf: Leaf, parent: Loop, stage: int) -> None:
        k, m = leaf.kernels[0], leaf.maps[0]
        arr = self.arch.array(leaf.array)
        fold_vars = [v for v in (m.order or k.space) if v not in m.stream]
        fold_vars += [v for v in k.space if v not in m.stream and v not in fold_vars]
        for other, om in zip(leaf.kernels[1:], leaf.maps[1:], strict=True):
            ov = {v for v in other.space if v not in om.stream}
            if ov != set(fold_vars) or (om.rows, om.cols) != (m.rows, m.cols):
                raise EinError.plain(
                    f"interleaved {k.name} and {other.name} need the same spatial ranks and "
                    "the same non-streamed ranks"
                )
        node = parent
        st = stage
        for v in fold_vars:
            tile = arr.rows if v == m.rows else arr.cols if v == m.cols else 1
            lp = Loop(v, tile, "fold")
            node.add(lp, st)
            node, st = lp, 0
        node.add(leaf, st)

    # ------------------------------------------------------------ analysis
    def finish(self, root: Loop) -> None:
        def visit(node: Node, path: list[Loop]) -> None:
            if isinstance(node, (Leaf, Xfer)):
                node.loops = list(path[1:])
            else:
                node.depth = len(path)
                for c in node.children:
                    visit(c, [*path, node])

        visit(root, [])

    def local_extent(self, loops: list[Loop], var: str) -> int:
        n = self.ext(var)
        for lp in loops:
            if lp.var == var:
                n = min(n, lp.tile)
        return n

    def region_words(self, acc: Access, ext: Mapping[str, int], tensor: str) -> int:
        t = self.c.tensor(tensor) if tensor in {x.name for x in self.c.tensors} else None
        total = 1
        for pos, ix in enumerate(acc.indices):
            coeffs, _ = index_coefficients(ix, self.b.extents)
            if t is not None and t.dims[pos].iterative:
                continue
            span = sum(abs(c) * (ext.get(v, 1) - 1) for v, c in coeffs.items()) + 1
            if t is not None:
                span = min(span, self.b.extents[t.dims[pos].rank])
            total *= span
        return total

    def itemsize(self, tensor: str) -> int:
        names = {x.name for x in self.c.tensors}
        if tensor in names:
            return self.c.tensor(tensor).dtype.itemsize
        return self.ks[tensor].itemsize

    def operands(self) -> None:
        for leaf in self.leaves:
            for k in leaf.kernels:
                for acc in k.reads:
                    tensor = self.src(acc.tensor)
                    place = self.place.get(tensor, "buffer")
                    op = Operand(k.name, acc, tensor, place)
                    prod = self.producer_leaf.get(tensor)
                    if prod is None:
                        op.kind = "input"
                    else:
                        op.producer = prod
                        op.carried = self.carried(k, acc, tensor)
                        op.kind = self.link_kind(leaf, prod, place, tensor, k)
                    leaf.operands.append(op)

    def carried(self, k: Kernel, acc: Access, tensor: str) -> str | None:
        t = self.c.tensor(tensor) if tensor in {x.name for x in self.c.tensors} else None
        p = self.ks.get(tensor)
        if t is None or p is None or t.iterative_position is None:
            return None
        pos = t.iterative_position
        x = self.c.einsum(p.origin).iterative_variable
        if x is not None and acc.indices[pos] == var_symbol(x):
            return x
        return None

    def link_kind(self, leaf: Leaf, prod: Leaf, place: str, tensor: str, k: Kernel) -> str:
        if place != "registers":
            return "scalar"
        pm = (
            prod.maps[[p.name for p in prod.kernels].index(tensor)]
            if tensor in [p.name for p in prod.kernels]
            else prod.maps[0]
        )
        qm = leaf.maps[[x.name for x in leaf.kernels].index(k.name)]
        where = f"{tensor} is placed in registers"
        shared = [lp for lp in leaf.loops if lp in prod.loops and lp.kind == "group"]
        folds = [lp for lp in (leaf.loops + prod.loops) if lp.kind == "fold"]
        for lp in folds:
            local = self.local_extent(
                [x for x in leaf.loops if x.kind == "group"] + [lp], lp.var or ""
            )
            if lp.var is not None and math.ceil(local / lp.tile) > 1:
                raise EinError.plain(
                    f"{where}, but the tile of {lp.var.upper()} spans "
                    f"{math.ceil(local / lp.tile)} folds of the array",
                    hint=f"add a loop over {lp.var.upper()} with a tile that fits the array, "
                    f"or place {tensor} in the buffer",
                )
        del shared
        if prod.array == leaf.array:
            if (pm.rows, pm.cols) != (qm.rows, qm.cols):
                raise EinError.plain(
                    f"{where}, but {prod.name} and {leaf.name} map it to different PEs",
                    hint="use the same rows and cols for both, or place it in the buffer",
                )
            return "inplace"
        if pm.cols != qm.cols:
            raise EinError.plain(
                f"{where}, but column {pm.cols} of the 2D array does not feed lane {qm.cols}",
                hint="map the 1D lanes to the 2D array's column rank, or place it in the buffer",
            )
        return "down" if prod.array == "2d" else "up"

    def flows(self) -> None:
        """Which operands stream from which edge; the skew (a, b) of every leaf."""
        for leaf in self.leaves:
            a = b = 0
            left = top = False
            load = 0
            out_kind = "acc"
            for k, m in zip(leaf.kernels, leaf.maps, strict=True):
                stream = set(m.stream)
                for op in leaf.operands:
                    if op.kernel != k.name or op.place == "registers":
                        continue
                    vs = op.access.variables
                    has_s = bool(vs & stream)
                    r = m.rows is not None and m.rows in vs
                    c = m.cols is not None and m.cols in vs
                    if has_s and r and not c:
                        left, b = True, 1
                    elif has_s and c and not r:
                        top, a = True, 1
                    elif has_s:
                        left = top = True
                        a = b = 1
                    elif r and c:
                        load = 1
                out = set(k.output.variables)
                if m.rows is not None and m.rows not in out:
                    out_kind, a = "down", 1
                elif m.cols is not None and m.cols not in out:
                    out_kind, b = "right", 1
            leaf.flows = {"edge": (left, top, bool(load), 0)}
            leaf.out_kind = out_kind
            out_place = self.place.get(self.src(leaf.kernels[0].output.tensor), "buffer")
            leaf.drains = out_kind == "acc" and out_place != "registers" and leaf.array == "2d"
            leaf.skew = (a if leaf.array == "2d" else 0, b)
        # a leaf that only reads what another left in its PEs follows that op's wavefront
        for _ in range(3):
            for leaf in self.leaves:
                a, b = leaf.skew
                for op in leaf.operands:
                    if op.producer is not None and op.kind in ("inplace", "down", "up"):
                        pa, pb = op.producer.skew
                        if op.kind == "inplace":
                            a = max(a, pa)
                        b = max(b, pb)
                leaf.skew = (a if leaf.array == "2d" else 0, b)

    # ------------------------------------------------------------ transfers
    def transfers(self, root: Loop) -> tuple[float, int]:
        staging = 0
        loads: dict[tuple[str, int], Xfer] = {}
        for leaf in self.leaves:
            for op in leaf.operands:
                if op.place == "registers":
                    continue
                is_input = op.producer is None
                if op.place == "buffer" and not is_input:
                    continue
                k = self.ks[op.kernel]
                idx_vars = op.access.variables
                level: Loop | None = None
                if op.place == "dram":
                    for lp in leaf.loops:
                        if lp.var is not None and lp.var in idx_vars:
                            level = lp
                body = level if level is not None else self.group_body(root, leaf)
                key = (op.tensor, id(body))
                x = loads.get(key)
                if x is None:
                    x = Xfer(len(self.xfers), op.tensor, False, [], frozenset(idx_vars))
                    self.xfers.append(x)
                    loads[key] = x
                    self.insert_load(body, x)
                x.accesses.append((k, op.access))
                x.consumers.append(leaf)
                leaf.loads.append(x)
        self.finish(root)
        for x in self.xfers:
            staging += 2 * self.xfer_bytes(x, x.loops)
        # writes of DRAM-resident results
        for leaf in self.leaves:
            for k in leaf.kernels:
                tensor = self.src(k.output.tensor)
                if self.place.get(tensor, "buffer") != "dram":
                    continue
                x = Xfer(len(self.xfers), tensor, True, [(k, k.output)], frozenset(), producer=leaf)
                self.xfers.append(x)
                self.insert_write(leaf, x)
        self.finish(root)
        for x in self.xfers:
            if x.write:
                staging += 2 * self.xfer_bytes(x, x.loops)
        # buffer-resident intermediates
        resident = 0
        res_tensors: list[tuple[str, Leaf, int]] = []
        for t, place in self.place.items():
            prod = self.producer_leaf.get(t)
            if place != "buffer" or prod is None:
                continue
            users = [lf for lf in self.leaves if any(o.tensor == t for o in lf.operands)]
            common = [lp for lp in prod.loops if all(lp in u.loops for u in users)]
            ext = {v: self.local_extent(common, v) for v in self.ks[t].space}
            nbytes = self.region_words(self.ks[t].output, ext, t) * self.itemsize(t)
            resident += nbytes
            res_tensors.append((t, prod, nbytes))
        cap = self.arch.buffer.bytes
        if staging > cap:
            raise EinError.plain(
                f"the double-buffered DRAM tiles need {staging} bytes, more than the "
                f"{cap}-byte global buffer of {self.arch.name}",
                hint="add loops with smaller tiles to the mapping, or --set buffer.bytes=...",
            )
        spill = 0.0
        if resident > cap - staging:
            spill = 1.0 - (cap - staging) / resident
        if spill > 0:
            for t, prod, _ in res_tensors:
                k = self.ks[t]
                w = Xfer(len(self.xfers), t, True, [(k, k.output)], frozenset(), spill, prod)
                w.spill = True
                self.xfers.append(w)
                self.insert_write(prod, w)
                for leaf in self.leaves:
                    ops = [o for o in leaf.operands if o.tensor == t]
                    if not ops:
                        continue
                    r = Xfer(
                        len(self.xfers),
                        t,
                        False,
                        [(self.ks[ops[0].kernel], ops[0].access)],
                        frozenset(),
                        spill,
                    )
                    r.spill = True
                    r.consumers.append(leaf)
                    self.xfers.append(r)
                    leaf.loads.append(r)
                    parent, idx = self.parent_of(root, leaf)
                    parent.children.insert(idx, r)
                    parent.stages.insert(idx, parent.stages[idx])
            self.finish(root)
        return spill, staging + min(resident, max(0, cap - staging))

    def group_body(self, root: Loop, leaf: Leaf) -> Loop:
        body = root.children[leaf.group]
        assert isinstance(body, Loop)
        return body

    def insert_load(self, body: Loop, x: Xfer) -> None:
        if not any(isinstance(c, Xfer) and not c.write for c in body.children):
            body.stages = [s + 1 for s in body.stages]
        body.children.insert(0, x)
        body.stages.insert(0, 0)

    def parent_of(self, root: Loop, target: Node) -> tuple[Loop, int]:
        for node in _walk(root):
            if isinstance(node, Loop):
                for i, c in enumerate(node.children):
                    if c is target:
                        return node, i
        raise AssertionError("node not in tree")

    def insert_write(self, leaf: Leaf, x: Xfer) -> None:
        folds = [lp for lp in leaf.loops if lp.kind == "fold"]
        k = leaf.kernels[0]
        reduced_fold = [lp for lp in folds if lp.var in k.reduced]
        # after the outermost fold loop that reduces: the output tile is final there
        target: Node = reduced_fold[0] if reduced_fold else leaf
        parent, idx = self.parent_of(self.root, target)
        parent.children.insert(idx + 1, x)
        parent.stages.insert(idx + 1, parent.stages[idx])

    def xfer_bytes(self, x: Xfer, loops: list[Loop]) -> int:
        words = 0
        for k, acc in x.accesses:
            ext = {v: self.local_extent(loops + self.inner_loops(x), v) for v in k.space}
            words = max(words, self.region_words(acc, ext, acc.tensor))
        return math.ceil(words * self.itemsize(x.tensor) * x.fraction)

    def inner_loops(self, x: Xfer) -> list[Loop]:
        return []

    def lower(self) -> Program:
        root = self.build()
        self.root = root
        self.finish(root)
        self.operands()
        self.flows()
        spill, need = self.transfers(root)
        for node in _walk(root):
            if isinstance(node, Loop):
                leaves = tuple(n for n in _walk(node) if isinstance(n, Leaf))
                node.leaves = leaves
                node.arrays = frozenset(lf.array for lf in leaves)
                node.dram = any(isinstance(n, Xfer) for n in _walk(node))
        return Program(
            self.c,
            self.arch,
            self.m,
            self.b,
            root,
            self.leaves,
            self.xfers,
            self.ks,
            self.place,
            spill,
            need,
            self.timing,
            self.source,
        )

    root: Loop


def lower(
    cascade: Cascade,
    arch: Arch,
    mapping: SimMapping,
    dims: Mapping[str, int],
    timing: str = "default",
) -> Program:
    """The program a mapping makes of a cascade on an architecture at these dims."""
    return _Lowering(cascade, arch, mapping, dims, timing).lower()


def op_cycles(arr: ArrayArch, k: Kernel) -> int:
    """Cycles a PE of ``arr`` spends on one point of ``k``: its ops one after another."""
    total = 0
    for o, n in k.ops:
        cost = arr.op(o)
        if cost is not None:
            total += n * cost.cycles
    return total


def op_shape(prog: Program, leaf: Leaf, ext: Mapping[str, int]) -> OpShape:
    """The shape of one fold of ``leaf`` at the local extents ``ext``."""
    arch = prog.arch
    arr = arch.array(leaf.array)
    k0, m0 = leaf.kernels[0], leaf.maps[0]
    R, C = (arr.rows, arr.cols)
    u_r = ext[m0.rows] if m0.rows is not None else 1
    u_c = ext[m0.cols] if m0.cols is not None else 1
    T = 1
    K = 0
    for k, m in zip(leaf.kernels, leaf.maps, strict=True):
        t = math.prod(ext[v] for v in m.stream)
        T = max(T, t)
        K += op_cycles(arr, k) or 1
    left, top, load, _ = leaf.flows["edge"]
    scalesim = prog.timing == "scalesim"
    a, b = leaf.skew
    L = 0
    if load:
        L = R if scalesim else u_r
    drain = 0
    if leaf.drains:
        out_stream = math.prod(ext[v] for v in m0.stream if v in k0.output.variables)
        drain = u_r * out_stream
    if not scalesim:
        word = max(1, k0.itemsize)
        rd = arch.buffer.words_per_cycle(word, write=False)
        wr = arch.buffer.words_per_cycle(word, write=True)
        per_step = (u_r if left else 0) + (u_c if top else 0)
        K = max(K, -(-per_step // rd) if per_step else 0)
        if leaf.out_kind == "down":
            K = max(K, -(-u_c // wr))
        if load:
            L = max(L, -(-(u_r * u_c) // rd))
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
    )
