"""(v2) Run-time skipping of the tiles that a data filter empties.

A data filter (``where SEGK[m] == SEGQ[p]``) cannot be classified at compile time, so every
key tile used to run.  When the schedule proved (``TileClasses.data_skip``) that an empty tile
is a no-op for every row that keeps a point somewhere, the kernel

1. checks, before the loop, that every row of the program keeps a point (a pass over the
   filter alone: ids and affine conditions, no scores); a row without any point holds what
   evaluating every tile gives, so a program with such a row skips nothing;
2. computes once the range ``[rmin, rmax]`` of the row-side ids (``SEGQ`` over the
   program's rows) and, per key tile, the range of the key-side ids: a tile whose ranges
   cannot meet under the comparison holds no point and is skipped, and the affine classes'
   empty tiles are left out of the loop bounds.

For sorted segment ids the test is exact: the tiles that run are those with a point.
"""

from __future__ import annotations

from einsumcc.schedule.schedule import Loop
from einsumcc.schedule.tiles import DataTileTest, data_tile_test, same_rank
from einsumcc_triton import kernel_ast as ka
from einsumcc_triton.part import Part
from einsumcc_triton.values import Segment, Val

BIG = {"i32": 2**31 - 1, "i64": 2**63 - 1}


class TileTest(Part):
    """The row check and the per-tile id-range test of a loop with ``data_skip``."""

    def spec(self, lp: Loop) -> DataTileTest | None:
        return data_tile_test(self.prog, self.k, lp) if lp.tiles.data_skip else None

    def _extreme(self, v: Val, dtype: str, op: str, mask: ka.Expr | None) -> ka.Expr:
        """``tl.min`` / ``tl.max`` of the lanes of ``v`` where ``mask`` holds."""
        big: ka.Expr = ka.Literal(BIG[dtype]) if dtype in BIG else ka.fconst(float("inf"))
        neutral: ka.Expr = big if op == "min" else ka.UnaryOp("-", big)
        code = v.code if mask is None else ka.call("tl.where", mask, v.code, neutral)
        return self.scope.assign(f"ids_{op}", ka.call(f"tl.{op}", code))

    def id_range(self, test: DataTileTest, row: bool) -> tuple[ka.Expr, ka.Expr]:
        """min and max of one side's ids over the valid lanes here."""
        acc = test.row if row else test.key
        v = self.memory.load(acc)
        mask = self.masks.access_mask(acc.tensor, acc.indices, v.axes)
        dtype = self.low.tensor_dtype(acc.tensor)
        return self._extreme(v, dtype, "min", mask), self._extreme(v, dtype, "max", mask)

    def empty(self, test: DataTileTest, rows: tuple[ka.Expr, ka.Expr]) -> ka.Expr:
        """The current key tile holds no point: the ranges cannot meet under ``key op row``."""
        kmin, kmax = self.id_range(test, row=False)
        rmin, rmax = rows
        lt = ka.BinaryOp
        if test.op == "==":
            return lt("|", lt("<", kmax, rmin), lt(">", kmin, rmax))
        return {
            "<": lt(">=", kmin, rmax),
            "<=": lt(">", kmin, rmax),
            ">": lt("<=", kmax, rmin),
            ">=": lt("<", kmax, rmin),
        }[test.op]

    def rows_checked(self, lp: Loop, start: ka.Expr, end: ka.Expr) -> ka.Expr:
        """A pass over the filter alone: 1 when every valid row of the program keeps a point
        in some tile of ``[start, end)``."""
        assert lp.tiles.filtered is not None
        n = self.prog.node(lp.tiles.filtered)
        row_axes = self.values.union(
            tuple(
                v
                for v in n.variables
                if v in self.scope.lanes and not same_rank(self.prog, self.k, lp, v)
            )
        )
        alive = self.scope.names.fresh("rows_alive")
        self.scope.emit(ka.Assign(ka.name(alive), self.values.full(row_axes, 0, "i32")))
        var = self.scope.names.fresh(f"{lp.var}_check")
        self.scope.stack.append([])
        saved_seg = self.scope.seg
        self.scope.seg = Segment(lp, True)
        self.loops.enter_tile(lp, var)
        conds = [self.index.cond_val(c) for c in n.guard]
        conds += [self.exprs.condition(d, n) for d in n.data]
        conds += [
            lv
            for a in self.values.union(tuple(n.variables))
            if a in self.scope.lanes and (lv := self.masks.lane_valid(a)) is not None
        ]
        mask = self.values.conj(conds)
        assert mask is not None
        axes = self.values.union(mask.axes, row_axes)
        code: ka.Expr = ka.FuncCall(
            ka.Attribute(self.values.broadcast(mask, axes).code, "to"), (ka.attr("tl", "int32"),)
        )
        for i in reversed(range(len(axes))):
            if axes[i] not in row_axes:
                code = ka.call("tl.max", code, ka.Literal(i))
        self.scope.emit(ka.Assign(ka.name(alive), ka.call("tl.maximum", ka.name(alive), code)))
        self.loops.leave_tile(lp)
        self.scope.seg = saved_seg
        body = tuple(self.scope.stack.pop())
        self.scope.emit(ka.For(var, start, end, body))
        valid = self.values.conj(
            lv for a in row_axes if (lv := self.masks.lane_valid(a)) is not None
        )
        live: ka.Expr = ka.name(alive)
        if valid is not None:
            live = ka.call("tl.where", self.values.expand(valid, row_axes), live, ka.Literal(1))
        if row_axes:
            live = ka.call("tl.min", live)
        return self.scope.assign("rows_ok", ka.BinaryOp(">", live, ka.Literal(0)))
