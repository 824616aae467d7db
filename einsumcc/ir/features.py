"""Which v2 extensions of the language a cascade uses (spec §10).

A backend that does not implement one yet can refuse the cascade with a positioned error
instead of computing something else:

>>> from einsumcc import load
>>> c = load("rank D\\ninput X[D] : f32\\noutput Y[D] : f32\\nY[d] = X[d] ** 2\\n")
>>> [u.feature for u in v2_uses(c)]
['power']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from einsumcc.diagnostics import Span
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import (
    Access,
    Binary,
    Compare,
    DType,
    Expr,
    Logic,
    Not,
    Select,
    VarRef,
    walk,
)

# The v2 features, in the order of the spec.
FEATURES = (
    "data-filter",  # a where conjunct that is not an affine comparison (Einsum.mask)
    "select",
    "power",
    "tensor-init",  # an init value that reads a tensor or an index variable
    "tensor-fill",  # a fill that reads a tensor or an index variable
    "several-outputs",
    "integer-input",  # an input of dtype i32, i64 or bool
)


@dataclass(frozen=True)
class V2Use:
    """One use of a v2 feature: the feature, the statement (an Einsum or tensor name)."""

    feature: str
    statement: str
    span: Span | None = field(default=None, compare=False)


def pointwise(e: Expr) -> bool:
    """Whether an init or fill value varies by point (reads a tensor or an index variable)."""
    return any(isinstance(n, Access | VarRef | Select | Compare | Logic | Not) for n in walk(e))


def _expression_uses(name: str, e: Expr) -> list[V2Use]:
    out: list[V2Use] = []
    for n in walk(e):
        if isinstance(n, Select):
            out.append(V2Use("select", name, n.span))
        elif isinstance(n, Binary) and n.op == "**":
            out.append(V2Use("power", name, n.span))
    return out


def v2_uses(c: Cascade) -> tuple[V2Use, ...]:
    """Every use of a v2 feature in ``c``, in the order of :data:`FEATURES`, then of the text."""
    out: list[V2Use] = []
    for e in c.einsums:
        if e.mask:
            out.append(V2Use("data-filter", e.name, e.mask[0].span))
        out.extend(_expression_uses(e.name, e.body))
        for m in e.mask:
            out.extend(_expression_uses(e.name, m))
    for i in c.inits:
        if pointwise(i.value):
            out.append(V2Use("tensor-init", i.target.tensor, i.span))
        out.extend(_expression_uses(i.target.tensor, i.value))
    for t in c.tensors:
        if pointwise(t.fill):
            out.append(V2Use("tensor-fill", t.name, t.span))
        out.extend(_expression_uses(t.name, t.fill))
        if t in c.inputs and t.dtype in (DType.I32, DType.I64, DType.BOOL):
            out.append(V2Use("integer-input", t.name, t.span))
    if len(c.outputs) > 1:
        out.append(V2Use("several-outputs", c.outputs[1].name, c.outputs[1].span))
    rank = {f: i for i, f in enumerate(FEATURES)}
    return tuple(sorted(out, key=lambda u: (rank[u.feature], _position(u.span))))


def _position(span: Span | None) -> tuple[int, int]:
    return (span.line, span.col) if span is not None else (0, 0)


def v2_features(c: Cascade) -> frozenset[str]:
    """The names of the v2 features ``c`` uses (empty for a v1 cascade)."""
    return frozenset(u.feature for u in v2_uses(c))
