"""Loops over the streamed rank or a recurrence's iterate: accumulators and carried
state, hoisted loads, the partial / full / partial split of the tiles, and the loop bodies."""

from __future__ import annotations

from dataclasses import replace

import sympy

from einsumcc.ir.nodes import var_symbol
from einsumcc.schedule.contraction import contraction
from einsumcc.schedule.nodes import Node, NodeKind
from einsumcc.schedule.schedule import AxisRole, Loop
from einsumcc.schedule.tiles import DataTileTest, Segments, segments
from einsumcc_triton import kernel_ast as ka
from einsumcc_triton.kernel_info import IDENTITY, KernelParam
from einsumcc_triton.part import Part
from einsumcc_triton.tile_test import TileTest
from einsumcc_triton.values import Segment, Val


def _same(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Structurally equal bounds (a loop between bounds not shown equal is kept: it may
    run zero times, which costs nothing)."""
    return bool(a == b or sympy.expand(a - b) == 0)


class LoopEmitter(Part):
    """Emits a loop of the schedule: its state, its segments and their bodies, and what the
    loop leaves behind (accumulated results, final states, the nodes after it)."""

    # the loop being emitted skips a data filter's empty tiles at run time: the test, its
    # spec, the row ids' range, the row check and the skipping segments
    data_skip: tuple[TileTest, DataTileTest, tuple[ka.Expr, ka.Expr], ka.Expr, Segments] | None = (
        None
    )

    def emit_loop(self, lp: Loop) -> None:
        ax = self.k.axis(lp.var)
        self.scope.loop_var = lp.var
        self.scope.emit(ka.Comment(f"loop {lp.number}: pass {lp.number} over {ax.rank}"))
        self.hoist(lp)
        self.init_state(lp)
        self.emit_segments(lp)
        self.scope.loop_var = None
        self.scope.seg = Segment(None, True)
        self.finish(lp)

    def init_state(self, lp: Loop) -> None:
        """Accumulators (the reduction's identity) and recurrence states (the init, written
        out when the state is an output)."""
        for key in lp.accumulators:
            n = self.prog.node(key)
            axes = self.values.union(tuple(v for v in n.variables if v in self.scope.lanes))
            if n.kind is NodeKind.SURVIVE:
                zero = self.values.full(axes, 0, "i32")
            else:
                zero = self.values.full(axes, IDENTITY[n.op or "sum"], self.low.compute)
            self.scope.state[key] = self.scope.names.fresh(f"acc_{key}".replace(".", "_"))
            self.scope.emit(ka.Assign(ka.name(self.scope.state[key]), zero))
        for key in lp.carried:
            n = self.prog.node(key)
            axes = self.values.state_axes(n)
            init = self.values.compute(self.exprs.init_value(n))
            if init.dtype == "lit" and isinstance(init.code, ka.Literal):
                assert isinstance(init.code.value, float)
                code: ka.Expr = self.values.full(axes, init.code.value, self.low.compute)
            else:
                code = self.values.broadcast(init, axes).code
            self.scope.state[key] = self.scope.names.fresh(f"{key}_cur")
            self.scope.emit(ka.Assign(ka.name(self.scope.state[key]), code))
            if key in self.k.writes and key not in lp.recomputed and key not in lp.finals:
                x = var_symbol(lp.var)
                idx = tuple(
                    ix.xreplace({x: -1}) if x in ix.free_symbols else ix for ix in n.output.indices
                )
                self.scope.seg = Segment(None, True)
                self.memory.store(
                    key,
                    tuple(sympy.expand(i) for i in idx),
                    Val(ka.name(self.scope.state[key]), axes, self.low.compute),
                )

    def emit_segments(self, lp: Loop) -> None:
        """The loop itself: one loop over every tile, or partial tiles (masked), full tiles
        (no mask code) and partial tiles again, as the schedule classified them."""
        ax = self.k.axis(lp.var)
        segs = segments(self.k, lp, self.low.extents)
        var_name = self.scope.names.fresh(
            lp.var if ax.role is AxisRole.ITERATE else f"{lp.var}_tile"
        )
        start, full_lo, full_hi, end = self.bounds(lp, segs)
        lead = not _same(segs.start, segs.full_lo)
        trail = not _same(segs.full_hi, segs.end)
        if self.data_skip is not None:
            fast = self.data_skip[4]
            lead = lead or not _same(fast.start, fast.full_lo)
            trail = trail or not _same(fast.full_hi, fast.end)
        needs_partial = bool(lp.tiles.classified) or lp.tiles.boundary
        if not needs_partial:
            self.scope.emit(
                ka.For(var_name, start, end, self.body(lp, var_name, partial=True, full=True))
            )
        else:
            if lp.tiles.proof:
                self.scope.emit(ka.Comment(lp.tiles.proof))
            lo = (
                full_lo
                if isinstance(full_lo, ka.Literal)
                else self.scope.assign(f"{lp.var}_full_lo", full_lo)
            )
            hi = self.scope.assign(f"{lp.var}_full_hi", full_hi)
            if lead:
                self.scope.emit(ka.Comment("partial tiles (masked)"))
                self.scope.emit(ka.For(var_name, start, lo, self.body(lp, var_name, partial=True)))
            self.scope.emit(ka.Comment("full tiles (no mask code)"))
            self.scope.emit(ka.For(var_name, lo, hi, self.body(lp, var_name, partial=False)))
            if trail:
                self.scope.emit(ka.Comment("partial tiles (masked)"))
                self.scope.emit(ka.For(var_name, hi, end, self.body(lp, var_name, partial=True)))

    def bounds(self, lp: Loop, segs: Segments) -> tuple[ka.Expr, ka.Expr, ka.Expr, ka.Expr]:
        """The loop's four bounds; with a data filter's run-time skipping (``data_skip``),
        the affine classes' empty tiles are left out once every row was checked to keep a
        point (``rows_ok``), and the loop is the whole one otherwise."""
        self.data_skip = None
        slow = (segs.start, segs.full_lo, segs.full_hi, segs.end)
        test = TileTest(self.scope)
        spec = test.spec(lp)
        if spec is None:
            s, a, b, e = (self.index.sym(x) for x in slow)
            return s, a, b, e
        skipping = replace(lp, tiles=replace(lp.tiles, skip_leading=True, skip_trailing=True))
        fast = segments(self.k, skipping, self.low.extents)
        ok = test.rows_checked(lp, self.index.sym(fast.start), self.index.sym(fast.end))
        self.data_skip = (test, spec, test.id_range(spec, row=True), ok, fast)
        quick = (fast.start, fast.full_lo, fast.full_hi, fast.end)
        s, a, b, e = (
            self.index.sym(x)
            if _same(x, y)
            else ka.call("tl.where", ok, self.index.sym(y), self.index.sym(x))
            for x, y in zip(slow, quick, strict=True)
        )
        return s, a, b, e

    def finish(self, lp: Loop) -> None:
        """What the loop leaves: accumulated results (filled, stored), final states, and the
        program-level nodes after it."""
        for key in lp.accumulators:
            n = self.prog.node(key)
            axes = self.values.union(tuple(v for v in n.variables if v in self.scope.lanes))
            v = Val(
                ka.name(self.scope.state[key]),
                axes,
                "i32" if n.kind is NodeKind.SURVIVE else self.low.compute,
            )
            if n.top and n.kind is NodeKind.REDUCE:
                v = self.values.name_val(key, self.exprs.apply_fill(n, v))
            self.scope.env[key] = v
            if key in self.k.writes and key not in lp.recomputed:
                self.memory.store(n.output.tensor, n.output.indices, v)
        for key in lp.carried:
            n = self.prog.node(key)
            self.scope.env[key] = Val(
                ka.name(self.scope.state[key]), self.values.state_axes(n), self.low.compute
            )
            if key in lp.finals:
                self.store_final(lp, n)
        for key in lp.after:
            self.nodes.program_node(key)

    def store_final(self, lp: Loop, n: Node) -> None:
        """The last iterate of a recurrence, stored once after the loop (``T[.., X, ..]``)."""
        x = var_symbol(lp.var)
        rank = self.k.axis(lp.var).rank
        last = self.c.rank(rank).symbol - 1
        idx = tuple(sympy.expand(ix.xreplace({x: last})) for ix in n.output.indices)
        self.scope.seg = Segment(None, True)
        self.memory.store(n.output.tensor, idx, self.scope.env[n.key])

    def hoist(self, lp: Loop) -> None:
        """Load the tiles a loop reads that do not depend on the loop variable, once."""
        x = var_symbol(lp.var)
        for key in lp.nodes:
            n = self.prog.node(key)
            for acc in n.reads:
                p = self.prog.producer(acc.tensor)
                if p is not None and p.key in self.scope.local_keys():
                    continue
                if any(x in ix.free_symbols for ix in acc.indices):
                    continue
                con = contraction(n, {v: self.k.axis(v).block for v in self.scope.lanes})
                if con is not None and acc in (con.a, con.b):
                    lanes_a = {
                        str(s)
                        for ix in acc.indices
                        for s in ix.free_symbols
                        if str(s) in self.scope.lanes
                    }
                    r, c = (
                        (con.i, con.j)
                        if self.scope.order.index(con.i) < self.scope.order.index(con.j)
                        else (con.j, con.i)
                    )
                    order = (r, con.k) if r in lanes_a else (con.k, c)
                    self.memory.load(acc, order)
                else:
                    self.memory.load(acc)

    def body(
        self, lp: Loop, var_name: str, partial: bool, full: bool = False
    ) -> tuple[ka.Stmt, ...]:
        self.scope.stack.append([])
        self.scope.seg = Segment(lp, partial and not full)
        if full:
            self.scope.seg.partial = bool(lp.tiles.classified) or lp.tiles.boundary
        saved_env = dict(self.scope.env)
        self.enter_tile(lp, var_name)
        skip = self.data_skip
        if skip is not None:
            test, spec, rows, ok, _ = skip
            empty = test.empty(spec, rows)
            self.scope.stack.append([])
        if self.low.count_tiles:
            self.count_tile(lp)
        nexts: dict[str, Val] = {}
        for key in lp.nodes:
            n = self.prog.node(key)
            v, dot = self.nodes.node_value(n)
            if key in lp.accumulators:
                self.accumulate(n, v, dot)
                continue
            assert v is not None
            v = self.values.name_val(key.replace(".", "_"), v)
            self.scope.env[key] = v
            if key in lp.carried:
                nexts[key] = v
            if key in lp.stores:
                self.memory.store(n.output.tensor, n.output.indices, v)
        for key, v in nexts.items():
            axes = self.values.state_axes(self.prog.node(key))
            self.scope.emit(
                ka.Assign(
                    ka.name(self.scope.state[key]),
                    self.values.broadcast(self.values.compute(v), axes).code,
                )
            )
        if skip is not None:
            inner = tuple(self.scope.stack.pop())
            run = ka.BinaryOp(
                "|",
                ka.BinaryOp("==", ok, ka.Literal(0)),
                ka.BinaryOp("==", empty, ka.Literal(0)),
            )
            self.scope.emit(ka.If(run, inner))
        self.scope.env = saved_env
        self.leave_tile(lp)
        return tuple(self.scope.stack.pop())

    def enter_tile(self, lp: Loop, var_name: str) -> None:
        """The lanes of one tile of the loop: its offsets (and validity) or its index."""
        ax = self.k.axis(lp.var)
        self.scope.stream_valid = None
        if ax.role is AxisRole.STREAM:
            offs = self.scope.assign(
                f"offs_{lp.var}",
                ka.BinaryOp(
                    "+",
                    ka.BinaryOp("*", ka.name(var_name), self.scope.blocksize(lp.var)),
                    ka.call("tl.arange", ka.Literal(0), self.scope.blocksize(lp.var)),
                ),
            )
            self.scope.lanes[lp.var] = offs
            if lp.tiles.boundary and self.scope.seg.partial:
                self.scope.stream_valid = self.scope.assign(
                    f"{lp.var}_ok", ka.BinaryOp("<", offs, self.scope.extent(ax.rank))
                )
        else:
            self.scope.scalars[lp.var] = ka.name(var_name)

    def leave_tile(self, lp: Loop) -> None:
        if self.k.axis(lp.var).role is AxisRole.STREAM:
            self.scope.lanes.pop(lp.var, None)
        else:
            self.scope.scalars.pop(lp.var, None)

    def count_tile(self, lp: Loop) -> None:
        """Test mode: this iteration adds 1 to its loop's slot of the counter buffer."""
        if "$tiles" not in self.scope.params:
            name = self.scope.names.fresh("ein_tiles_ptr")
            self.scope.params["$tiles"] = KernelParam(name, "tiles")
        param = self.scope.params["$tiles"]
        slot = self.low.tile_slots[(self.k.name, lp.number)]
        ptr = ka.BinaryOp("+", ka.name(param.name), ka.Literal(slot))
        self.scope.emit(ka.ExprStmt(ka.call("tl.atomic_add", ptr, ka.Literal(1))))

    def accumulate(
        self, n: Node, v: Val | None, dot: tuple[ka.Expr, ka.Expr, dict[str, ka.Expr]] | None
    ) -> None:
        name = ka.name(self.scope.state[n.key])
        axes = self.values.union(tuple(x for x in n.variables if x in self.scope.lanes))
        if dot is not None:
            a, b, kwargs = dot
            self.scope.emit(ka.Assign(name, ka.call("tl.dot", a, b, name, **kwargs)))
            return
        assert v is not None
        acc = Val(name, axes, "i32" if n.kind is NodeKind.SURVIVE else self.low.compute)
        part = v if n.kind is NodeKind.SURVIVE else self.values.compute(v)
        op = "max" if n.kind is NodeKind.SURVIVE else (n.op or "sum")
        full_axes = self.values.union(acc.axes, part.axes)
        ea, ep = self.values.expand(acc, full_axes), self.values.expand(part, full_axes)
        if op == "sum":
            code: ka.Expr = ka.BinaryOp("+", ea, ep)
        elif op == "prod":
            code = ka.BinaryOp("*", ea, ep)
        else:
            fn = "tl.maximum" if op == "max" else "tl.minimum"
            kw = (
                {}
                if n.kind is NodeKind.SURVIVE
                else {"propagate_nan": ka.attr("tl", "PropagateNan", "ALL")}
            )
            code = ka.call(fn, ea, ep, **kw)
        if full_axes != acc.axes:
            code = ka.call("tl.broadcast_to", code, self.values.shape(acc.axes))
        self.scope.emit(ka.Assign(name, code))
