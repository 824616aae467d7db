"""Labelled tiles: a value's Triton code with its register axes (in the kernel's canonical
order) and dtype, and the operations that align, convert and combine them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from einsumcc.schedule.nodes import Node
from einsumcc.schedule.schedule import Loop
from einsumcc_triton import kernel_ast as ka
from einsumcc_triton.kernel_info import TL_DTYPE
from einsumcc_triton.part import Part


@dataclass(frozen=True)
class Val:
    """A labelled tile: Triton code, its register axes (canonical order) and its dtype."""

    code: ka.Expr
    axes: tuple[str, ...]
    dtype: str  # f16 bf16 f32 f64 i32 i1 (a mask); "lit" for a Python float literal


@dataclass
class Segment:
    """Where code is being emitted: program level, or a loop body of some kind."""

    loop: Loop | None = None
    partial: bool = True  # partial tiles: classified conditions and bounds are masked
    cache: dict[object, Val] = field(default_factory=dict)


class TileValues(Part):
    """Aligning tiles by axes (inserting ``None`` axes, broadcasting, transposing), the
    compute dtype, pointwise operations and naming values."""

    def expand(self, v: Val, axes: tuple[str, ...]) -> ka.Expr:
        if not v.axes or v.axes == axes:
            return v.code
        assert all(a in axes for a in v.axes), (v.axes, axes)
        return ka.Subscript(
            v.code, tuple(ka.Slice() if a in v.axes else ka.Literal(None) for a in axes)
        )

    def expand_to(self, v: Val, axes: tuple[str, ...]) -> ka.Expr:
        """Like :meth:`expand`, but ``axes`` may be in a non-canonical order (a load's)."""
        if not v.axes or v.axes == axes:
            return v.code
        if tuple(a for a in axes if a in v.axes) != v.axes:
            if len(v.axes) != 2 or len(axes) != 2:
                raise self.scope.error(None, f"cannot reorder axes {v.axes} to {axes}")
            return ka.call("tl.trans", v.code)
        return ka.Subscript(
            v.code, tuple(ka.Slice() if a in v.axes else ka.Literal(None) for a in axes)
        )

    def union(self, *axes: tuple[str, ...]) -> tuple[str, ...]:
        present = {a for ax in axes for a in ax}
        return tuple(a for a in self.scope.order if a in present)

    def compute(self, v: Val) -> Val:
        """``v`` in the compute dtype (fp32, or fp64 when the cascade has f64 tensors)."""
        if v.dtype in (self.low.compute, "lit"):
            return v
        return Val(
            ka.FuncCall(ka.Attribute(v.code, "to"), (ka.attr("tl", TL_DTYPE[self.low.compute]),)),
            v.axes,
            self.low.compute,
        )

    def binop(self, op: str, a: Val, b: Val) -> Val:
        a, b = self.compute(a), self.compute(b)
        axes = self.union(a.axes, b.axes)
        dtype = self.low.compute if "lit" not in (a.dtype, b.dtype) or a.dtype != b.dtype else "lit"
        return Val(ka.BinaryOp(op, self.expand(a, axes), self.expand(b, axes)), axes, dtype)

    def where(self, cond: Val, a: Val, b: Val) -> Val:
        a, b = self.compute(a), self.compute(b)
        axes = self.union(cond.axes, a.axes, b.axes)
        code = ka.call(
            "tl.where", self.expand(cond, axes), self.expand(a, axes), self.expand(b, axes)
        )
        return Val(code, axes, self.low.compute)

    def name_val(self, hint: str, v: Val) -> Val:
        if isinstance(v.code, ka.PyName | ka.Literal):
            return v
        return Val(self.scope.assign(hint, v.code), v.axes, v.dtype)

    def shape(self, axes: tuple[str, ...]) -> ka.Expr:
        return ka.List(tuple(self.scope.blocksize(a) for a in axes))

    def broadcast(self, v: Val, axes: tuple[str, ...]) -> Val:
        """``v`` with exactly ``axes`` (a loop-carried value must keep its shape)."""
        if v.axes == axes:
            return v
        code = self.expand(v, axes)
        if not axes:
            return Val(code, axes, v.dtype)
        return Val(ka.call("tl.broadcast_to", code, self.shape(axes)), axes, v.dtype)

    def full(self, axes: tuple[str, ...], value: float, dtype: str) -> ka.Expr:
        return ka.call(
            "tl.full",
            self.shape(axes) if axes else ka.List(()),
            ka.fconst(value) if dtype != "i32" else ka.Literal(int(value)),
            ka.attr("tl", TL_DTYPE[dtype]),
        )

    def conj(self, parts: Iterable[Val]) -> Val | None:
        out: Val | None = None
        for p in parts:
            if out is None:
                out = p
                continue
            axes = self.union(out.axes, p.axes)
            out = Val(ka.BinaryOp("&", self.expand(out, axes), self.expand(p, axes)), axes, "i1")
        return out

    def state_axes(self, p: Node) -> tuple[str, ...]:
        return self.union(
            tuple(v for v in p.variables if v in self.scope.lanes and v != self.scope.loop_var)
        )
