"""The lowering's phases: a mapping, a cascade and an architecture at given dims become a
:class:`~einsumcc_sim.program.SimProgram` (see :mod:`einsumcc_sim.program` for what it does).

:class:`_Context` holds what one lowering builds; the phases share it, in order:
:class:`_TreeBuilder` (loops and leaves), :class:`_Dataflow` (how operands arrive),
:class:`_Transfers` (DRAM loads, writes and spills), :class:`_BufferPlan` (buffer and register
need) and :class:`_Ordering` (issue order and the engine's static facts).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import sympy

from einsumcc.diagnostics import EinError, Source
from einsumcc.ir.bind import bind, index_coefficients
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import Access, Role, var_symbol
from einsumcc_sim.arch import Arch
from einsumcc_sim.kernel import PEKernel, kernels
from einsumcc_sim.mapping import FIT, KernelMap, MappingGroup
from einsumcc_sim.mapping import Mapping as SimMapping
from einsumcc_sim.model import FAITHFUL, ModelOptions
from einsumcc_sim.program import (
    BufferOverflowError,
    Leaf,
    Node,
    Operand,
    SimLoop,
    SimProgram,
    Xfer,
    _first_leaf,
    _walk,
    chain_leaf,
)
from einsumcc_sim.tomlspan import located
from einsumcc_sim.work import Work, frozen_dims


class _Context:
    """The state one lowering builds (the tree's leaves and transfers, the placement) and
    the helpers every phase uses.  The phases below share it: each is made from the context
    and holds the same containers."""

    root: SimLoop

    def __init__(
        self,
        cascade: Cascade,
        arch: Arch,
        mapping: SimMapping,
        dims: Mapping[str, int],
        timing: str,
        model: ModelOptions,
    ) -> None:
        self.c = cascade
        self.arch = arch
        self.m = mapping
        self.b = bind(cascade, dims)
        self.timing = timing
        self.model = model
        self.ks = {k.name: k for k in kernels(cascade)}
        self.place = dict(mapping.placement)
        self.source: dict[str, str] = {}
        for k in self.ks.values():
            if k.alias and isinstance(k.body, Access):
                self.source[k.name] = k.body.tensor
        self.leaves: list[Leaf] = []
        self.xfers: list[Xfer] = []
        self.producer_leaf: dict[str, Leaf] = {}
        self.tensor_names = {t.name for t in cascade.tensors}

    def share(self, other: _Context) -> None:
        """Take ``other``'s state (the same containers, not copies)."""
        self.__dict__.update(other.__dict__)

    def src(self, tensor: str) -> str:
        while tensor in self.source:
            tensor = self.source[tensor]
        return tensor

    def ext(self, var: str) -> int:
        return self.b.extents[self.c.var_ranks[var]]

    def role(self, tensor: str) -> Role | None:
        return self.c.tensor(tensor).role if tensor in self.tensor_names else None

    def finish(self, root: SimLoop) -> None:
        def visit(node: Node, path: list[SimLoop]) -> None:
            if isinstance(node, (Leaf, Xfer)):
                node.loops = list(path[1:])
            else:
                node.depth = len(path)
                for c in node.children:
                    visit(c, [*path, node])

        visit(root, [])

    def local_extent(self, loops: list[SimLoop], var: str) -> int:
        n = self.ext(var)
        for lp in loops:
            for v, t in ((lp.var, lp.tile), *lp.axes):
                if v == var:
                    n = min(n, t)
        return n

    def region_words(self, acc: Access, ext: Mapping[str, int], tensor: str) -> int:
        t = self.c.tensor(tensor) if tensor in self.tensor_names else None
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
        if tensor in self.tensor_names:
            return self.c.tensor(tensor).dtype.itemsize
        return self.ks[tensor].itemsize

    def dram_loops_of(self, leaf: Leaf) -> list[SimLoop]:
        return [lp for lp in leaf.loops if lp.kind == "group" and lp.dram_level]

    def group_body(self, root: SimLoop, leaf: Leaf) -> SimLoop:
        body = root.children[leaf.group]
        assert isinstance(body, SimLoop)
        return body

    def insert_load(self, body: SimLoop, x: Xfer, before: Leaf | None = None) -> None:
        if before is not None and before in body.children:
            idx = body.children.index(before)
            body.children.insert(idx, x)
            body.stages.insert(idx, body.stages[idx])
            return
        if not any(isinstance(c, Xfer) and not c.write for c in body.children):
            body.stages = [s + 1 for s in body.stages]
        body.children.insert(0, x)
        body.stages.insert(0, 0)

    def parent_of(self, root: SimLoop, target: Node) -> tuple[SimLoop, int]:
        for node in _walk(root):
            if isinstance(node, SimLoop):
                for i, c in enumerate(node.children):
                    if c is target:
                        return node, i
        raise AssertionError("node not in tree")

    def insert_write(self, leaf: Leaf, x: Xfer) -> None:
        folds = [lp for lp in leaf.loops if lp.kind == "fold"]
        k = leaf.kernel
        reduced_fold = [lp for lp in folds if lp.var in k.reduced]
        # after the outermost fold loop that reduces: the output tile is final there
        target: Node = reduced_fold[0] if reduced_fold else leaf
        parent, idx = self.parent_of(self.root, target)
        parent.children.insert(idx + 1, x)
        parent.stages.insert(idx + 1, parent.stages[idx])

    def footprint(self, tensor: str, leaf: Leaf) -> int:
        """Bytes of a buffer-kept tensor: its tile over the loops inside the DRAM level."""
        k = self.ks[tensor]
        dram = self.dram_loops_of(leaf)
        ext = {v: self.local_extent(dram, v) for v in k.space}
        return self.region_words(k.output, ext, tensor) * self.itemsize(tensor)

    def xfer_bytes(self, x: Xfer) -> int:
        words = 0
        for k, acc in x.accesses:
            ext = {v: self.local_extent(x.loops, v) for v in k.space}
            words = max(words, self.region_words(acc, ext, acc.tensor))
        return math.ceil(words * self.itemsize(x.tensor) * x.fraction * x.repeat)


class _TreeBuilder(_Context):
    """The loop tree: group loops, fold loops and a leaf per fold of every kernel."""

    def __init__(self, ctx: _Context) -> None:
        self.share(ctx)

    def check_map(self, k: PEKernel, m: KernelMap) -> None:
        where = f"mapping of {k.name}"

        def at(key: str) -> str:  # a mapping file's key, where the error points
            return f"{self.m.source}: einsum.{k.name}.{key}" if self.m.source else where

        cols = "lanes" if m.array == "1d" else "cols"
        arr = self.arch.array(m.array) if m.array != "none" else None
        if arr is None:
            return
        missing = [o for o in k.op_names if arr.op(o) is None]
        if missing:
            raise EinError.plain(
                f"{at('array')}: the {m.array} array of {self.arch.name} has no '{missing[0]}' op "
                f"({k.origin} needs {', '.join(k.op_names)})",
                hint="map it to the other array, or add the op to the architecture file",
            )
        if m.rows is not None and m.rows == m.cols:
            raise EinError.plain(
                f"{at(cols)}: rank {m.rows.upper()} is spatial on two array dimensions",
                hint="map one rank to the rows and another to the columns",
            )
        for role, v in (("rows", m.rows), (cols, m.cols)):
            if v is not None and v not in k.space:
                raise EinError.plain(
                    f"{at(role)}: {role} = {v.upper()}, which {k.name} does not iterate"
                )
        for v in m.stream:
            if v not in k.space:
                raise EinError.plain(
                    f"{at('stream')}: stream {v.upper()} is not a rank of {k.name}"
                )

        for v in m.at_last:
            if v in k.space:
                raise EinError.plain(
                    f"{at('at_last')}: at_last = {v.upper()}, a rank {k.name} iterates itself",
                    hint="at_last names a loop the Einsum lacks, e.g. the recurrence's M1",
                )
        if (
            m.rows is not None
            and m.rows in k.reduced
            and m.cols is not None
            and m.cols in k.reduced
        ):
            raise EinError.plain(
                f"{at(cols)}: both array dimensions reduce; keep one output rank spatial"
            )

    def pointwise(self, consumer: PEKernel, producer_tensor: str, var: str) -> bool:
        """Every read of ``producer_tensor`` by ``consumer`` is at the same ``var`` (or the
        previous iterate of a recurrence over it, or, for an ``at_last`` consumer, the final
        iterate)."""
        p = self.ks.get(producer_tensor)
        if p is None:
            return True
        if var in self.m.kernel(consumer.name).at_last:
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

    def build(self) -> SimLoop:
        root = SimLoop(None, 1, "root")
        self.root_ = root
        for gi, g in enumerate(self.m.groups):
            body = SimLoop(None, 1, "group", group=gi)
            root.add(body)
            self.build_group(gi, g, body)
        return root

    def group_kernels(self, g: MappingGroup) -> list[PEKernel]:
        return [k for k in self.ks.values() if k.origin in g.einsums and not k.alias]

    def build_group(self, gi: int, g: MappingGroup, body: SimLoop) -> None:
        stage_of = dict(g.stages)
        open_: list[SimLoop] = []
        members_under: dict[int, list[PEKernel]] = {}
        ndram = len(g.loops) if g.dram_loops is None else g.dram_loops
        dram_keys = set(g.loops[:ndram])
        for k in self.group_kernels(g):
            m = self.m.kernel(k.name)
            self.check_map(k, m)
            space = set(k.space) | set(m.at_last)
            want = [(v, t) for v, t in g.loops if v in space]
            extra = [(v, t) for v, t in m.loops if v in space]
            want += extra
            keep = 0
            while keep < len(open_) and keep < len(want):
                lp = open_[keep]
                if (lp.var, lp.tile) != want[keep]:
                    break
                under = members_under.get(id(lp), [])
                if not all(self.pointwise(k, p.output.tensor, want[keep][0]) for p in under):
                    break
                keep += 1
            open_ = open_[:keep]
            stage = stage_of.get(k.origin, 0)
            for i, (v, t) in enumerate(want[keep:], start=keep):
                # an Einsum's own loops iterate DRAM tiles too (e.g. one row at a time)
                level = (v, t) in dram_keys or i >= len(want) - len(extra)
                lp = SimLoop(v, t, "group", group=gi, dram_level=level)
                parent = open_[-1] if open_ else body
                parent.add(lp, stage)
                open_.append(lp)
            for lp in open_:
                members_under.setdefault(id(lp), []).append(k)
            parent = open_[-1] if open_ else body
            leaf = Leaf(len(self.leaves), (k,), (m,), m.array, gi, g.mode, stage=stage)
            leaf.guard = m.at_last
            self.leaves.append(leaf)
            self.producer_leaf[k.name] = leaf
            self.attach_folds(leaf, parent, stage)
        for a, b in g.interleave:
            self.pair(g, a, b)

    def pair(self, g: MappingGroup, a: str, b: str) -> None:
        la, lb = self.producer_leaf.get(a), self.producer_leaf.get(b)
        if la is None or lb is None:
            raise EinError.plain(f"interleave: {a} and {b} must be Einsums with work")
        if la.array != lb.array:
            raise EinError.plain(
                f"interleaved {a} and {b} are mapped to different arrays",
                hint="interleave two Einsums of the same array",
            )
        la.partner, lb.partner = lb, la

    def ancestors(self, loop: SimLoop) -> list[SimLoop]:
        """``loop`` and the loops above it (the tree is being built: search from the root)."""
        path: list[SimLoop] = []

        def find(node: Node, trail: list[SimLoop]) -> bool:
            if node is loop:
                path.extend([*trail, loop])
                return True
            if isinstance(node, SimLoop):
                return any(find(c, [*trail, node]) for c in node.children)
            return False

        find(self.root_, [])
        return path

    def attach_folds(self, leaf: Leaf, parent: SimLoop, stage: int) -> None:
        k, m = leaf.kernel, leaf.maps[0]
        arr = self.arch.array(leaf.array)
        chunk = dict(m.chunks)
        fold_vars = [v for v in (m.order or k.space) if v not in m.stream or v in chunk]
        fold_vars += [
            v for v in k.space if (v not in m.stream or v in chunk) and v not in fold_vars
        ]
        fixed = {
            lp.var
            for lp in self.ancestors(parent)
            if lp.kind == "group" and lp.tile == 1 and lp.var is not None
        }
        node = parent
        st = stage
        for v in fold_vars:
            if v in fixed and v not in chunk and v not in (m.rows, m.cols):
                continue  # one value per iteration of a group loop already
            tile = chunk.get(v, arr.rows if v == m.rows else arr.cols if v == m.cols else 1)
            lp = SimLoop(v, tile, "fold", group=leaf.group)
            node.add(lp, st)
            node, st = lp, 0
        node.add(leaf, st)


class _Dataflow(_Context):
    """How every operand reaches its op (registers, the link, the buffer) and the
    wavefronts (skews) of the ops."""

    def __init__(self, ctx: _Context) -> None:
        self.share(ctx)

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
                        if prod is leaf.partner and op.carried is None:
                            op.kind = "forward"  # from the partner's registers, same PEs
                        else:
                            op.kind = self.link_kind(leaf, prod, place, tensor, k)
                        if op.kind == "down":
                            pm, qm = prod.maps[0], leaf.maps[0]
                            shared = set(pm.stream) & set(qm.stream) & acc.variables
                            op.streamed = bool(shared & prod.kernel.output.variables)
                    leaf.operands.append(op)

    def carried(self, k: PEKernel, acc: Access, tensor: str) -> str | None:
        t = self.c.tensor(tensor) if tensor in self.tensor_names else None
        p = self.ks.get(tensor)
        if t is None or p is None or t.iterative_position is None:
            return None
        pos = t.iterative_position
        x = self.c.einsum(p.origin).iterative_variable
        if x is not None and acc.indices[pos] == var_symbol(x):
            return x
        return None

    def link_kind(self, leaf: Leaf, prod: Leaf, place: str, tensor: str, k: PEKernel) -> str:
        if place != "registers":
            return "scalar"
        pm = prod.maps[0]
        qm = leaf.maps[0]
        where = f"{tensor} is placed in registers"
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
            self.edge_flows(leaf)
        self.follow_wavefronts()
        self.share_wavefronts()

    def edge_flows(self, leaf: Leaf) -> None:
        """The edges ``leaf``'s operands stream from, its output's way out and its skew."""
        a = b = 0
        left = top = False
        load = 0
        out_kind = "acc"
        for k, m in zip(leaf.kernels, leaf.maps, strict=True):
            stream = set(m.stream)
            for op in leaf.operands:
                if op.kernel != k.name or op.place == "registers" or op.kind == "forward":
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
            chain = self.arch.array(leaf.array).reduce == "chain"
            if m.rows is not None and m.rows not in out:
                out_kind, a = "down", (1 if chain else a)
            elif m.cols is not None and m.cols not in out:
                out_kind, b = "right", (1 if chain else b)
        leaf.flows = {"edge": (left, top, bool(load), 0)}
        leaf.out_kind = out_kind
        out_place = self.place.get(self.src(leaf.kernel.output.tensor), "buffer")
        leaf.drains = out_kind == "acc" and out_place != "registers" and leaf.array == "2d"
        leaf.skew = (a if leaf.array == "2d" else 0, b)

    def follow_wavefronts(self) -> None:
        """A leaf that only reads what another left in its PEs follows that op's wavefront."""
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

    def share_wavefronts(self) -> None:
        """Ops linked through registers in a pipelined group share one wavefront per array,
        so that consecutive ops never wait for a mismatched skew to drain."""
        linked = [
            lf
            for lf in self.leaves
            if self.m.groups[lf.group].mode != "sequential"
            and any(op.kind in ("inplace", "down", "up") for op in lf.operands)
        ]
        for arr in ("2d", "1d"):
            for gi in {lf.group for lf in linked}:
                mine = [lf for lf in self.leaves if lf.array == arr and lf.group == gi]
                if not any(lf in linked for lf in mine):
                    continue
                a = max(lf.skew[0] for lf in mine)
                b = max(lf.skew[1] for lf in mine)
                for lf in mine:
                    lf.skew = (a, b)

    def same_pes(self) -> None:
        for leaf in self.leaves:
            for op in leaf.operands:
                p = op.producer
                if (
                    op.kind == "scalar"
                    and p is not None
                    and p.array == leaf.array
                    and (p.maps[0].rows, p.maps[0].cols) == (leaf.maps[0].rows, leaf.maps[0].cols)
                    and p.skew == leaf.skew
                    and p.out_kind == "acc"
                    and not p.drains
                    and self.single_fold(p)
                    and self.single_fold(leaf)
                ):
                    op.same_pes = True

    def single_fold(self, leaf: Leaf) -> bool:
        groups = [x for x in leaf.loops if x.kind == "group"]
        return all(
            lp.var is None or -(-self.local_extent(groups, lp.var) // lp.tile) == 1
            for lp in leaf.loops
            if lp.kind == "fold"
        )


class _Transfers(_Context):
    """The DRAM transfers: loads, write-backs and spills of the buffer-kept tensors."""

    def __init__(self, ctx: _Context) -> None:
        self.share(ctx)

    def load_level(self, leaf: Leaf, op: Operand, root: SimLoop) -> tuple[SimLoop, bool]:
        """Where a DRAM read of ``op`` goes, and whether every op fetches it anew."""
        idx_vars = op.access.variables
        if op.place == "stream":
            parent = leaf.loops[-1] if leaf.loops else self.group_body(root, leaf)
            m = leaf.maps[[k.name for k in leaf.kernels].index(op.kernel)]
            stationary = not (idx_vars & set(m.stream))
            return parent, not stationary
        candidates = leaf.loops if op.place == "dram" else self.dram_loops_of(leaf)
        level: SimLoop | None = None
        for lp in candidates:
            if lp.var is not None and lp.var in idx_vars:
                level = lp
        return (level if level is not None else self.group_body(root, leaf)), False

    def transfers(self, root: SimLoop) -> None:
        loads: dict[tuple[str, int, bool], Xfer] = {}
        for leaf in self.leaves:
            for op in leaf.operands:
                if op.place == "registers" or op.kind == "forward":
                    continue
                is_input = op.producer is None
                if op.place == "buffer" and not is_input:
                    continue
                k = self.ks[op.kernel]
                body, always = self.load_level(leaf, op, root)
                key = (op.tensor, id(body), always)
                x = loads.get(key)
                if x is None or always:
                    x = Xfer(len(self.xfers), op.tensor, False, [], frozenset(op.access.variables))
                    x.always = always
                    self.xfers.append(x)
                    loads[key] = x
                    self.insert_load(body, x, before=leaf if always else None)
                x.accesses.append((k, op.access))
                x.consumers.append(leaf)
                leaf.loads.append(x)
        self.finish(root)
        # writes of DRAM-resident results
        for leaf in self.leaves:
            for k in leaf.kernels:
                tensor = self.src(k.output.tensor)
                place = self.place.get(tensor, "buffer")
                if place in ("dram", "stream"):
                    x = Xfer(
                        len(self.xfers), tensor, True, [(k, k.output)], frozenset(), producer=leaf
                    )
                    self.xfers.append(x)
                    self.insert_write(leaf, x)
                elif place == "buffer" and self.role(tensor) == Role.OUTPUT:
                    x = Xfer(
                        len(self.xfers), tensor, True, [(k, k.output)], frozenset(), producer=leaf
                    )
                    self.xfers.append(x)
                    self.insert_dram_write(root, leaf, x)
        self.finish(root)

    def insert_dram_write(self, root: SimLoop, leaf: Leaf, x: Xfer) -> None:
        """A buffer-kept output goes back to DRAM once per DRAM-level tile: after the body
        of the innermost DRAM-level loop indexing it, at its last stage."""
        out_vars = leaf.kernel.output.variables
        level: SimLoop | None = None
        for lp in self.dram_loops_of(leaf):
            if lp.var in out_vars:
                level = lp
        body = level if level is not None else self.group_body(root, leaf)
        body.add(x, max(body.stages, default=0))

    def wait_depths(self) -> None:
        for x in self.xfers:
            if x.write:
                continue
            prod = self.producer_leaf.get(x.tensor)
            if prod is None or not x.consumers:
                continue
            depth = len(x.loops)
            for lf in x.consumers:
                n = 0
                for a, b in zip(prod.loops, lf.loops, strict=False):
                    if a is not b or a.kind != "group":
                        break
                    n += 1
                depth = min(depth, n)
            x.after = depth + 1  # the root's body counts as a level (groups)

    def guard_xfers(self) -> None:
        for x in self.xfers:
            owners = [x.producer] if x.write and x.producer is not None else x.consumers
            guards = {g for lf in owners if lf is not None for g in lf.guard}
            if guards and all(lf.guard for lf in owners if lf is not None):
                x.guard = tuple(sorted(guards))

    def spills(self, root: SimLoop, kept: list[str], s: float) -> None:
        """The fraction ``s`` of every access to a kept tensor goes to DRAM."""
        staged_inputs = {
            t for t, p in self.place.items() if p == "buffer" and t not in self.producer_leaf
        }
        for x in self.xfers:
            if not x.write and x.tensor in staged_inputs:
                x.fraction = 1.0 - s  # what would be spilled again is not fetched
            if x.write and self.place.get(x.tensor) == "buffer":
                x.fraction = 1.0 - s
        eligible = set(kept) | staged_inputs
        for t in self.place:
            if self.place[t] == "buffer" and self.role(t) == Role.OUTPUT:
                eligible.add(t)
        for leaf in list(self.leaves):
            for k in leaf.kernels:
                t = self.src(k.output.tensor)
                if t in eligible and t in self.producer_leaf:
                    w = Xfer(len(self.xfers), t, True, [(k, k.output)], frozenset(), s, leaf)
                    w.spill = True
                    self.xfers.append(w)
                    self.insert_write(leaf, w)
            ops = [o for o in leaf.operands if o.tensor in eligible and o.kind == "scalar"]
            ops += [
                o
                for o in leaf.operands
                if o.tensor in staged_inputs and o.kind == "input" and o.place == "buffer"
            ]
            for o in ops:
                r = Xfer(len(self.xfers), o.tensor, False, [(self.ks[o.kernel], o.access)],
                         frozenset(), s)  # fmt: skip
                r.spill = True
                r.consumers.append(leaf)
                self.xfers.append(r)
                leaf.loads.append(r)
                # fetched a stage ahead, in the body of the op's innermost group loop, once
                # for every fold that reads the tile again
                groups = [lp for lp in leaf.loops if lp.kind == "group"]
                for lp in leaf.loops:
                    if lp.kind == "fold" and lp.var not in o.access.variables and lp.var:
                        local = self.local_extent(groups, lp.var)
                        r.repeat *= -(-local // lp.tile)
                self.insert_load(groups[-1] if groups else self.group_body(root, leaf), r)
        self.finish(root)


class _BufferPlan(_Context):
    """What the global buffer and the PEs' registers must hold."""

    def __init__(self, ctx: _Context) -> None:
        self.share(ctx)

    def resident(self) -> tuple[int, list[str]]:
        """Peak bytes of the buffer-kept intermediates (a live range per tensor, from its
        producer to its last reader in the group's order; with ``inplace`` a result takes over
        the storage of a same-shaped tensor it reads for the last time)."""
        kept = [
            t
            for t, place in self.place.items()
            if place == "buffer" and t in self.producer_leaf and self.role(t) != Role.OUTPUT
        ]
        order = {lf.id: i for i, lf in enumerate(self.leaves)}
        last: dict[str, int] = {}
        for lf in self.leaves:
            for op in lf.operands:
                if op.tensor in kept and op.kind != "forward":
                    last[op.tensor] = max(last.get(op.tensor, -1), order[lf.id])
        size = {t: self.footprint(t, self.producer_leaf[t]) for t in kept}
        storage: dict[str, str] = {}
        for t in kept:
            storage[t] = t
            prod = self.producer_leaf[t]
            g = self.m.groups[prod.group]
            if not g.inplace:
                continue
            pk = self.ks[t]
            for op in prod.operands:
                u = op.tensor
                if (
                    u in kept
                    and u != t
                    and last.get(u) == order[prod.id]
                    and self.ks[u].output.variables == pk.output.variables
                ):
                    storage[t] = storage[u]
                    break
        peak = 0
        for i in range(len(self.leaves)):
            live: dict[str, int] = {}
            for t in kept:
                born = order[self.producer_leaf[t].id]
                if born <= i <= max(last.get(t, born), born):
                    s = storage[t]
                    live[s] = max(live.get(s, 0), size[t])
            peak = max(peak, sum(live.values()))
        return peak, kept

    def registers(self) -> dict[str, int]:
        """Register words per PE: a tile kept in registers from its producer to its last
        reader, once per pipeline stage in flight; a result computed pointwise from a tile
        that its op reads for the last time takes over that tile's register."""
        readers: dict[str, list[Leaf]] = {}
        for lf in self.leaves:
            for o in lf.operands:
                if o.kind in ("inplace", "down", "up", "forward"):
                    readers.setdefault(o.tensor, []).append(lf)
        storage: dict[str, str] = {}
        span: dict[str, tuple[int, int, str]] = {}  # storage -> (first stage, last, array)
        for leaf in self.leaves:
            t = self.src(leaf.kernel.output.tensor)
            rs = [r for r in readers.get(t, []) if r is not leaf]
            if self.place.get(t) != "registers" or not rs:
                continue
            where = leaf.array if any(r.array == leaf.array for r in rs) else rs[0].array
            last = max(r.stage for r in rs)
            owner = t
            for o in leaf.operands:
                u = o.tensor
                if (
                    o.kind == "inplace"
                    and u in storage
                    and self.ks[u].output.variables == leaf.kernel.output.variables
                    and max(r.stage for r in readers[u]) <= leaf.stage
                ):
                    owner = storage[u]
                    break
            storage[t] = owner
            first, end, _ = span.get(owner, (leaf.stage, last, where))
            span[owner] = (min(first, leaf.stage), max(end, last), where)
        need: dict[str, int] = {"2d": 0, "1d": 0}
        for first, last, where in span.values():
            need[where] = need.get(where, 0) + (last - first + 1)
        return need


class _Ordering(_Context):
    """The issue order within an epoch, the pipeline checks and the static facts the
    engine's extrapolation uses."""

    def __init__(self, ctx: _Context) -> None:
        self.share(ctx)

    def orders(self, root: SimLoop) -> None:
        """The issue order of every loop's children: loads first, then the group's order
        (default: older stages first, then the cascade's order); interleaved pairs adjacent."""
        for node in _walk(root):
            if not isinstance(node, SimLoop):
                continue
            n = len(node.children)
            units: list[list[int]] = []
            for i, ch in enumerate(node.children):
                if isinstance(ch, Xfer) and ch.write and units:
                    units[-1].append(i)
                else:
                    units.append([i])
            g = self.m.groups[node.group] if node.group >= 0 else None
            rank = {e: r for r, e in enumerate(g.order)} if g is not None else {}

            def key(
                u: list[int], node: SimLoop = node, rank: dict[str, int] = rank
            ) -> tuple[int, int, int]:
                ch = node.children[u[0]]
                if isinstance(ch, Xfer) and not ch.write and not ch.spill:
                    return (0, 0, u[0])
                lf = _first_leaf(ch)
                st = node.stages[u[0]]
                if lf is not None and lf.kernel.origin in rank:
                    return (1, rank[lf.kernel.origin], u[0])
                return (1 if not rank else 2, -st, u[0])

            units.sort(key=key)
            # interleaved pairs: the later one right after the earlier one
            for u in list(units):
                lf = chain_leaf(node.children[u[0]])
                if lf is None or lf.partner is None:
                    continue
                pu = next((v for v in units if chain_leaf(node.children[v[0]]) is lf.partner), None)
                if pu is None:
                    continue
                iu, ip = units.index(u), units.index(pu)
                if ip > iu + 1:
                    units.insert(iu + 1, units.pop(ip))
                lf.leads = units.index(u) < units.index(pu)
                lf.partner.leads = not lf.leads
                node.pairs = True
            node.order = [i for u in units for i in u]
            assert sorted(node.order) == list(range(n))

    def check_stages(self) -> None:
        """A consumer never runs before its producer: stages and the issue order agree."""
        for leaf in self.leaves:
            for op in leaf.operands:
                p = op.producer
                if p is None or p is leaf or p.group != leaf.group:
                    continue
                common = [lp for lp in leaf.loops if lp in p.loops and lp.kind == "group"]
                if not common:
                    continue
                inner = common[-1]
                d = 0
                if op.carried is not None:
                    # the previous iterate ran this many epochs of the pipelined loop ago
                    outer = [lp for lp in common if op.carried in lp.vars]
                    if not outer:
                        continue
                    d = 1
                    below = common[common.index(outer[-1]) + 1 :]
                    for i, lp in enumerate(below):
                        for v, t in ((lp.var, lp.tile), *lp.axes):
                            if v is not None:
                                n = self.local_extent(common[: common.index(lp)], v)
                                d *= max(1, -(-n // t))
                        del i
                if p.stage > leaf.stage + d:
                    raise EinError.plain(
                        f"{leaf.name} (stage {leaf.stage}) reads {op.tensor} from {p.name} "
                        f"(stage {p.stage}), which runs later",
                        hint=f"give {p.name} a stage at most {leaf.stage + d}",
                    )
                if p.stage == leaf.stage + d and op.kind != "forward" and p is not leaf:
                    pi, ci = self.position(inner, p), self.position(inner, leaf)
                    if pi is not None and ci is not None and pi > ci:
                        raise EinError.plain(
                            f"{leaf.name} reads {op.tensor} from {p.name} in the same epoch, "
                            "but issues before it",
                            hint=f"list {p.kernel.origin} before {leaf.kernel.origin} in the "
                            "group's order, or give it an earlier stage",
                        )

    @staticmethod
    def position(lp: SimLoop, leaf: Leaf) -> int | None:
        for pos, i in enumerate(lp.order):
            ch = lp.children[i]
            if any(n is leaf for n in _walk(ch)):
                return pos
        return None

    def mark(self, root: SimLoop) -> None:
        for node in _walk(root):
            if not isinstance(node, SimLoop):
                continue
            leaves = tuple(n for n in _walk(node) if isinstance(n, Leaf))
            node.leaves = leaves
            node.arrays = frozenset(lf.array for lf in leaves)
            node.xfer_ids = frozenset(n.id for n in _walk(node) if isinstance(n, Xfer))
            node.sub_loops = frozenset(id(n) for n in _walk(node) if isinstance(n, SimLoop))
            node.dram = bool(node.xfer_ids)
            if node.kind == "group" and node.var is not None:
                g = self.m.groups[node.group]
                node.carry = g.mode != "sequential" and max(node.stages, default=0) > 0
                node.serial = g.mode == "tile-serial" and any(
                    (isinstance(c, SimLoop) and c.kind == "fold") or isinstance(c, Leaf)
                    for c in node.children
                )
                node.last_guard = any(v in lf.guard for lf in leaves for v in node.vars)
        for leaf in self.leaves:
            if leaf.partner is not None:
                for lp in leaf.loops:
                    if lp.kind == "fold" and math.ceil(self.ext(lp.var or "") / lp.tile) > 1:
                        local = self.local_extent(
                            [x for x in leaf.loops if x.kind == "group"], lp.var or ""
                        )
                        if math.ceil(local / lp.tile) > 1:
                            raise EinError.plain(
                                f"interleaved {leaf.name} spans {math.ceil(local / lp.tile)} "
                                f"folds of {lp.var.upper() if lp.var else '?'} per iteration",
                                hint="interleave ops of one fold: add a group loop with the "
                                "array's tile",
                            )

    def merge(self, root: SimLoop) -> None:
        """Perfectly nested group loops become one product loop (the engine's steady-state
        search then covers them at once): a loop whose only child is a loop, at stage 0,
        over variables no op carries a recurrence over or runs at the last iteration of."""
        carried = {op.carried for lf in self.leaves for op in lf.operands if op.carried}
        guarded = {v for lf in self.leaves for v in lf.guard}
        for node in list(_walk(root)):
            if not isinstance(node, SimLoop):
                continue
            while (
                node.kind == "group"
                and node.var is not None
                and len(node.children) == 1
                and isinstance(node.children[0], SimLoop)
                and node.stages == [0]
            ):
                child = node.children[0]
                assert isinstance(child, SimLoop)
                if (
                    child.kind != "group"
                    or child.var is None
                    or set(child.vars) & set(node.vars)  # a tile of a tile stays nested
                    or any(v in carried or v in guarded for v in (*node.vars, *child.vars))
                ):
                    break
                node.axes = (*node.axes, (child.var, child.tile), *child.axes)
                node.children, node.stages = child.children, child.stages
                node.order = child.order
                node.pairs = child.pairs
                node.dram_level = node.dram_level and child.dram_level


class _Lowering(_Context):
    """The phases, in order, and the checks between them."""

    def lower(self) -> SimProgram:
        root = _TreeBuilder(self).build()
        self.root = root
        self.finish(root)
        flow = _Dataflow(self)
        flow.operands()
        flow.flows()
        flow.same_pes()
        moves = _Transfers(self)
        moves.transfers(root)
        order = _Ordering(self)
        order.orders(root)
        order.check_stages()
        staging = sum(self.slots(x) * self.xfer_bytes(x) for x in self.xfers)
        cap = self.arch.buffer.bytes
        if staging > cap:
            raise BufferOverflowError.make(
                f"the double-buffered DRAM tiles need {staging} bytes, more than the "
                f"{cap}-byte global buffer of {self.arch.name}",
                hint="add loops with smaller tiles to the mapping, or --set buffer.bytes=...",
            )
        moves.guard_xfers()
        plan = _BufferPlan(self)
        resident, kept = plan.resident()
        need = staging + resident
        spill = 0.0
        if need > cap:
            spill = 1.0 - cap / need
            moves.spills(root, kept, spill)
            moves.guard_xfers()
            order.orders(root)
        order.merge(root)
        self.finish(root)
        order.mark(root)
        moves.wait_depths()
        regs = plan.registers()
        self.check_registers(regs)
        spilled = frozenset(kept) if spill > 0 else frozenset()
        return SimProgram(
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
            min(need, cap) if spill else need,
            self.timing,
            self.source,
            self.model,
            staging,
            resident,
            spilled,
            regs,
        )

    @staticmethod
    def slots(x: Xfer) -> int:
        """Staging slots of a DRAM tile: two (the next tile arrives while this one is
        read), or one for a tile read once for the whole group (under no loop: there is no
        next tile to prefetch, as for a staged input that no loop of its group indexes)."""
        return 1 if not x.write and all(lp.var is None for lp in x.loops) else 2

    def check_registers(self, regs: Mapping[str, int]) -> None:
        for arr, words in regs.items():
            arch_arr = self.arch.array2d if arr == "2d" else self.arch.array1d
            if arch_arr is not None and words > arch_arr.registers:
                raise EinError.plain(
                    f"the {arr.upper()} PEs would hold {words} words in registers (tiles in "
                    f"flight across pipeline stages), more than their {arch_arr.registers}",
                    hint="use fewer pipeline stages, place a tensor in the buffer, or "
                    f"--set array{arr}.registers=...",
                )


def lower(
    cascade: Cascade,
    arch: Arch,
    mapping: SimMapping,
    dims: Mapping[str, int],
    timing: str = "default",
    model: ModelOptions = FAITHFUL,
    work: Work | None = None,
) -> SimProgram:
    """The program a mapping makes of a cascade on an architecture at these dims.

    A loop tile written ``fit`` becomes the largest tile (a divisor count of the inner tile)
    with which the buffer holds every staged and kept tile without spilling.  ``work``
    memoizes the programs (and the tiles a fit tries) of one request and counts them.
    """
    work = work if work is not None else Work()
    key = (work.identity(cascade), arch, mapping, frozen_dims(dims), timing, model)
    return work.memo(
        "programs", key, lambda: _lower(cascade, arch, mapping, dims, timing, model, work)
    )


def _lower(
    cascade: Cascade,
    arch: Arch,
    mapping: SimMapping,
    dims: Mapping[str, int],
    timing: str,
    model: ModelOptions,
    work: Work,
) -> SimProgram:
    if model.dram_bandwidth is not None:
        arch = dataclasses.replace(arch, dram_bandwidth=model.dram_bandwidth)
    if model.name != "faithful" and timing != "default":
        raise EinError.plain(f"--timing {timing} needs --model faithful")
    fits = [
        (gi, li) for gi, g in enumerate(mapping.groups) for li, (_, t) in enumerate(g.loops)
        if t == FIT
    ]  # fmt: skip
    try:
        if not fits:
            return _once(cascade, arch, mapping, dims, timing, model, work)
        return _fit(cascade, arch, mapping, dims, timing, model, fits, work)
    except EinError as err:
        if mapping.source is None:
            raise
        raise located(err, Source.from_path(mapping.source)) from None


def _once(
    cascade: Cascade,
    arch: Arch,
    mapping: SimMapping,
    dims: Mapping[str, int],
    timing: str,
    model: ModelOptions,
    work: Work,
) -> SimProgram:
    """One lowering of a mapping without ``fit`` tiles, memoized in ``work``.  The tree does
    not depend on the timing or the cost model (the engine reads them from the program, and
    never changes the tree): the programs of one mapping under several share it."""
    key = (work.identity(cascade), arch, mapping, frozen_dims(dims))
    prog = work.memo(
        "lowerings", key, lambda: _Lowering(cascade, arch, mapping, dims, timing, model).lower()
    )
    if (prog.timing, prog.model) != (timing, model):
        prog = dataclasses.replace(prog, timing=timing, model=model)
    return prog


def _fit(
    cascade: Cascade,
    arch: Arch,
    mapping: SimMapping,
    dims: Mapping[str, int],
    timing: str,
    model: ModelOptions,
    fits: list[tuple[int, int]],
    work: Work,
) -> SimProgram:
    b = bind(cascade, dims)
    choices: list[list[int]] = []
    for gi, li in fits:
        g = mapping.groups[gi]
        var = g.loops[li][0]
        n = b.extents[cascade.var_ranks[var]]
        inner = [t for v, t in g.loops[li + 1 :] if v == var and t > 0]
        unit = inner[0] if inner else 1
        count = -(-n // unit)
        choices.append([unit * d for d in sorted(_divisors(count), reverse=True)])

    def attempt(combo: tuple[int, ...]) -> SimProgram | None:
        groups = list(mapping.groups)
        for (gi, li), tile in zip(fits, combo, strict=True):
            g = groups[gi]
            loops = list(g.loops)
            loops[li] = (loops[li][0], tile)
            groups[gi] = dataclasses.replace(g, loops=tuple(loops))
        m = dataclasses.replace(mapping, groups=tuple(groups))
        try:
            prog = _once(cascade, arch, m, dims, timing, model, work)
        except BufferOverflowError:
            return None
        tiles = {
            f"{mapping.groups[gi].loops[li][0].upper()}": t
            for (gi, li), t in zip(fits, combo, strict=True)
        }
        return dataclasses.replace(prog, tiles=tiles)

    # every fitted loop takes the same rank among its candidates (largest first); a larger
    # tile never needs less buffer, so the largest rank that fits is found by bisection
    depth = min(len(c) for c in choices)

    def at(rank: int) -> tuple[int, ...]:
        return tuple(c[min(rank + len(c) - depth, len(c) - 1)] for c in choices)

    lo, hi = 0, depth - 1
    found: SimProgram | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        prog = attempt(at(mid))
        if prog is not None and prog.spill_fraction == 0:
            found, hi = prog, mid - 1
        else:
            lo = mid + 1
    if found is not None:
        return found
    smallest = attempt(at(depth - 1))
    if smallest is None:
        raise BufferOverflowError.make(
            "no tile fits the global buffer", hint="--set buffer.bytes=... or smaller tiles"
        )
    return smallest


def _divisors(n: int) -> list[int]:
    out: set[int] = set()
    for i in range(1, math.isqrt(n) + 1):
        if n % i == 0:
            out.update((i, n // i))
    return sorted(out)
