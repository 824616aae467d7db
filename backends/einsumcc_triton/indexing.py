"""Index code: affine indices and loop bounds (sympy expressions) as kernel expressions."""

from __future__ import annotations

import sympy

from einsumcc.ir.nodes import Condition, is_var_symbol
from einsumcc_triton import kernel_ast as ka
from einsumcc_triton.part import Part
from einsumcc_triton.values import Val


class IndexCode(Part):
    """Rank variables' values, affine indices as per-lane and per-program terms, conditions
    of filters, and loop bounds."""

    def var_val(self, var: str) -> Val:
        if var in self.scope.lanes:
            return Val(self.scope.lanes[var], (var,), "i32")
        if var in self.scope.scalars:
            return Val(self.scope.scalars[var], (), "i32")
        raise self.scope.error(None, f"rank variable {var} has no value in kernel {self.k.name}")

    def extent_code(self, sym: sympy.Symbol) -> ka.Expr:
        return self.scope.extent(str(sym))

    def terms(self, expr: sympy.Expr) -> list[tuple[int, list[ka.Expr], str | None]]:
        """An affine index as terms ``coeff * extents... * var`` (var None: a constant)."""
        out: list[tuple[int, list[ka.Expr], str | None]] = []
        for term, coeff in sympy.expand(expr).as_coefficients_dict().items():
            if not coeff.is_Integer:
                raise self.scope.error(None, f"index {expr} has a fractional coefficient")
            factors = sympy.Mul.make_args(term)
            vars_ = [f for f in factors if is_var_symbol(f)]
            if len(vars_) > 1 or any(not (f.is_Symbol or f == 1) for f in factors):
                raise self.scope.error(None, f"index {expr} is not affine")
            extents = [self.extent_code(f) for f in factors if f.is_Symbol and not is_var_symbol(f)]
            out.append((int(coeff), extents, str(vars_[0]) if vars_ else None))
        return out

    def render_terms(
        self,
        terms: list[tuple[int, list[ka.Expr], str | None]],
        axes: tuple[str, ...],
        wide: bool = False,
    ) -> ka.Expr | None:
        """The sum of ``terms`` as a block over ``axes`` (any order); ``wide``: scalar
        variables are widened to int64 (per-program and per-iteration offsets)."""
        out: ka.Expr | None = None
        for coeff, extents, var in sorted(terms, key=lambda t: t[0] < 0):
            parts: list[ka.Expr] = []
            if var is not None:
                v = self.var_val(var)
                if v.axes:
                    parts.append(self.values.expand_to(v, axes))
                elif wide and not isinstance(v.code, ka.Literal):
                    parts.append(ka.call("tl.cast", v.code, ka.attr("tl", "int64")))
                else:
                    parts.append(v.code)
            parts += extents
            if abs(coeff) != 1 or not parts:
                parts.insert(0, ka.Literal(abs(coeff)))
            code = parts[0]
            for f in parts[1:]:
                code = ka.BinaryOp("*", code, f)
            if out is None:
                out = code if coeff > 0 else ka.UnaryOp("-", code)
            else:
                out = ka.BinaryOp("+" if coeff > 0 else "-", out, code)
        return out

    def split_terms(
        self, expr: sympy.Expr
    ) -> tuple[
        list[tuple[int, list[ka.Expr], str | None]], list[tuple[int, list[ka.Expr], str | None]]
    ]:
        """(terms that are the same for every lane, terms that vary along lane axes)."""
        scalar: list[tuple[int, list[ka.Expr], str | None]] = []
        lanes: list[tuple[int, list[ka.Expr], str | None]] = []
        for t in self.terms(expr):
            (lanes if t[2] is not None and t[2] in self.scope.lanes else scalar).append(t)
        return scalar, lanes

    def index_axes(self, expr: sympy.Expr) -> tuple[str, ...]:
        return self.values.union(
            tuple(
                str(s) for s in expr.free_symbols if is_var_symbol(s) and str(s) in self.scope.lanes
            )
        )

    def index_val(self, expr: sympy.Expr) -> Val:
        axes = self.index_axes(expr)
        code = self.render_terms(self.terms(expr), axes)
        return Val(code if code is not None else ka.Literal(0), axes, "i32")

    def cond_val(self, c: Condition) -> Val:
        lhs = self.index_val(c.lhs)
        rhs = self.index_val(c.rhs)
        axes = self.values.union(lhs.axes, rhs.axes)
        return Val(
            ka.BinaryOp(c.op, self.values.expand(lhs, axes), self.values.expand(rhs, axes)),
            axes,
            "i1",
        )

    def sym(self, e: sympy.Expr) -> ka.Expr:
        """A loop bound (an integer expression of extents and program bounds) as code."""
        if e.is_Integer:
            return ka.Literal(int(e))
        if e.is_Symbol:
            name = str(e)
            if name in self.scope.program_syms:
                return self.scope.program_syms[name]
            return self.scope.extent(name)
        if isinstance(e, sympy.Add):
            return self.sym_sum(e)
        if isinstance(e, sympy.Mul):
            return self.sym_product(e)
        if isinstance(e, sympy.floor | sympy.ceiling):
            return self.sym_rounded(e)
        if isinstance(e, sympy.Max | sympy.Min):
            fn = "tl.maximum" if isinstance(e, sympy.Max) else "tl.minimum"
            args = [self.sym(a) for a in e.args]
            out = args[0]
            for a in args[1:]:
                out = ka.call(fn, out, a)
            return out
        raise self.scope.error(None, f"cannot render loop bound {e}")

    def sym_sum(self, e: sympy.Add) -> ka.Expr:
        terms = list(e.args)
        out = self.sym(terms[0])
        for t in terms[1:]:
            coeff, _ = t.as_coeff_Mul()
            if coeff.is_negative:
                out = ka.BinaryOp("-", out, self.sym(-t))
            else:
                out = ka.BinaryOp("+", out, self.sym(t))
        return out

    def sym_product(self, e: sympy.Mul) -> ka.Expr:
        coeff, rest = e.as_coeff_Mul()
        if coeff.is_Rational and not coeff.is_Integer:
            raise self.scope.error(None, f"loop bound {e} is not an integer expression")
        if coeff == -1:
            return ka.UnaryOp("-", self.sym(rest))
        factors = [self.sym(f) for f in sympy.Mul.make_args(rest)]
        out = factors[0]
        for f in factors[1:]:
            out = ka.BinaryOp("*", out, f)
        if coeff != 1:
            out = ka.BinaryOp("*", ka.Literal(int(coeff)), out)
        return out

    def sym_rounded(self, e: sympy.floor | sympy.ceiling) -> ka.Expr:
        num, den = e.args[0].as_numer_denom()
        self.low.helpers.add("_ein_floordiv")
        if isinstance(e, sympy.floor):
            return ka.call("_ein_floordiv", self.sym(num), self.sym(den))
        return ka.UnaryOp("-", ka.call("_ein_floordiv", self.sym(-num), self.sym(den)))
