"""The cascade as per-point PE programs (``PEKernel``s): what one PE computes at one point.

Each Einsum becomes a kernel whose iteration space is its left-hand variables plus the
variables of a top-level reduction.  Its *point expression* is evaluated once per point; the
result is combined into the output (``sum``, ``max``, ...).  Work that does not vary over the
whole space is hoisted into helper kernels named ``E.1``, ``E.2``, ... with their own, smaller
space, exactly as :mod:`einsumcc.analysis.cost` counts it:

* a reduction nested below the top (``X[p] = A[k, p] + B[p]`` → ``X.1[p] = sum{k} A[k, p]``);
* a sub-expression with operations whose free variables are a strict subset of the space
  (``scale * Q[e, p]`` inside ``BQK``).

Constant sub-expressions (params, extents, literals) are folded into the PE's program and cost
nothing.  A kernel whose body is a bare access (``BK[e, m1, m0] = K[e, m1*M0 + m0]``) is an
*alias*: a view of its source, no work.

>>> from einsumcc import load
>>> c = load("rank M\\nrank N\\nrank K\\ninput A[M, K] : f16\\ninput B[K, N] : f16\\n"
...          "output Z[M, N] : f32\\nZ[m, n] = A[m, k] * B[k, n]\\n")
>>> [(k.name, k.space, k.combine, k.ops) for k in kernels(c)]
[('Z', ('m', 'n', 'k'), 'sum', (('mac', 1),))]
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

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
    ParamRef,
    Reduce,
    VarRef,
    children,
    free_variables,
    var_symbol,
    walk,
    with_children,
)

_COMBINE_OP = {"sum": "add", "max": "max", "min": "max", "prod": "mul"}
_CALL_OP = {"max": "max", "min": "max", "safe_div": "div"}


@dataclass(frozen=True)
class PEKernel:
    """One Einsum (or a hoisted part of one) as a per-point program."""

    name: str  # "BQK" or "BQK.1"
    origin: str  # the Einsum of the .ein file it belongs to
    output: Access  # tensor written (a helper writes a tensor named like itself)
    space: tuple[str, ...]  # lhs variables, then reduced variables
    lhs: tuple[str, ...]
    reduced: tuple[str, ...]
    combine: str | None  # sum | max | min | prod | None
    body: Expr  # the point expression: no Reduce inside
    where: tuple[Condition, ...]
    ops: tuple[tuple[str, int], ...]  # op -> count per point
    alias: bool = False
    itemsize: int = 4

    @property
    def reads(self) -> tuple[Access, ...]:
        return tuple(n for n in walk(self.body) if isinstance(n, Access))

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(o for o, _ in self.ops)

    @property
    def is_helper(self) -> bool:
        return self.name != self.origin

    @property
    def matmul_like(self) -> bool:
        """A sum of products of two tensors with different variables: a GEMM's shape."""
        return self.combine == "sum" and len(matmul_operands(self)) == 2


def matmul_operands(k: PEKernel) -> tuple[Access, ...]:
    """The two varying tensor factors of a fused ``sum`` of a product, else ``()``."""
    if k.combine != "sum" or not (isinstance(k.body, Binary) and k.body.op == "*"):
        return ()
    factors: list[Expr] = []
    stack: list[Expr] = [k.body]
    while stack:
        n = stack.pop()
        if isinstance(n, Binary) and n.op == "*":
            stack += [n.rhs, n.lhs]
        else:
            factors.append(n)
    tensors = [f for f in factors if isinstance(f, Access) and f.variables]
    rest = [f for f in factors if not (isinstance(f, Access) and f.variables)]
    if len(tensors) != 2 or any(free_variables(f) for f in rest):
        return ()
    if tensors[0].variables == tensors[1].variables:
        return ()
    return (tensors[0], tensors[1])


def _is_constant(e: Expr) -> bool:
    return not any(isinstance(n, Access | VarRef) for n in walk(e))


