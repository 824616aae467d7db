"""Loads and stores: pointers from the strides of the tensors passed in, masked where a
lane can lie outside the tensor."""

from __future__ import annotations

import sympy

from einsumcc.ir.nodes import Access, is_var_symbol
from einsumcc_triton import kernel_ast as ka
from einsumcc_triton.kernel_info import TL_DTYPE
from einsumcc_triton.part import Part
from einsumcc_triton.values import Val


class Memory(Part):
    """Pointer arithmetic (64-bit per program and per iteration, 32-bit per lane), masked
    loads (hoisted out of a loop or cached per loop segment) and stores."""

    def pointer(
        self, tensor: str, indices: tuple[sympy.Expr, ...], axes: tuple[str, ...]
    ) -> ka.Expr:
        """``tensor``'s base pointer plus the offsets of ``indices``, a block over ``axes``.
        Per-program and per-iteration offsets are 64-bit, lane offsets 32-bit."""
        ptr: ka.Expr = self.scope.tensor_ptr(tensor)
        scalar: ka.Expr | None = None
        lanes: ka.Expr | None = None
        for pos, ix in enumerate(indices):
            st, lt = self.index.split_terms(ix)
            stride = self.scope.stride(tensor, pos)
            s_code = self.index.render_terms(st, axes, wide=True)
            if s_code is not None and not (isinstance(s_code, ka.Literal) and s_code.value == 0):
                term = ka.BinaryOp("*", s_code, stride)
                scalar = term if scalar is None else ka.BinaryOp("+", scalar, term)
            l_code = self.index.render_terms(lt, axes)
            if l_code is not None:
                term = ka.BinaryOp("*", l_code, stride)
                lanes = term if lanes is None else ka.BinaryOp("+", lanes, term)
        if scalar is not None:
            ptr = ka.BinaryOp("+", ptr, scalar)
        if lanes is not None:
            ptr = ka.BinaryOp("+", ptr, lanes)
        return ptr

    def load(self, acc: Access, axes: tuple[str, ...] | None = None) -> Val:
        lane_vars = [
            str(s)
            for ix in acc.indices
            for s in ix.free_symbols
            if is_var_symbol(s) and str(s) in self.scope.lanes
        ]
        if axes is None:
            axes = self.values.union(tuple(lane_vars))
        key = (acc.tensor, acc.indices, axes)
        loopy = self.scope.loop_var is not None and any(
            str(s) == self.scope.loop_var for ix in acc.indices for s in ix.free_symbols
        )
        if not loopy and key in self.scope.hoisted:
            return self.scope.hoisted[key]
        if loopy and key in self.scope.seg.cache:
            return self.scope.seg.cache[key]
        ptr = self.pointer(acc.tensor, acc.indices, axes)
        mask = self.masks.access_mask(acc.tensor, acc.indices, axes)
        dtype = self.low.tensor_dtype(acc.tensor)
        kwargs: dict[str, ka.Expr] = {}
        if mask is not None:
            kwargs["mask"] = mask
            kwargs["other"] = ka.Literal(0) if dtype in ("i32", "i64", "bool") else ka.fconst(0.0)
        code = self.scope.assign(acc.tensor.replace(".", "_"), ka.call("tl.load", ptr, **kwargs))
        v = Val(code, axes, "i32" if dtype in ("i64", "bool") else dtype)
        if dtype == "bool":
            v = Val(code, axes, "i1")
        if loopy:
            self.scope.seg.cache[key] = v
        else:
            self.scope.hoisted[key] = v
        return v

    def store(self, tensor: str, indices: tuple[sympy.Expr, ...], value: Val) -> None:
        axes = self.values.union(
            tuple(
                str(s)
                for ix in indices
                for s in ix.free_symbols
                if is_var_symbol(s) and str(s) in self.scope.lanes
            )
        )
        ptr = self.pointer(tensor, indices, axes)
        mask = self.masks.access_mask(tensor, indices, axes)
        present = {str(s) for ix in indices for s in ix.free_symbols}
        # a tensor without some grid variable is the same in every program along it: the
        # first program writes it
        only: ka.Expr | None = None
        for v in self.k.grid:
            if v not in present:
                cond = ka.BinaryOp("==", self.scope.grid_index[v], ka.Literal(0))
                only = cond if only is None else ka.BinaryOp("&", only, cond)
        dtype = self.low.tensor_dtype(tensor)
        val = self.values.compute(value)
        code = self.values.expand(
            self.values.broadcast(val, axes) if val.axes != axes and axes else val, axes
        )
        if dtype == "bool":
            code = ka.BinaryOp("!=", code, ka.fconst(0.0))
        elif dtype != self.low.compute:
            code = ka.FuncCall(ka.Attribute(code, "to"), (ka.attr("tl", TL_DTYPE[dtype]),))
        kwargs = {"mask": mask} if mask is not None else {}
        stmt = ka.ExprStmt(ka.call("tl.store", ptr, code, **kwargs))
        self.scope.emit(ka.If(only, (stmt,)) if only is not None else stmt)
