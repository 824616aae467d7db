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
    Compare,
    Condition,
    Const,
    Einsum,
    Expr,
    ExtentRef,
    Logic,
    Neg,
    Not,
    ParamRef,
    Reduce,
    Role,
    Select,
    Tensor,
    VarRef,
    is_var_symbol,
)

if TYPE_CHECKING:
    import sympy

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
# Levels of the value grammar: 3 unary (- and reductions), 4 power, 5 a primary.
_UNARY, _POWER, _PRIMARY = 3, 4, 5


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
        denom = _product(den)
        if den.is_Mul or den.is_Pow:  # M / (C*M0), not M / C*M0
            denom = f"({denom})"
        return f"{_product(num)} / {denom}"
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
    if isinstance(e, Select):
        parts = (render_condition_expr(e.cond), render_expr(e.then), render_expr(e.other))
        return f"select({', '.join(parts)})"
    if isinstance(e, Compare | Logic | Not):
        text = render_condition_expr(e)
        return f"({text})" if ctx > 0 else text
    if isinstance(e, Neg):
        text = "-" + render_expr(e.operand, 3)
        return f"({text})" if ctx > 3 else text
    if isinstance(e, Reduce):
        text = f"{e.op}{{{', '.join(e.variables)}}} {render_expr(e.body, 3)}"
        return f"({text})" if ctx > 3 or (right and ctx == 3) else text
    assert isinstance(e, Binary)
    if e.op == "**":  # right-associative; the base is a primary, the exponent a unary form
        text = f"{render_expr(e.lhs, _PRIMARY)} ** {render_expr(e.rhs, _UNARY, right=True)}"
        return f"({text})" if ctx > _POWER else text
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


# Levels of the condition grammar: or, and, not, a comparison.
_COND_PREC = {"or": 1, "and": 2}


def render_condition_expr(e: Expr, ctx: int = 0) -> str:
    """(v2) a condition with the fewest parentheses that keep its tree."""
    if isinstance(e, Compare):
        # both sides are values: a condition there needs parentheses (ctx 1)
        return f"{render_expr(e.lhs, 1)} {e.op} {render_expr(e.rhs, 1)}"
    if isinstance(e, Not):
        text = "not " + render_condition_expr(e.operand, 3)
        return f"({text})" if ctx > 3 else text
    if isinstance(e, Logic):
        p = _COND_PREC[e.op]
        text = f" {e.op} ".join(render_condition_expr(x, p + 1) for x in e.parts)
        return f"({text})" if ctx > p else text
    return render_expr(e, 1)


def render_einsum(e: Einsum) -> str:
    text = f"{render_access(e.output)} = {render_expr(e.body)}"
    conjuncts = [render_condition(c) for c in e.where]
    alone = not e.where and len(e.mask) == 1  # `where a or b` needs no parentheses
    level = 0 if alone else _COND_PREC["and"] + 1
    conjuncts += [render_condition_expr(m, level) for m in e.mask]
    if conjuncts:
        text += " where " + " and ".join(conjuncts)
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
