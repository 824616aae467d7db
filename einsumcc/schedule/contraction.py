"""Recognising tile contractions: a sum over one register axis of the product of two 2-D tiles.

``BQK[m1, m0, p] = sum{e} (scale * Q[e, p] * K[e, m1*M0 + m0])`` is ``scale`` times the
contraction of the tile ``Q[p, e]`` with the tile ``K[e, m0]`` over ``e``: one ``tl.dot``.
Factors that do not depend on the reduced variables (``scale``) multiply the result; the two
remaining factors must each hold the contracted axis and exactly one other register axis, and
every axis must be at least 16 wide (the smallest ``tl.dot`` shape).  Anything else is
evaluated as a broadcast multiply followed by a reduction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from einsumcc.ir.nodes import Binary, Expr, Neg, free_variables
from einsumcc.schedule.nodes import Node, NodeKind

MIN_DOT = 16


@dataclass(frozen=True)
class Factor:
    expr: Expr
    inverse: bool  # divides instead of multiplying


@dataclass(frozen=True)
class Product:
    sign: float
    outer: tuple[Factor, ...]  # independent of the reduced variables
    inner: tuple[Factor, ...]


def product(body: Expr, reduced: frozenset[str]) -> Product:
    """``body`` as a signed product of factors, split by dependence on ``reduced``."""
    sign = 1.0
    outer: list[Factor] = []
    inner: list[Factor] = []
    stack: list[tuple[Expr, bool]] = [(body, False)]
    while stack:
        e, inverse = stack.pop()
        if isinstance(e, Binary) and e.op == "*":
            stack += [(e.rhs, inverse), (e.lhs, inverse)]
        elif isinstance(e, Binary) and e.op == "/":
            stack += [(e.rhs, not inverse), (e.lhs, inverse)]
        elif isinstance(e, Neg):
            sign = -sign
            stack.append((e.operand, inverse))
        else:
            f = Factor(e, inverse)
            (inner if free_variables(e) & reduced else outer).append(f)
    return Product(sign, tuple(outer), tuple(inner))


@dataclass(frozen=True)
class Contraction:
    """``sign * outer * sum_k a[i, k] * b[k, j]``: one ``tl.dot`` of ``a`` (i, k) and ``b``."""

    a: Expr
    b: Expr
    i: str
    j: str
    k: str
    sign: float
    outer: tuple[Factor, ...]


def contraction(node: Node, lanes: Mapping[str, int]) -> Contraction | None:
    """The tile contraction ``node`` computes, or None.  ``lanes``: register axes -> block."""
    if node.kind is not NodeKind.REDUCE or node.op != "sum":
        return None
    reduced = frozenset(node.reduced)
    ks = [v for v in node.reduced if v in lanes]
    if len(ks) != 1:
        return None
    k = ks[0]
    prod = product(node.body, reduced)
    if len(prod.inner) != 2 or any(f.inverse for f in prod.inner):
        return None
    a, b = (f.expr for f in prod.inner)
    la = {v for v in free_variables(a) if v in lanes}
    lb = {v for v in free_variables(b) if v in lanes}
    if k not in la or k not in lb:
        return None
    ra, rb = la - {k}, lb - {k}
    if len(ra) != 1 or len(rb) != 1 or ra == rb:
        return None
    i, j = next(iter(ra)), next(iter(rb))
    if any(v in reduced for v in (i, j)):
        return None
    if min(lanes[i], lanes[j], lanes[k]) < MIN_DOT:
        return None
    # a filter on the contraction must be applicable to one operand
    for c in node.mask:
        cv = {v for v in c.variables if v in lanes}
        if not (cv <= la or cv <= lb):
            return None
    return Contraction(a, b, i, j, k, prod.sign, prod.outer)
