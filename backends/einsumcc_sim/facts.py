"""What the engine derives from a program once and looks up for every op: op shapes, the
counters one op adds, the words a transfer moves, and the static relations between leaves
and transfers.  Nothing here changes while the engine runs (it is a cache of the program)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from einsumcc_sim.program import (
    Leaf,
    Node,
    SimLoop,
    SimProgram,
    Xfer,
    chain_leaf,
    op_cycles,
    op_shape,
)
from einsumcc_sim.template import OpShape

Plan = list[tuple[tuple[tuple[str, int], ...], int]]


class ProgramFacts:
    def __init__(self, prog: SimProgram) -> None:
        self.p = prog
        self._shapes: dict[tuple[int, int, tuple[tuple[str, int], ...]], OpShape] = {}
        self._common: dict[tuple[int, int], int] = {}
        self._region_plan: dict[tuple[Any, str], Plan] = {}
        self._partner_k: dict[int, int] = {}
        self._incs: dict[tuple[int, OpShape], tuple[tuple[str, float], ...]] = {}
        self._xwords: dict[tuple[int, tuple[int, ...]], int] = {}

    def common(self, a: Leaf, b: Leaf) -> int:
        """How many loops (outermost first) two leaves share."""
        key = (a.id, b.id)
        n = self._common.get(key)
        if n is None:
            n = 0
            for x, y in zip(a.loops, b.loops, strict=False):
                if x is not y:
                    break
                n += 1
            self._common[key] = n
        return n

    def ext(self, leaf: Leaf, ranges: Mapping[str, tuple[int, int]]) -> dict[str, int]:
        out = {}
        for k in leaf.kernels:
            for v in k.space:
                out[v] = ranges[v][1] if v in ranges else self.p.extent(v)
        return out

    def shape(self, leaf: Leaf, ext: dict[str, int], paired: int = 0) -> OpShape:
        key = (leaf.id, paired, tuple(sorted(ext.items())))
        s = self._shapes.get(key)
        if s is None:
            s = op_shape(self.p, leaf, ext, paired)
            self._shapes[key] = s
        return s

    def partner_k(self, leaf: Leaf) -> int:
        k = self._partner_k.get(leaf.id)
        if k is None:
            assert leaf.partner is not None
            arr = self.p.arch.array(leaf.partner.array)
            k = max(1, op_cycles(arr, leaf.partner.kernel))
            self._partner_k[leaf.id] = k
        return k

    # ------------------------------------------------------------ counters
    def increments(
        self, leaf: Leaf, s: OpShape, ext: dict[str, int]
    ) -> tuple[tuple[str, float], ...]:
        """What one op adds to the counters (cached per leaf and shape)."""
        key = (leaf.id, s)
        inc = self._incs.get(key)
        if inc is None:
            inc = self._increments(leaf, s, ext)
            self._incs[key] = inc
        return inc

    def _increments(
        self, leaf: Leaf, s: OpShape, ext: dict[str, int]
    ) -> tuple[tuple[str, float], ...]:
        arch = self.p.arch
        arr = arch.array(leaf.array)
        inc: dict[str, float] = {}

        def add(name: str, v: float) -> None:
            inc[name] = inc.get(name, 0.0) + v

        pes = s.u_r * s.u_c
        key_arr = "array2d" if leaf.array == "2d" else "array1d"
        for k in leaf.kernels:
            steps = s.T
            kc = op_cycles(arr, k)
            points = pes * steps
            add(f"busy.{k.name}", steps * max(kc, 1))
            add(f"pe_cycles.{k.name}", points * max(kc, 1))
            add(f"pe_cycles.{leaf.array}", points * max(kc, 1))
            add(f"ops.{k.name}", 1)
            for o, n in k.ops:
                cost = arr.op(o)
                if cost is None:
                    continue
                for act, cnt in cost.actions:
                    add(f"act.{key_arr}.{act}", points * n * cnt)
            add(f"act.{key_arr}.rf_read", points * len(k.reads))
            add(f"act.{key_arr}.rf_write", points)
            for op in leaf.operands:
                if (
                    op.kernel == k.name
                    and op.place not in ("registers", "stream")
                    and op.kind != "forward"
                ):
                    words = self.region(op.access, ext, op.access.tensor)
                    add("buffer.read_words", words)
                    add(f"buffer.read.{op.tensor}", words)
            out = self.p.source_of.get(k.output.tensor, k.output.tensor)
            if self.p.placement.get(out) not in ("registers", "stream"):
                words = self.region(k.output, ext, k.output.tensor)
                add("buffer.write_words", words)
                add(f"buffer.write.{out}", words)
        return tuple(inc.items())

    def region(self, acc: Any, ext: Mapping[str, int], tensor: str) -> int:
        """Elements of ``tensor`` that ``acc`` touches when each variable spans ``ext``."""
        plan = self._region_plan.get((acc, tensor))
        if plan is None:
            plan = self._plan(acc, tensor)
            self._region_plan[(acc, tensor)] = plan
        total = 1
        for coeffs, cap in plan:
            span = sum(abs(cf) * (ext.get(v, 1) - 1) for v, cf in coeffs) + 1
            total *= min(span, cap)
        return total

    def _plan(self, acc: Any, tensor: str) -> Plan:
        from einsumcc.ir.bind import index_coefficients

        names = {t.name for t in self.p.cascade.tensors}
        t = self.p.cascade.tensor(tensor) if tensor in names else None
        plan = []
        for pos, ix in enumerate(acc.indices):
            if t is not None and t.dims[pos].iterative:
                continue
            coeffs, _ = index_coefficients(ix, self.p.bindings.extents)
            cap = self.p.bindings.extents[t.dims[pos].rank] if t is not None else 1 << 62
            plan.append((tuple(sorted(coeffs.items())), cap))
        return plan

    # ------------------------------------------------------------ transfers
    def xfer_words(self, x: Xfer, ranges: Mapping[str, tuple[int, int]]) -> int:
        """The words one transfer of ``x`` moves at these ranges."""
        sizes = tuple(r[1] for _, r in sorted(ranges.items()))
        wkey = (x.id, sizes)
        words = self._xwords.get(wkey, -1)
        if words < 0:
            ext: dict[str, int] = {}
            for k, _ in x.accesses:
                for v in k.space:
                    ext[v] = ranges[v][1] if v in ranges else self.p.extent(v)
            words = max(self.region(acc, ext, acc.tensor) for _, acc in x.accesses)
            self._xwords[wkey] = words
        return words

    def itemsize(self, tensor: str) -> int:
        names = {t.name for t in self.p.cascade.tensors}
        if tensor in names:
            return self.p.cascade.tensor(tensor).dtype.itemsize
        return self.p.kernels[tensor].itemsize

    def indexed(self, xid: int, pos: int) -> bool:
        """Whether the loop at ``pos`` around transfer ``xid`` moves its tile."""
        x = self.xfers[xid]
        return pos < len(x.loops) and bool(x.key_vars.intersection(x.loops[pos].vars))

    @functools.cached_property
    def xfers(self) -> dict[int, Xfer]:
        return {x.id: x for x in self.p.xfers}

    # ------------------------------------------------------------ relations
    @functools.cached_property
    def p_chain(self) -> dict[int, Node]:
        """Leaf id -> the child of a loop whose single-leaf chain it ends (paired ops)."""
        out: dict[int, Node] = {}
        stack: list[Node] = [self.p.root]
        while stack:
            n = stack.pop()
            if isinstance(n, SimLoop):
                for ch in n.children:
                    lf = chain_leaf(ch)
                    if lf is not None and lf.partner is not None:
                        out.setdefault(lf.id, ch)
                    stack.append(ch)
        return out

    @functools.cached_property
    def downstream(self) -> dict[int, list[Leaf]]:
        """Leaf id -> the ops on the other array, at the same pipeline stage, that read its
        result from the buffer."""
        out: dict[int, list[Leaf]] = {}
        for c in self.p.leaves:
            for op in c.operands:
                p = op.producer
                if (
                    p is None
                    or p.array == c.array
                    or op.kind in ("forward", "inplace", "down", "up")
                    or op.carried is not None
                    or op.same_pes
                ):
                    continue
                if p.stage != c.stage:
                    continue  # the mapping's pipeline stages pace them
                if c not in out.setdefault(p.id, []):
                    out[p.id].append(c)
        return out

    @functools.cached_property
    def stores(self) -> dict[int, list[Xfer]]:
        """Leaf id -> the DRAM write streams it fills (none under SCALE-Sim's timing, whose
        runs are stall-free)."""
        out: dict[int, list[Xfer]] = {}
        if self.p.timing == "scalesim":
            return out
        for x in self.p.xfers:
            if x.write and x.producer is not None:
                out.setdefault(x.producer.id, []).append(x)
        return out