def count_ops(body: Expr, combine: str | None) -> tuple[tuple[str, int], ...]:
    """Ops per point: a product feeding a sum is one ``mac``; constants are free."""
    counts: dict[str, int] = {}

    def add(op: str) -> None:
        counts[op] = counts.get(op, 0) + 1

    fused = combine == "sum" and isinstance(body, Binary) and body.op == "*"

    def visit(e: Expr, top: bool) -> None:
        if _is_constant(e):
            return
        if isinstance(e, Binary):
            if e.op in "+-":
                add("add")
            elif e.op == "*":
                add("mac" if (top and fused) else "mul")
            else:
                add("div")
        elif isinstance(e, Call):
            add(_CALL_OP.get(e.fn, e.fn))
        for c in children(e):
            visit(c, False)

    visit(body, True)
    if combine is not None and not fused:
        add(_COMBINE_OP[combine])
    return tuple(sorted(counts.items()))


class _Builder:
    def __init__(self, cascade: Cascade, einsum: Einsum) -> None:
        self.c = cascade
        self.e = einsum
        self.order = {v: i for i, v in enumerate(einsum.variables)}
        self.out: list[PEKernel] = []
        self.n = 0
        self.itemsize = cascade.tensor(einsum.name).dtype.itemsize

    def helper(self, expr: Expr, where: tuple[Condition, ...]) -> Access:
        self.n += 1
        name = f"{self.e.name}.{self.n}"
        fv = sorted(free_variables(expr), key=lambda v: self.order.get(v, 1 << 20))
        target = Access(name, tuple(var_symbol(v) for v in fv))
        self.kernel(name, target, tuple(fv), expr, where)
        return target

    def kernel(
        self,
        name: str,
        target: Access,
        lhs: tuple[str, ...],
        body: Expr,
        where: tuple[Condition, ...],
    ) -> None:
        if isinstance(body, Reduce):
            combine: str | None = body.op
            reduced = tuple(v for v in body.variables if v not in lhs)
            inner = body.body
        else:
            combine, reduced, inner = None, (), body
        space = lhs + reduced
        mine = frozenset(space)
        conds = tuple(
            c
            for c in where
            if c.variables <= mine
            and (not reduced or c.variables & set(reduced) or name == self.e.name)
        )
        inner = self.hoist(inner, mine, where)
        alias = (
            isinstance(inner, Access)
            and combine is None
            and not conds
            and name == self.e.name
            and self.c.tensor(self.e.name).iterative_position is None
        )
        ops = count_ops(inner, combine)
        self.out.append(
            PEKernel(
                name,
                self.e.name,
                target,
                space,
                lhs,
                reduced,
                combine,
                inner,
                conds,
                ops,
                alias,
                self.itemsize,
            )
        )

    def hoist(self, e: Expr, space: frozenset[str], where: tuple[Condition, ...]) -> Expr:
        if isinstance(e, Access | Const | ParamRef | ExtentRef | VarRef) or _is_constant(e):
            return e
        fv = free_variables(e)
        if isinstance(e, Reduce):
            inner_where = tuple(
                c
                for c in where
                if c.variables & set(e.variables) and c.variables <= fv | set(e.variables)
            )
            return self.helper(e, inner_where)
        if fv < space:
            return self.helper(e, ())
        kids = tuple(self.hoist(c, space, where) for c in children(e))
        return with_children(e, kids)


def kernels(cascade: Cascade) -> tuple[PEKernel, ...]:
    """Every Einsum's kernels, helpers first, in the cascade's dependency order."""
    out: list[PEKernel] = []
    for e in cascade.einsums:
        b = _Builder(cascade, e)
        b.kernel(e.name, e.output, e.lhs_variables, e.body, e.where)
        out.extend(b.out)
    return tuple(out)


def index_vars(index: sympy.Expr) -> frozenset[str]:
    return frozenset(str(s) for s in index.free_symbols if s.is_nonnegative and not s.is_positive)
