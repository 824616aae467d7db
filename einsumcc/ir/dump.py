"""The canonical text of a cascade: valid `.ein` that parses back to the same IR.

Every tensor is declared with its dtype, every implicit sum is written out, floats are printed
with ``repr`` and statements come in a fixed order (ranks, splits, params, inputs, outputs,
intermediates, inits, Einsums in dependency order, expectations).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Condition,
    Const,
    Einsum,
    Expr,
    ExtentRef,
    Neg,
    ParamRef,
    Reduce,
    Role,
    Tensor,
    VarRef,
    is_var_symbol,
)

if TYPE_CHECKING:
    import sympy

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def render_index(expr: sympy.Expr) -> str:
    """An index, extent or condition side: ``m1*M0 + m0``, ``M / M0`` (imports sympy)."""
    import sympy

    expr = sympy.sympify(expr)
    if expr.is_Add:
        terms = expr.as_ordered_terms()
        out = _term(terms[0])
        for t in terms[1:]:
            coeff, _ = t.as_coeff_Mul()
            if coeff.is_number and coeff < 0:
                out += " - " + _term(-t)
            else:
                out += " + " + _term(t)
        return out
    return _term(expr)


def _term(expr: sympy.Expr) -> str:
    if expr.is_Integer or expr.is_Symbol:
        return str(expr)
    if expr.is_Rational:
        return f"{expr.p} / {expr.q}"
    num, den = expr.as_numer_denom()
    if den != 1:
        return f"{_product(num)} / {_product(den)}"
    return _product(num)


def _product(expr: sympy.Expr) -> str:
    import sympy

    if expr.is_Add:
        return f"({render_index(expr)})"
    if not expr.is_Mul and not expr.is_Pow:
        return str(expr) if expr.is_Atom else f"({render_index(expr)})"
    factors: list[str] = []
    coeff, rest = expr.as_coeff_Mul()
    if coeff.is_number and coeff < 0:
        return "-" + _product(-expr)
    parts = sympy.Mul.make_args(rest)
    # rank variables first (m1*M0), then extents, each group by name
    parts = sorted(parts, key=lambda f: (not any(is_var_symbol(s) for s in f.free_symbols), str(f)))
    for f in parts:
        if f.is_Pow and f.exp.is_Integer and f.exp > 0:
            factors.extend([_product(f.base)] * int(f.exp))
        elif f.is_Add:
            factors.append(f"({render_index(f)})")
        else:
            factors.append(str(f))
    if coeff != 1:
        factors.insert(0, str(coeff))
    return "*".join(factors)


def render_expr(e: Expr, ctx: int = 0, right: bool = False) -> str:
    """A value expression with the fewest parentheses that keep its tree."""
    if isinstance(e, Const):
        return _number(e.value)
    if isinstance(e, ParamRef):
        return e.name
    if isinstance(e, ExtentRef):
        return e.rank
    if isinstance(e, VarRef):
        return e.var
    if isinstance(e, Access):
        return render_access(e)
    if isinstance(e, Call):
        return f"{e.fn}({', '.join(render_expr(a) for a in e.args)})"
    if isinstance(e, Neg):
        text = "-" + render_expr(e.operand, 3)
        return f"({text})" if ctx > 3 else text
    if isinstance(e, Reduce):
        text = f"{e.op}{{{', '.join(e.variables)}}} {render_expr(e.body, 3)}"
        return f"({text})" if ctx > 3 or (right and ctx == 3) else text
    assert isinstance(e, Binary)
    p = _PREC[e.op]
    text = f"{render_expr(e.lhs, p)} {e.op} {render_expr(e.rhs, p + 1, right=True)}"
    return f"({text})" if p < ctx else text


def _number(value: int | float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def render_access(a: Access) -> str:
    return f"{a.tensor}[{', '.join(render_index(ix) for ix in a.indices)}]"


def render_condition(c: Condition) -> str:
    return f"{render_index(c.lhs)} {c.op} {render_index(c.rhs)}"


def render_einsum(e: Einsum) -> str:
    text = f"{render_access(e.output)} = {render_expr(e.body)}"
    if e.where:
        text += " where " + " and ".join(render_condition(c) for c in e.where)
    return text


def render_tensor(t: Tensor) -> str:
    dims = ", ".join(str(d) for d in t.dims)
    text = f"{t.role.value} {t.name}[{dims}] : {t.dtype.value}"
    if t.fill != Const(0):
        text += f" = {render_expr(t.fill)}"
    return text


def render_cascade(c: Cascade) -> str:
    """The canonical `.ein` text of ``c`` (``einsumcc show``)."""
    lines = [f"cascade {c.name}"]
    for r in c.ranks:
        lines.append(
            f"rank {r.name}" + (f" = {render_index(r.extent)}" if r.extent is not None else "")
        )
    lines.extend(f"split {s.parent} -> {', '.join(s.children)}" for s in c.splits)
    lines.extend(f"param {p.name} = {render_expr(p.value)}" for p in c.params)
    for role in (Role.INPUT, Role.OUTPUT, Role.INTERMEDIATE):
        lines.extend(render_tensor(t) for t in c.tensors if t.role is role)
    for i in c.inits:
        lines.append(f"init {render_access(i.target)} = {render_expr(i.value)}")
    lines.extend(render_einsum(e) for e in c.einsums)
    for x in c.expects:
        lines.append(f"expect {x.fn}({', '.join(x.args)}) {x.op} {_number(x.value)}")
    return "\n".join(lines) + "\n"
