"""Expressions of an Einsum's body as tiles: constants, params, rank variables, reads of
tensors (loaded, or computed earlier in the kernel), arithmetic and functions."""

from __future__ import annotations

from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Compare,
    Const,
    Expr,
    ExtentRef,
    Logic,
    Neg,
    Not,
    ParamRef,
    Reduce,
    Select,
    VarRef,
    walk,
)
from einsumcc.schedule.nodes import Node, ReadKind
from einsumcc_triton import kernel_ast as ka
from einsumcc_triton.kernel_info import TL_DTYPE, KernelParam
from einsumcc_triton.part import Part
from einsumcc_triton.values import Val

# the labels of integer tiles (i64 ids load as "i32"-labelled int64, bool as i1)
INTEGER = frozenset({"i32", "i1"})

# exp(x) = exp2(x * log2(e)): Triton lowers f32 ``tl.exp`` to a multiply by log2(e) and
# ``ex2.approx``; emitting the multiply ourselves lets it fold into a constant or scalar
# factor of the argument and into the subtraction of the running maximum (one FMA)
LOG2E = 1.4426950408889634


class Expressions(Part):
    """The value of an extended-Einsum expression read by a node, and the fill a node's guard
    or survive mask applies."""

    def fold(self, e: Expr) -> float | None:
        if any(isinstance(n, Access | VarRef) for n in walk(e)):
            return None
        return self.low.constant(e)

    def expr(self, e: Expr, reader: Node) -> Val:
        value = self.fold(e)
        if value is not None:
            return Val(ka.fconst(value), (), "lit")
        if isinstance(e, Const):
            return Val(ka.fconst(float(e.value)), (), "lit")
        if isinstance(e, ParamRef | ExtentRef):
            return self.runtime_scalar(e)
        if isinstance(e, VarRef):
            v = self.index.var_val(e.var)
            if not v.axes:
                return Val(
                    ka.call("tl.cast", v.code, ka.attr("tl", TL_DTYPE[self.low.compute])),
                    (),
                    self.low.compute,
                )
            return Val(
                ka.FuncCall(
                    ka.Attribute(v.code, "to"), (ka.attr("tl", TL_DTYPE[self.low.compute]),)
                ),
                v.axes,
                self.low.compute,
            )
        if isinstance(e, Access):
            return self.read(e, reader)
        if isinstance(e, Neg):
            x = self.values.compute(self.expr(e.operand, reader))
            return Val(ka.UnaryOp("-", x.code), x.axes, x.dtype)
        if isinstance(e, Binary) and e.op == "**":
            return self.power(e, reader)
        if isinstance(e, Binary):
            return self.values.binop(e.op, self.expr(e.lhs, reader), self.expr(e.rhs, reader))
        if isinstance(e, Select):
            cond = self.condition(e.cond, reader)
            return self.values.where(cond, self.expr(e.then, reader), self.expr(e.other, reader))
        if isinstance(e, Call):
            return self.call(e, reader)
        assert isinstance(e, Reduce)
        raise self.scope.error(reader, "a reduction inside an expression was not split out")

    def power(self, e: Binary, reader: Node) -> Val:
        """``x ** n`` for a constant integer ``n`` (products) or ``+-1/2`` (square roots)."""
        n = self.low.constant(e.rhs)
        x = self.values.compute(self.expr(e.lhs, reader))
        if n in (0.5, -0.5):
            fn = "tl.sqrt" if n > 0 else "tl.rsqrt"
            return Val(ka.call(fn, x.code), x.axes, self.low.compute)
        if n is None or not float(n).is_integer():
            raise self.scope.error(reader, "** needs a constant integer exponent or +-1/2")
        k = int(abs(n))
        if k == 0:
            return Val(ka.fconst(1.0), (), "lit")
        out = x
        for _ in range(k - 1):
            out = self.values.binop("*", out, x)
        if n < 0:
            out = self.values.binop("/", Val(ka.fconst(1.0), (), "lit"), out)
        return out

    def condition(self, e: Expr, reader: Node) -> Val:
        """(v2) A condition evaluated point by point: comparisons, and/or/not."""
        if isinstance(e, Compare):
            a, b = self.expr(e.lhs, reader), self.expr(e.rhs, reader)
            if not (a.dtype in INTEGER and b.dtype in INTEGER):  # ids compare as integers
                a, b = self.values.compute(a), self.values.compute(b)
            axes = self.values.union(a.axes, b.axes)
            code = ka.BinaryOp(e.op, self.values.expand(a, axes), self.values.expand(b, axes))
            return Val(code, axes, "i1")
        if isinstance(e, Logic):
            parts = [self.condition(p, reader) for p in e.parts]
            axes = self.values.union(*(p.axes for p in parts))
            op = "&" if e.op == "and" else "|"
            out = self.values.expand(parts[0], axes)
            for p in parts[1:]:
                out = ka.BinaryOp(op, out, self.values.expand(p, axes))
            return Val(out, axes, "i1")
        if isinstance(e, Not):
            x = self.condition(e.operand, reader)
            return Val(ka.BinaryOp("==", x.code, ka.Literal(0)), x.axes, "i1")
        raise self.scope.error(reader, "a condition must compare values")

    def runtime_scalar(self, e: ParamRef | ExtentRef) -> Val:
        """A param or extent used as a value that is only known at run time: an fp argument
        the launcher computes."""
        if isinstance(e, ParamRef):
            name = self.scope.param(
                ("param", e.name), e.name, KernelParam("", "param", tensor=e.name)
            )
        else:
            name = self.scope.param(
                ("value", e.rank), f"{e.rank}_value", KernelParam("", "param", rank=e.rank)
            )
        return Val(name, (), self.low.compute)

    def call(self, e: Call, reader: Node) -> Val:
        if e.fn == "exp" and self.low.compute == "f32":
            x = self.log2e_times(e.args[0], reader)
            return Val(ka.call("tl.exp2", x.code), x.axes, self.low.compute)
        args = [self.values.compute(self.expr(a, reader)) for a in e.args]
        axes = self.values.union(*(a.axes for a in args))
        codes = [self.values.expand(a, axes) for a in args]
        nan = {"propagate_nan": ka.attr("tl", "PropagateNan", "ALL")}
        fn = e.fn
        if fn in ("exp", "log", "sqrt", "rsqrt", "sigmoid", "abs"):
            code: ka.Expr = ka.call(f"tl.{fn}", *codes)
        elif fn == "tanh":
            self.low.helpers |= {"_ein_tanh", "_ein_expm1"}
            code = ka.call("_ein_tanh", *codes)
        elif fn == "relu":
            code = ka.call("tl.maximum", codes[0], ka.fconst(0.0), **nan)
        elif fn in ("max", "min"):
            code = ka.call("tl.maximum" if fn == "max" else "tl.minimum", codes[0], codes[1], **nan)
        elif fn == "safe_div":
            self.low.helpers.add("_ein_safe_div")
            code = ka.call("_ein_safe_div", codes[0], codes[1])
        else:
            raise self.scope.error(reader, f"function {fn}() has no Triton lowering")
        return Val(code, axes, self.low.compute)

    def log2e_times(self, e: Expr, reader: Node) -> Val:
        """``e * log2(e)`` with the factor distributed over sums and differences and folded
        into a constant or scalar (program-level) factor where ``e`` has one, so that
        ``exp(scale * s - m)`` becomes ``exp2((scale * log2e) * s - m * log2e)``: one
        multiply-add per point, the row term ``m * log2e`` computed once per row."""
        value = self.fold(e)
        if value is not None:
            return Val(ka.fconst(value * LOG2E), (), "lit")
        if isinstance(e, Binary) and e.op in ("+", "-"):
            a, b = self.log2e_times(e.lhs, reader), self.log2e_times(e.rhs, reader)
            return self.values.binop(e.op, a, b)
        if isinstance(e, Neg):
            x = self.log2e_times(e.operand, reader)
            return Val(ka.UnaryOp("-", x.code), x.axes, x.dtype)
        if isinstance(e, Binary) and e.op == "*":
            for k, other in ((e.lhs, e.rhs), (e.rhs, e.lhs)):
                factor = self.fold(k)
                if factor is not None:
                    lit = Val(ka.fconst(factor * LOG2E), (), "lit")
                    return self.values.binop("*", lit, self.expr(other, reader))
            a, b = self.expr(e.lhs, reader), self.expr(e.rhs, reader)
            for sv, tv in ((a, b), (b, a)):
                if not sv.axes:  # a runtime scalar: one multiply per program
                    return self.values.binop("*", self.scaled(sv), tv)
            return self.values.binop("*", self.scaled(a), b)
        return self.scaled(self.expr(e, reader))

    def scaled(self, v: Val) -> Val:
        """``v * log2(e)`` (a literal folded, a named or bracketed tile multiplied)."""
        if isinstance(v.code, ka.Literal) and isinstance(v.code.value, float):
            return Val(ka.fconst(v.code.value * LOG2E), (), v.dtype)
        return self.values.binop("*", self.values.compute(v), Val(ka.fconst(LOG2E), (), "lit"))

    def read(self, acc: Access, reader: Node) -> Val:
        p = self.prog.producer(acc.tensor)
        if p is None or p.key not in self.scope.local_keys():
            return self.memory.load(acc)
        kind = self.prog.read_kind(acc, reader)
        if kind is ReadKind.INIT:
            return self.init_value(p)
        if kind is ReadKind.CARRIED:
            name = self.scope.state[p.key]
            return Val(ka.name(name), self.values.state_axes(p), self.low.compute)
        if p.key not in self.scope.env:
            raise self.scope.error(reader, f"{acc.tensor} is read before it is computed")
        return self.scope.env[p.key]

    def init_value(self, p: Node) -> Val:
        inits = self.c.inits_of(p.key)
        if not inits:
            raise self.scope.error(p, f"{p.key} has no init")
        return self.expr(inits[0].value, p)

    def fill_of(self, n: Node) -> Val:
        t = self.c.tensor(n.key)
        return self.expr(t.fill, n)

    def apply_fill(self, n: Node, v: Val) -> Val:
        conds = [self.index.cond_val(c) for c in self.masks.active(n, n.guard)]
        conds += [self.condition(c, n) for c in n.data]
        mask = self.values.conj(conds)
        if n.survive is not None:
            if n.survive in self.scope.local_keys():
                s = self.scope.env[n.survive]
            else:
                sv = self.prog.node(n.survive)
                s = self.memory.load(sv.output)
            alive = Val(ka.BinaryOp(">", s.code, ka.Literal(0)), s.axes, "i1")
            mask = alive if mask is None else self.values.conj([mask, alive])
        if mask is None:
            return v
        return self.values.where(mask, v, self.fill_of(n))
