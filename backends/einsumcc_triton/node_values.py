"""The value of each schedule node: maps, reductions (``tl.sum``/``tl.max``/..., or
``tl.dot`` for a contraction of two 2-D tiles) and survive indicators."""

from __future__ import annotations

from typing import TYPE_CHECKING

from einsumcc.ir.nodes import Access, Expr, free_variables
from einsumcc.schedule.contraction import Contraction, contraction
from einsumcc.schedule.nodes import Node, NodeKind
from einsumcc_triton import kernel_ast as ka
from einsumcc_triton.kernel_info import IDENTITY, TL_DTYPE, KernelParam
from einsumcc_triton.nan_class import nan_class
from einsumcc_triton.part import Part
from einsumcc_triton.values import Val

if TYPE_CHECKING:
    from einsumcc_triton.scope import KernelScope


def _is_load(scope: KernelScope, e: Access) -> bool:
    p = scope.prog.producer(e.tensor)
    return p is None or p.key not in scope.local_keys()


class NodeValues(Part):
    """Node values: the per-tile value of a node, or the partial result an accumulator of
    the enclosing loop adds."""

    def node_value(
        self, n: Node
    ) -> tuple[Val | None, tuple[ka.Expr, ka.Expr, dict[str, ka.Expr]] | None]:
        """The node's value here: per-tile value, or the partial result an accumulator adds."""
        if n.kind is NodeKind.MAP:
            return self.exprs.apply_fill(n, self.exprs.expr(n.body, n)), None
        if n.kind is NodeKind.SURVIVE:
            return self.survive(n), None
        v, dot = self.reduce(n)
        accumulates = self.scope.loop_var is not None and self.scope.loop_var in n.reduced
        if not accumulates and n.top:
            v = self.exprs.apply_fill(n, v)
        return v, dot

    def survive(self, n: Node) -> Val:
        parts = [self.index.cond_val(c) for c in self.masks.active(n, n.mask)]
        reduced_lanes = [v for v in n.reduced if v in self.scope.lanes]
        for v in reduced_lanes:
            lv = self.masks.lane_valid(v)
            if lv is not None:
                parts.append(lv)
        mask = self.values.conj(parts)
        axes = self.values.union(tuple(v for v in n.space if v in self.scope.lanes))
        if mask is None:
            ind = (
                Val(self.values.full(axes, 1, "i32"), axes, "i32")
                if axes
                else Val(ka.Literal(1), (), "i32")
            )
        else:
            code = (
                ka.call("tl.where", self.values.expand(mask, axes), ka.Literal(1), ka.Literal(0))
                if axes
                else ka.call("tl.where", mask.code, ka.Literal(1), ka.Literal(0))
            )
            if mask.axes != axes and axes:
                code = ka.call("tl.broadcast_to", code, self.values.shape(axes))
            ind = Val(code, axes, "i32")
        for v in sorted(reduced_lanes, key=lambda a: -ind.axes.index(a)):
            i = ind.axes.index(v)
            ind = Val(
                ka.call("tl.max", ind.code, ka.Literal(i)),
                tuple(a for a in ind.axes if a != v),
                "i32",
            )
        return self.values.name_val(n.key.replace(".", "_"), ind)

    def reduce(self, n: Node) -> tuple[Val, tuple[ka.Expr, ka.Expr, dict[str, ka.Expr]] | None]:
        lane_blocks = {v: self.k.axis(v).block for v in self.scope.lanes}
        con = contraction(n, lane_blocks)
        if con is not None:
            return self.dot(n, con)
        body = self.values.compute(self.exprs.expr(n.body, n))
        reduced_lanes = [v for v in n.reduced if v in self.scope.lanes]
        op = n.op or "sum"
        parts = [self.index.cond_val(c) for c in self.masks.active(n, n.mask)]
        for v in reduced_lanes:
            lv = self.masks.lane_valid(v)
            if lv is not None:
                parts.append(lv)
        axes = self.values.union(body.axes, tuple(reduced_lanes))
        if body.axes != axes:
            body = Val(
                ka.call("tl.broadcast_to", self.values.expand(body, axes), self.values.shape(axes)),
                axes,
                body.dtype,
            )
        mask = self.values.conj(parts)
        if mask is not None:
            body = self.values.where(mask, body, Val(ka.fconst(IDENTITY[op]), (), "lit"))
        # scalar reduced variables that the loop does not carry (extent-1 whole ranks) are a
        # single point; the loop variable is accumulated by the caller
        val = body
        nan_free = self.nan_free(n.body, n)
        for v in sorted(reduced_lanes, key=lambda a: -val.axes.index(a)):
            i = ka.Literal(val.axes.index(v))
            if op == "sum":
                code: ka.Expr = ka.call("tl.sum", val.code, i)
            elif op in ("max", "min"):
                if nan_free:
                    code = ka.call(f"tl.{op}", val.code, i)
                else:
                    helper = "_ein_nanmax" if op == "max" else "_ein_nanmin"
                    self.low.helpers.add(helper)
                    code = ka.call(helper, val.code, i)
            else:
                self.low.helpers.add("_ein_mul")
                code = ka.call("tl.reduce", val.code, i, ka.name("_ein_mul"))
            val = Val(code, tuple(a for a in val.axes if a != v), val.dtype)
        return self.values.name_val(n.key.replace(".", "_"), val), None

    def nan_free(self, e: Expr, reader: Node) -> bool:
        """``e`` cannot be NaN (for finite inputs): max/min reductions need no NaN check."""
        return nan_class(self.scope, e, reader) != "nan"

    def operand(self, e: Expr, order: tuple[str, str], reader: Node) -> Val:
        if isinstance(e, Access):
            p = self.prog.producer(e.tensor)
            if p is None or p.key not in self.scope.local_keys():
                return self.memory.load(e, order)
        v = self.exprs.expr(e, reader)
        if v.axes == order:
            return v
        assert set(v.axes) == set(order), (v.axes, order)
        return Val(ka.call("tl.trans", v.code), order, v.dtype)

    def dot(
        self, n: Node, con: Contraction
    ) -> tuple[Val, tuple[ka.Expr, ka.Expr, dict[str, ka.Expr]] | None]:
        """``con`` as a tl.dot of a (r, k) and a (k, c) tile, r before c in the canonical
        order; returns (value, None), or (None, operands) when an accumulator can take
        ``tl.dot(a, b, acc)`` directly."""
        r, c = (
            (con.i, con.j)
            if self.scope.order.index(con.i) < self.scope.order.index(con.j)
            else (con.j, con.i)
        )
        k = con.k
        x_expr, y_expr = (con.a, con.b) if r in free_variables(con.a) else (con.b, con.a)
        x = self.operand(x_expr, (r, k), n)
        y = self.operand(y_expr, (k, c), n)
        # zero the contracted lanes that are not points (padding, partial tiles) and the
        # points a filter removes, in the operand that holds the condition's axes
        masks_x: list[Val] = []
        masks_y: list[Val] = []
        kv = self.masks.lane_valid(k)
        loaded_x = isinstance(x_expr, Access) and _is_load(self.scope, x_expr)
        loaded_y = isinstance(y_expr, Access) and _is_load(self.scope, y_expr)
        if kv is not None:
            if not loaded_x:
                masks_x.append(kv)
            if not loaded_y:
                masks_y.append(kv)
        for cond in self.masks.active(n, n.mask):
            cv = self.index.cond_val(cond)
            (masks_x if set(cv.axes) <= set(x.axes) else masks_y).append(cv)
        mx = self.values.conj(masks_x)
        my = self.values.conj(masks_y)
        if mx is not None:
            x = Val(
                ka.call("tl.where", self.values.expand_to(mx, x.axes), x.code, ka.fconst(0.0)),
                x.axes,
                x.dtype,
            )
        if my is not None:
            y = Val(
                ka.call("tl.where", self.values.expand_to(my, y.axes), y.code, ka.fconst(0.0)),
                y.axes,
                y.dtype,
            )
        half = ("f16", "bf16")
        kwargs: dict[str, ka.Expr] = {}
        if x.dtype in half and y.dtype == x.dtype:
            pass
        elif x.dtype in half and y.dtype not in half and not loaded_y:
            y = Val(
                ka.FuncCall(ka.Attribute(y.code, "to"), (ka.attr("tl", TL_DTYPE[x.dtype]),)),
                y.axes,
                x.dtype,
            )
        elif y.dtype in half and x.dtype not in half and not loaded_x:
            x = Val(
                ka.FuncCall(ka.Attribute(x.code, "to"), (ka.attr("tl", TL_DTYPE[y.dtype]),)),
                x.axes,
                y.dtype,
            )
        else:
            x, y = self.values.compute(x), self.values.compute(y)
            if self.low.compute == "f32":
                kwargs["input_precision"] = ka.Literal("tf32x3")
        x = self.values.name_val(f"{n.key}_a".replace(".", "_"), x)
        y = self.values.name_val(f"{n.key}_b".replace(".", "_"), y)
        if x.dtype == "bf16" and y.dtype == "bf16":
            # Triton 3.9's interpreter multiplies bf16 tiles wrongly (it reads their bits):
            # interpreted runs upcast them, compiled ones keep bf16 tensor cores
            x, y = self.values.name_val(f"{n.key}_a", x), self.values.name_val(f"{n.key}_b", y)
            flag = self.scope.param(("interp",), "INTERPRETED", KernelParam("", "interp"))
            up = [
                ka.Assign(
                    v.code, ka.FuncCall(ka.Attribute(v.code, "to"), (ka.attr("tl", "float32"),))
                )
                for v in (x, y)
            ]
            self.scope.emit(ka.If(flag, tuple(up)))
        plain = not con.outer and con.sign == 1.0
        accumulates = self.scope.loop_var is not None and self.scope.loop_var in n.reduced
        if plain and accumulates:
            return Val(ka.Literal(None), (r, c), self.low.compute), (x.code, y.code, kwargs)
        val = Val(ka.call("tl.dot", x.code, y.code, **kwargs), (r, c), self.low.compute)
        for f in con.outer:
            fv = self.exprs.expr(f.expr, n)
            val = self.values.binop("/" if f.inverse else "*", val, fv)
        if con.sign != 1.0:
            val = Val(ka.UnaryOp("-", val.code), val.axes, val.dtype)
        return self.values.name_val(n.key.replace(".", "_"), val), None

    def program_node(self, key: str) -> None:
        n = self.prog.node(key)
        v, _ = self.node_value(n)
        assert v is not None
        self.scope.env[key] = self.values.name_val(key.replace(".", "_"), v)
        if key in self.k.writes:
            self.memory.store(n.output.tensor, n.output.indices, self.scope.env[key])
