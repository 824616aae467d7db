"""Symbolic sizes in reports: text and JSON forms (imports sympy when called)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sympy


def value_at(e: sympy.Expr, extents: Mapping[str, int] | None) -> sympy.Expr | None:
    """``e`` at the given extents, when that is a number."""
    import sympy

    if not extents:
        return None
    expr = sympy.sympify(e)
    value = expr.subs({s: extents[str(s)] for s in expr.free_symbols if str(s) in extents})
    return value if value.is_number else None


def json_expr(e: sympy.Expr, extents: Mapping[str, int] | None) -> object:
    """``{"expr": "M*P"}``, with ``"value"`` when the extents make it a number."""
    import sympy

    from einsumcc.ir.dump import render_index

    out: dict[str, object] = {"expr": render_index(sympy.sympify(e))}
    value = value_at(e, extents)
    if value is not None:
        out["value"] = int(value) if value.is_integer else float(value)
    return out
