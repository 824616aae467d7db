"""The cascade IR: frozen, hashable dataclasses.  Spans never take part in equality.

Index expressions, extents and filter conditions are exact :class:`~einsumcc.ir.affine.Affine`
expressions over two kinds of symbols: rank variables (``m1``: integer, non-negative) and rank
extents (``M0``: integer, positive).  The later stages read them as sympy expressions
(``Access.indices``, ``Rank.extent``, ``Condition.lhs``), built on first use, so that checking
a cascade imports no sympy.  Value expressions are a small tree of their own (:data:`Expr`),
because they carry reductions, calls and spans that sympy cannot hold.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from einsumcc.diagnostics import Span
from einsumcc.ir.affine import Affine

if TYPE_CHECKING:
    import sympy


def _span() -> Span | None:
    return field(default=None, compare=False, hash=False, repr=False)


@functools.cache
def var_symbol(name: str) -> sympy.Symbol:
    """The sympy symbol of a rank variable (``m1``)."""
    import sympy

    return sympy.Symbol(name, integer=True, nonnegative=True)


@functools.cache
def extent_symbol(name: str) -> sympy.Symbol:
    """The sympy symbol of a rank extent (``M0``)."""
    import sympy

    return sympy.Symbol(name, integer=True, positive=True)


def is_var_symbol(sym: sympy.Basic) -> bool:
    import sympy

    return isinstance(sym, sympy.Symbol) and bool(sym.is_nonnegative) and not sym.is_positive


def _affine(expr: Affine | sympy.Expr | int) -> Affine:
    return Affine.from_sympy(expr)


class DType(enum.Enum):
    F16 = "f16"
    BF16 = "bf16"
    F32 = "f32"
    F64 = "f64"
    I32 = "i32"
    I64 = "i64"
    BOOL = "bool"

    @property
    def itemsize(self) -> int:
        return {"f16": 2, "bf16": 2, "f32": 4, "f64": 8, "i32": 4, "i64": 8, "bool": 1}[self.value]

    @property
    def is_float(self) -> bool:
        return self.value in {"f16", "bf16", "f32", "f64"}

    @property
    def max_finite(self) -> float:
        return {
            "f16": 65504.0,
            "bf16": 3.3895313892515355e38,
            "f32": 3.4028234663852886e38,
            "f64": 1.7976931348623157e308,
            "i32": float(2**31 - 1),
            "i64": float(2**63 - 1),
            "bool": 1.0,
        }[self.value]

    @property
    def min_value(self) -> float:
        return {"i32": -float(2**31), "i64": -float(2**63), "bool": 0.0}.get(
            self.value, -self.max_finite
        )

    def can_represent(self, value: float) -> bool:
        if math.isnan(value):
            return self.is_float
        if math.isinf(value):
            return self.is_float
        if not self.is_float and value != int(value):
            return False
        return self.min_value <= value <= self.max_finite


class Role(enum.Enum):
    INPUT = "input"
    OUTPUT = "output"
    INTERMEDIATE = "tensor"


# ---------------------------------------------------------------- value expressions


@dataclass(frozen=True, slots=True)
class Const:
    value: int | float
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ParamRef:
    name: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ExtentRef:
    """A rank extent used as a value (``E`` in ``1 / sqrt(E)``)."""

    rank: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class VarRef:
    """A rank variable used as a value (``p - m``): an integer."""

    var: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True, init=False)
class Access:
    """``T[i, j]``.  ``indices`` are given as :class:`Affine` or sympy expressions."""

    tensor: str
    affine_indices: tuple[Affine, ...]
    span: Span | None = _span()

    def __init__(
        self,
        tensor: str,
        indices: Sequence[Affine | sympy.Expr | int],
        span: Span | None = None,
    ) -> None:
        object.__setattr__(self, "tensor", tensor)
        object.__setattr__(self, "affine_indices", tuple(_affine(i) for i in indices))
        object.__setattr__(self, "span", span)

    @property
    def indices(self) -> tuple[sympy.Expr, ...]:
        """The index expressions in sympy (imports sympy)."""
        return tuple(a.sympy for a in self.affine_indices)

    def __repr__(self) -> str:
        return f"Access(tensor={self.tensor!r}, indices={self.indices!r})"

    @property
    def variables(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for ix in self.affine_indices:
            out |= ix.variables
        return out


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # + - * /
    lhs: Expr
    rhs: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Call:
    fn: str
    args: tuple[Expr, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Reduce:
    op: str  # sum max min prod
    variables: tuple[str, ...]  # sorted
    body: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Compare:
    """(v2) ``lhs op rhs`` of value expressions: a condition, true or false at each point."""

    lhs: Expr
    op: str  # < <= > >= == !=
    rhs: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Logic:
    """(v2) ``a and b and ...`` or ``a or b or ...`` of conditions (two parts or more)."""

    op: str  # and | or
    parts: tuple[Expr, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Not:
    """(v2) ``not c`` of a condition."""

    operand: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Select:
    """(v2) ``select(cond, then, other)``: ``then`` where the condition holds, else ``other``."""

    cond: Expr
    then: Expr
    other: Expr
    span: Span | None = _span()


Expr = (
    Const
    | ParamRef
    | ExtentRef
    | VarRef
    | Access
    | Neg
    | Binary
    | Call
    | Reduce
    | Compare
    | Logic
    | Not
    | Select
)
CONDITIONS = (Compare, Logic, Not)
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


def is_condition(e: Expr) -> bool:
    """Whether ``e`` is a condition (a comparison, ``and``, ``or``, ``not``), not a value."""
    return isinstance(e, CONDITIONS)


REDUCTIONS = ("sum", "max", "min", "prod")
FUNCTIONS: dict[str, int] = {
    "exp": 1,
    "log": 1,
    "sqrt": 1,
    "rsqrt": 1,
    "tanh": 1,
    "sigmoid": 1,
    "relu": 1,
    "abs": 1,
    "max": 2,
    "min": 2,
    # extension: EDGE's ÷(←) merge, a / b where b != 0 and 0 where b == 0
    "safe_div": 2,
}


def children(e: Expr) -> tuple[Expr, ...]:
    if isinstance(e, Neg | Not):
        return (e.operand,)
    if isinstance(e, Binary | Compare):
        return (e.lhs, e.rhs)
    if isinstance(e, Call):
        return e.args
    if isinstance(e, Reduce):
        return (e.body,)
    if isinstance(e, Logic):
        return e.parts
    if isinstance(e, Select):
        return (e.cond, e.then, e.other)
    return ()


def with_children(e: Expr, kids: tuple[Expr, ...]) -> Expr:
    """``e`` with its children replaced (the inverse of :func:`children`)."""
    if isinstance(e, Neg | Not):
        return dataclasses.replace(e, operand=kids[0])
    if isinstance(e, Binary | Compare):
        return dataclasses.replace(e, lhs=kids[0], rhs=kids[1])
    if isinstance(e, Call):
        return dataclasses.replace(e, args=kids)
    if isinstance(e, Reduce):
        return dataclasses.replace(e, body=kids[0])
    if isinstance(e, Logic):
        return dataclasses.replace(e, parts=kids)
    if isinstance(e, Select):
        return dataclasses.replace(e, cond=kids[0], then=kids[1], other=kids[2])
    return e


def walk(e: Expr) -> Iterator[Expr]:
    """Every node of ``e``, parents before children."""
    yield e
    for c in children(e):
        yield from walk(c)


def accesses(e: Expr) -> tuple[Access, ...]:
    return tuple(n for n in walk(e) if isinstance(n, Access))


def free_variables(e: Expr) -> frozenset[str]:
    """Rank variables used in ``e`` and not bound by a reduction inside it."""
    if isinstance(e, Access):
        return e.variables
    if isinstance(e, VarRef):
        return frozenset({e.var})
    if isinstance(e, Reduce):
        return free_variables(e.body) - set(e.variables)
    out: frozenset[str] = frozenset()
    for c in children(e):
        out |= free_variables(c)
    return out


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True, init=False)
class Rank:
    """A rank.  ``extent`` is its default (an integer expression of other extents) or None."""

    name: str
    affine_extent: Affine | None
    span: Span | None = _span()

    def __init__(
        self, name: str, extent: Affine | sympy.Expr | int | None, span: Span | None = None
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "affine_extent", None if extent is None else _affine(extent))
        object.__setattr__(self, "span", span)

    @property
    def extent(self) -> sympy.Expr | None:
        """The default extent in sympy (imports sympy), or None."""
        return None if self.affine_extent is None else self.affine_extent.sympy

    def __repr__(self) -> str:
        return f"Rank(name={self.name!r}, extent={self.extent!r})"

    @property
    def var(self) -> str:
        return self.name.lower()

    @property
    def symbol(self) -> sympy.Symbol:
        return extent_symbol(self.name)


@dataclass(frozen=True, slots=True)
class Split:
    """``split M -> M1, M0`` declares ``m == m1*M0 + m0`` and ``M == M1*M0``."""

    parent: str
    children: tuple[str, ...]
    span: Span | None = _span()

    @property
    def index_affine(self) -> Affine:
        """The parent's variable in terms of the children's: ``m1*M0 + m0``."""
        expr = Affine.const(0)
        stride = Affine.const(1)
        for child in reversed(self.children):
            expr = expr + Affine.var(child.lower()) * stride
            stride = stride * Affine.extent(child)
        return expr

    @property
    def index_expr(self) -> sympy.Expr:
        """:attr:`index_affine` in sympy (imports sympy)."""
        return self.index_affine.sympy


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Dim:
    """One position of a tensor: a rank, or the iterative copy of a rank (extent ``X + 1``)."""

    rank: str
    iterative: bool = False

    def __str__(self) -> str:
        return f"{self.rank}+1" if self.iterative else self.rank


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    role: Role
    dims: tuple[Dim, ...]
    dtype: DType
    fill: Expr
    span: Span | None = _span()

    @property
    def ranks(self) -> tuple[str, ...]:
        return tuple(d.rank for d in self.dims)

    @property
    def iterative_position(self) -> int | None:
        for i, d in enumerate(self.dims):
            if d.iterative:
                return i
        return None

    @property
    def is_iterative(self) -> bool:
        return self.iterative_position is not None


@dataclass(frozen=True, slots=True, init=False)
class Condition:
    """One affine comparison of a ``where`` filter."""

    affine_lhs: Affine
    op: str  # < <= > >= == !=
    affine_rhs: Affine
    span: Span | None = _span()

    def __init__(
        self,
        lhs: Affine | sympy.Expr | int,
        op: str,
        rhs: Affine | sympy.Expr | int,
        span: Span | None = None,
    ) -> None:
        object.__setattr__(self, "affine_lhs", _affine(lhs))
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "affine_rhs", _affine(rhs))
        object.__setattr__(self, "span", span)

    @property
    def lhs(self) -> sympy.Expr:
        return self.affine_lhs.sympy

    @property
    def rhs(self) -> sympy.Expr:
        return self.affine_rhs.sympy

    def __repr__(self) -> str:
        return f"Condition(lhs={self.lhs!r}, op={self.op!r}, rhs={self.rhs!r})"

    @property
    def variables(self) -> frozenset[str]:
        return self.affine_lhs.variables | self.affine_rhs.variables


def iterative_variable(target: Access) -> str | None:
    """``x`` when ``target`` writes ``T[.., x + 1, ..]`` (the next iterate of a recurrence)."""
    for ix in target.affine_indices:
        syms = ix.variables
        if len(syms) == 1 and ix.is_var_plus(next(iter(syms)), 1):
            return next(iter(syms))
    return None


@dataclass(frozen=True, slots=True)
class Einsum:
    """One statement ``OUT[...] = body where ...``; named after the tensor it assigns.

    The filter is the conjunction of ``where`` (its affine comparisons over rank variables,
    extents and integers: what tools reason about statically) and ``mask`` (v2: every other
    conjunct, conditions evaluated point by point, which may read tensors).
    """

    output: Access
    body: Expr
    where: tuple[Condition, ...] = ()
    span: Span | None = _span()
    mask: tuple[Expr, ...] = ()

    @property
    def name(self) -> str:
        return self.output.tensor

    @property
    def lhs_variables(self) -> tuple[str, ...]:
        out: list[str] = []
        for ix in self.output.affine_indices:
            for var in sorted(ix.variables):
                if var not in out:
                    out.append(var)
        return tuple(out)

    @property
    def iterative_variable(self) -> str | None:
        """``m1`` when the output is indexed ``m1 + 1``."""
        return iterative_variable(self.output)

    @property
    def reduced_variables(self) -> tuple[str, ...]:
        out: list[str] = []
        for n in walk(self.body):
            if isinstance(n, Reduce):
                out.extend(v for v in n.variables if v not in out)
        return tuple(out)

    @property
    def variables(self) -> tuple[str, ...]:
        """The iteration space: left-hand variables, then reduced ones."""
        lhs = self.lhs_variables
        return lhs + tuple(v for v in self.reduced_variables if v not in lhs)

    @property
    def reads(self) -> tuple[Access, ...]:
        """Every tensor read: the body's, then the filter's (``mask``)."""
        out = accesses(self.body)
        for m in self.mask:
            out += accesses(m)
        return out

    @property
    def body_reads(self) -> tuple[Access, ...]:
        return accesses(self.body)

    @property
    def mask_reads(self) -> tuple[Access, ...]:
        return tuple(a for m in self.mask for a in accesses(m))

    @property
    def filtered(self) -> bool:
        return bool(self.where or self.mask)


@dataclass(frozen=True, slots=True)
class Init:
    """``init RM[0, p] = -inf``: the first iterate of an iterative tensor."""

    target: Access
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Expect:
    """``expect passes(M) == 3``."""

    fn: str
    args: tuple[str, ...]
    op: str
    value: int | float
    span: Span | None = _span()
