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

The v2 forms (spec §10) are work like any other:

* a data-dependent filter (``Einsum.mask``: ``where SEGK[m] == SEGQ[p]``) is its own helper
  kernel ``E.mask`` over the points of the kernel it filters, right before it: one ``cmp``
  per point per comparison, one ``and``/``or``/``not`` per point per logic op, reading the
  mask's tensors; the filtered kernel reads its boolean result (``mask``) beside its
  operands;
* ``select(c, a, b)`` is a ``select`` op (and ``c``'s comparisons); ``a ** b`` is ``pow``,
  except for the exponents a PE computes with cheaper ops (:func:`power_ops`);
* an ``init`` that reads a tensor (``init RM[0, p] = SINK[]``) is a kernel ``T.init`` over the
  target's own variables, first of all kernels: it reads its input once and writes the first
  iterate, before the recurrence's loop (no pass of its own);
* a fill that reads a tensor is read by the kernel that may leave points unwritten.

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
from einsumcc.ir.features import pointwise
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
    Init,
    Logic,
    Neg,
    Not,
    ParamRef,
    Reduce,
    Select,
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
    # (v2) data conditions a point must also pass: reads of a mask kernel's boolean result
    mask: tuple[Expr, ...] = ()
    # (v2) reads of a tensor-valued fill, at the points the kernel may leave unwritten
    fill_reads: tuple[Access, ...] = ()
    init: bool = False  # (v2) the first iterate of a tensor-valued ``init``

    @property
    def reads(self) -> tuple[Access, ...]:
        """Every tensor read: the body's, the mask's, the fill's."""
        exprs = (self.body, *self.mask)
        body = tuple(n for e in exprs for n in walk(e) if isinstance(n, Access))
        return body + self.fill_reads

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


def _literal(e: Expr) -> float | None:
    """The value of a number literal, negated or not (``2``, ``-0.5``), else None."""
    if isinstance(e, Const):
        return float(e.value)
    if isinstance(e, Neg) and isinstance(e.operand, Const):
        return -float(e.operand.value)
    return None


def power_ops(exponent: Expr) -> tuple[str, ...]:
    """The ops of ``x ** exponent``: a PE squares by multiplying and takes ``** 0.5`` with its
    square root, as the Triton backend does; any other exponent is a ``pow``.

    >>> [power_ops(Const(n)) for n in (2, 3, 0.5, -0.5, -1, 1.5)]
    [('mul',), ('mul', 'mul'), ('sqrt',), ('rsqrt',), ('div',), ('pow',)]
    """
    n = _literal(exponent)
    if n is None:
        return ("pow",)
    if n == 0.5:
        return ("sqrt",)
    if n == -0.5:
        return ("rsqrt",)
    if n.is_integer() and abs(n) <= 4:
        muls = ("mul",) * max(0, int(abs(n)) - 1)
        return muls + (("div",) if n < 0 else ())
    return ("pow",)


def count_ops(body: Expr, combine: str | None) -> tuple[tuple[str, int], ...]:
    """Ops per point: a product feeding a sum is one ``mac``; constants are free.

    >>> from einsumcc.ir.nodes import Access, Compare, Logic, Not, Select
    >>> x = Access("X", ())
    >>> c = Logic("or", (Compare(x, ">", Const(0)), Not(Compare(x, "==", Const(1)))))
    >>> count_ops(Select(c, Binary("**", x, Const(2.5)), Const(0)), None)
    (('cmp', 2), ('not', 1), ('or', 1), ('pow', 1), ('select', 1))
    """
    counts: dict[str, int] = {}
    fused = combine == "sum" and isinstance(body, Binary) and body.op == "*"

    def visit(e: Expr, top: bool) -> None:
        if _is_constant(e):
            return
        for op in _node_ops(e, top and fused):
            counts[op] = counts.get(op, 0) + 1
        for c in children(e):
            visit(c, False)

    visit(body, True)
    if combine is not None and not fused:
        counts[_COMBINE_OP[combine]] = counts.get(_COMBINE_OP[combine], 0) + 1
    return tuple(sorted(counts.items()))


def _node_ops(e: Expr, fused_mac: bool) -> tuple[str, ...]:
    """The ops of one node of a point expression, without its children's."""
    if isinstance(e, Binary):
        if e.op == "**":
            return power_ops(e.rhs)
        if e.op == "*":
            return ("mac" if fused_mac else "mul",)
        return ("add",) if e.op in ("+", "-") else ("div",)
    if isinstance(e, Call):
        return (_CALL_OP.get(e.fn, e.fn),)
    if isinstance(e, Compare):
        return ("cmp",)
    if isinstance(e, Logic):
        return (e.op,) * (len(e.parts) - 1)
    if isinstance(e, Not):
        return ("not",)
    if isinstance(e, Select):
        return ("select",)
    return ()


@dataclass(frozen=True)
class _Filter:
    """A filter: affine conditions (``where``) and reads of mask kernels' results (``mask``)."""

    where: tuple[Condition, ...] = ()
    mask: tuple[Access, ...] = ()

    def of_kernel(self, space: frozenset[str], reduced: tuple[str, ...], main: bool) -> _Filter:
        """The parts a kernel over ``space`` applies: a reduction helper takes those on its
        reduced variables, the Einsum's own kernel those over its space."""

        def mine(vs: frozenset[str]) -> bool:
            return vs <= space and (not reduced or bool(vs & set(reduced)) or main)

        return _Filter(
            tuple(c for c in self.where if mine(c.variables)),
            tuple(a for a in self.mask if mine(a.variables)),
        )

    def of_reduction(self, fv: frozenset[str], rvars: frozenset[str]) -> _Filter:
        """The parts that a reduction nested in an expression (over ``rvars``) applies."""

        def mine(vs: frozenset[str]) -> bool:
            return bool(vs & rvars) and vs <= fv | rvars

        return _Filter(
            tuple(c for c in self.where if mine(c.variables)),
            tuple(a for a in self.mask if mine(a.variables)),
        )


class _Builder:
    def __init__(self, cascade: Cascade, einsum: Einsum) -> None:
        self.c = cascade
        self.e = einsum
        self.order = {v: i for i, v in enumerate(einsum.variables)}
        self.out: list[PEKernel] = []
        self.n = 0
        self.itemsize = cascade.tensor(einsum.name).dtype.itemsize

    def sorted_vars(self, vs: frozenset[str]) -> tuple[str, ...]:
        return tuple(sorted(vs, key=lambda v: (self.order.get(v, 1 << 20), v)))

    def helper(self, expr: Expr, filt: _Filter) -> Access:
        self.n += 1
        name = f"{self.e.name}.{self.n}"
        fv = self.sorted_vars(free_variables(expr))
        target = Access(name, tuple(var_symbol(v) for v in fv))
        self.kernel(name, target, fv, expr, filt)
        return target

    def mask_kernel(self) -> PEKernel | None:
        """(v2) The Einsum's data conditions as a kernel of their own (``E.mask``): a boolean
        per point, which the filtered kernel reads.  It runs over the points of the kernel
        it filters (the Einsum's own, unless the conditions are a nested reduction's), in
        the same loops: one compare per point per comparison, not hoisted."""
        if not self.e.mask:
            return None
        parts = self.e.mask
        cond = parts[0] if len(parts) == 1 else Logic("and", parts)
        fv = free_variables(cond)
        body = self.e.body
        top = set(self.e.lhs_variables) | (
            set(body.variables) if isinstance(body, Reduce) else set()
        )
        space = self.sorted_vars(fv | set(self.e.lhs_variables) if fv <= top else fv)
        name = f"{self.e.name}.mask"
        target = Access(name, tuple(var_symbol(v) for v in space))
        ops = count_ops(cond, None)
        return PEKernel(
            name, self.e.name, target, space, space, (), None, cond, (), ops, itemsize=1
        )

    def fill_reads(self) -> tuple[Access, ...]:
        """(v2) A fill that reads tensors, read at the output's points where it may show."""
        t = self.c.tensor(self.e.name)
        if not self.e.filtered:
            return ()
        subs = {
            var_symbol(d.rank.lower()): ix
            for d, ix in zip(t.dims, self.e.output.indices, strict=True)
            if not d.iterative
        }
        return tuple(
            Access(n.tensor, tuple(sympy.expand(i.subs(subs)) for i in n.indices))
            for n in walk(t.fill)
            if isinstance(n, Access)
        )

    def kernel(
        self, name: str, target: Access, lhs: tuple[str, ...], body: Expr, filt: _Filter
    ) -> None:
        if isinstance(body, Reduce):
            combine: str | None = body.op
            reduced = tuple(v for v in body.variables if v not in lhs)
            inner = body.body
        else:
            combine, reduced, inner = None, (), body
        space = lhs + reduced
        mine = frozenset(space)
        main = name == self.e.name
        here = filt.of_kernel(mine, reduced, main)
        inner = self.hoist(inner, mine, filt)
        alias = (
            isinstance(inner, Access)
            and combine is None
            and not here.where
            and not here.mask
            and main
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
                here.where,
                ops,
                alias,
                self.itemsize,
                mask=here.mask,
                fill_reads=self.fill_reads() if main else (),
            )
        )

    def hoist(self, e: Expr, space: frozenset[str], filt: _Filter) -> Expr:
        if isinstance(e, Access | Const | ParamRef | ExtentRef | VarRef) or _is_constant(e):
            return e
        fv = free_variables(e)
        if isinstance(e, Reduce):
            return self.helper(e, filt.of_reduction(fv, frozenset(e.variables)))
        if fv < space:
            return self.helper(e, _Filter())
        kids = tuple(self.hoist(c, space, filt) for c in children(e))
        return with_children(e, kids)


