"""Symbolic operation counts and compulsory traffic of a cascade.

Every operation is counted once per point of the iteration space it actually depends on (its
free variables): in ``sum{e} (scale * Q[e, p] * K[e, m])`` the product ``scale * Q[e, p]`` is
counted ``E*P`` times and the multiply-accumulate ``E*M*P`` times.  A multiplication that feeds
a sum directly is a ``mac``; the other categories are ``add`` (also subtraction), ``mul``,
``div``, ``max`` (max and min, binary or reduced), ``exp`` and one entry per other function;
(v2) ``pow`` for ``**``, ``cmp`` for a comparison (in ``select`` or a data filter) and
``select`` for a choice.
Counts are for the unfiltered iteration space: a ``where`` filter can only lower them.

Compulsory bytes are what any implementation must move: every input read once and every
output written once, at the declared dtypes.

>>> from einsumcc import load
>>> c = load("rank M\\nrank N\\nrank K\\ninput A[M, K] : f16\\ninput B[K, N] : f16\\n"
...          "output Z[M, N] : f32\\nZ[m, n] = A[m, k] * B[k, n]\\n")
>>> analyze_cost(c).einsums[0].ops["mac"]
K*M*N
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy

from einsumcc.diagnostics import Span
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import (
    Binary,
    Call,
    Compare,
    Einsum,
    Expr,
    Reduce,
    Select,
    Tensor,
    children,
    free_variables,
)

OPS = ("mac", "add", "mul", "div", "max", "exp")


@dataclass(frozen=True)
class EinsumCost:
    name: str
    ops: Mapping[str, sympy.Expr]
    filtered: bool
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class CostReport:
    cascade: str
    einsums: tuple[EinsumCost, ...]
    input_bytes: Mapping[str, sympy.Expr]
    output_bytes: Mapping[str, sympy.Expr]

    @property
    def totals(self) -> dict[str, sympy.Expr]:
        out: dict[str, sympy.Expr] = {}
        for e in self.einsums:
            for op, n in e.ops.items():
                out[op] = sympy.expand(out.get(op, sympy.Integer(0)) + n)
        return out

    @property
    def compulsory_bytes(self) -> sympy.Expr:
        return sympy.expand(
            sum(self.input_bytes.values(), sympy.Integer(0))
            + sum(self.output_bytes.values(), sympy.Integer(0))
        )


def in_parent_ranks(cascade: Cascade, expr: sympy.Expr) -> sympy.Expr:
    """Write products of split ranks as their parent, term by term: ``M1*M0*P`` → ``M*P``.

    A term is rewritten only when the whole product of the split's ranks occurs in it.
    """
    expr = sympy.expand(sympy.sympify(expr))
    terms = []
    for term in sympy.Add.make_args(expr):
        for split in cascade.splits:
            syms = [cascade.rank(c).symbol for c in split.children]
            parent = cascade.rank(split.parent).symbol
            product = sympy.Mul(*syms)
            quotient = sympy.cancel(term / product)
            if not any(s in sympy.denom(quotient).free_symbols for s in syms):
                term = sympy.expand(quotient * parent)
        terms.append(term)
    return sympy.Add(*terms)


def tensor_size(cascade: Cascade, t: Tensor) -> sympy.Expr:
    """Number of elements of ``t`` as an expression of the rank extents."""
    size: sympy.Expr = sympy.Integer(1)
    for d in t.dims:
        sym = cascade.rank(d.rank).symbol
        size = size * (sym + 1 if d.iterative else sym)
    return size


class _Counter:
    def __init__(self, cascade: Cascade) -> None:
        self.c = cascade
        self.ops: dict[str, sympy.Expr] = {}

    def space(self, variables: frozenset[str]) -> sympy.Expr:
        out: sympy.Expr = sympy.Integer(1)
        for v in sorted(variables):
            out = out * self.c.rank(self.c.var_ranks[v]).symbol
        return out

    def add(self, op: str, n: sympy.Expr) -> None:
        self.ops[op] = self.ops.get(op, sympy.Integer(0)) + n

    def count(self, e: Expr, mac_root: bool = False) -> None:
        if isinstance(e, Compare | Select):
            # (v2) a comparison or a choice per point of its space
            self.add("cmp" if isinstance(e, Compare) else "select", self.space(free_variables(e)))
        if isinstance(e, Binary):
            n = self.space(free_variables(e))
            if e.op == "**":
                self.add("pow", n)
            elif e.op in "+-":
                self.add("add", n)
            elif e.op == "*":
                self.add("mac" if mac_root else "mul", n)
            else:
                self.add("div", n)
        elif isinstance(e, Call):
            n = self.space(free_variables(e))
            op = {"max": "max", "min": "max", "safe_div": "div"}.get(e.fn, e.fn)
            self.add(op, n)
        elif isinstance(e, Reduce):
            n = self.space(free_variables(e.body) | set(e.variables))
            fused = e.op == "sum" and isinstance(e.body, Binary) and e.body.op == "*"
            if not fused:
                self.add({"sum": "add", "prod": "mul", "max": "max", "min": "max"}[e.op], n)
            self.count(e.body, mac_root=fused)
            return
        for c in children(e):
            self.count(c)


def einsum_cost(cascade: Cascade, e: Einsum) -> EinsumCost:
    counter = _Counter(cascade)
    counter.count(e.body)
    for cond in e.mask:  # (v2) a data filter's comparisons, at every point they apply to
        counter.count(cond)
    ops = {op: in_parent_ranks(cascade, n) for op, n in sorted(counter.ops.items()) if n != 0}
    return EinsumCost(e.name, ops, e.filtered, e.span)


def analyze_cost(cascade: Cascade) -> CostReport:
    """Per-Einsum operation counts and compulsory bytes, as sympy expressions."""

    def nbytes(t: Tensor) -> sympy.Expr:
        return in_parent_ranks(cascade, tensor_size(cascade, t) * t.dtype.itemsize)

    inputs = {t.name: nbytes(t) for t in cascade.inputs}
    outputs = {t.name: nbytes(t) for t in cascade.outputs}
    return CostReport(
        cascade.name,
        tuple(einsum_cost(cascade, e) for e in cascade.einsums),
        inputs,
        outputs,
    )


def substitute(expr: sympy.Expr, extents: Mapping[str, int]) -> int:
    """An expression of extents evaluated at concrete extents."""
    value = sympy.sympify(expr).subs(
        {sympy.Symbol(k, integer=True, positive=True): v for k, v in extents.items()}
    )
    return int(value)