def init_kernel(cascade: Cascade, init: Init) -> PEKernel | None:
    """(v2) A tensor-valued ``init`` as a kernel over the target's own variables, named
    ``T.init``: it reads its inputs once and writes the first iterate (``RM[0, p]``)."""
    if not pointwise(init.value):
        return None
    t = init.target.tensor
    writer = next((e for e in cascade.einsums if e.name == t), None)
    if writer is None:
        return None
    lhs: list[str] = []
    for ix in init.target.affine_indices:
        lhs.extend(v for v in sorted(ix.variables) if v not in lhs)
    return PEKernel(
        f"{t}.init",
        t,
        init.target,
        tuple(lhs),
        tuple(lhs),
        (),
        None,
        init.value,
        (),
        count_ops(init.value, None),
        False,
        cascade.tensor(t).dtype.itemsize,
        init=True,
    )


def kernels(cascade: Cascade) -> tuple[PEKernel, ...]:
    """Every Einsum's kernels, helpers first, in the cascade's dependency order; the kernels
    of tensor-valued inits come before all of them (they read inputs only)."""
    out: list[PEKernel] = []
    for i in cascade.inits:
        k = init_kernel(cascade, i)
        if k is not None:
            out.append(k)
    for e in cascade.einsums:
        b = _Builder(cascade, e)
        mask = b.mask_kernel()
        filt = _Filter(e.where, (mask.output,) if mask is not None else ())
        b.kernel(e.name, e.output, e.lhs_variables, e.body, filt)
        # the mask right before the kernel it filters (the Einsum's own, or a nested
        # reduction's): after the other helpers, which may run outside loops they share
        if mask is not None:
            at = next((i for i, k in enumerate(b.out) if mask.output in k.mask), len(b.out) - 1)
            b.out.insert(at, mask)
        out.extend(b.out)
    return tuple(out)


def index_vars(index: sympy.Expr) -> frozenset[str]:
    return frozenset(str(s) for s in index.free_symbols if s.is_nonnegative and not s.is_positive)
