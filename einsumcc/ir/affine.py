"""Exact index, extent and filter expressions, without sympy.

An :class:`Affine` is built from integers, rank variables (``m1``: integer, non-negative) and
rank extents (``M0``: integer, positive) with ``+ - * /``.  It answers the checker's questions
(equality, free symbols, affinity, value at given extents) from a canonical form: a sum of
monomials with :class:`~fractions.Fraction` coefficients, where the exponents of a monomial
may be negative (a division by a monomial is exact).

It also remembers how it was built, so that :attr:`Affine.sympy`, computed on first use,
replays the very operations in sympy: the IR exposes the same sympy expressions that building
with sympy directly gave.  A division by a sum of terms has no canonical form here; such an
expression answers through sympy (imported then).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple, Union

if TYPE_CHECKING:
    import sympy as sp


class Sym(NamedTuple):
    """A symbol: a rank variable (``var``) or a rank extent."""

    name: str
    var: bool

    def __str__(self) -> str:
        return self.name


Monomial = tuple[tuple[Sym, int], ...]  # sorted, exponents non-zero
Poly = tuple[tuple[Monomial, Fraction], ...]  # sorted, coefficients non-zero
_Recipe = tuple[Any, ...]
Operand = Union["Affine", int]


def _poly_add(a: Poly, b: Poly, sign: int = 1) -> Poly:
    out = dict(a)
    for m, c in b:
        out[m] = out.get(m, Fraction(0)) + sign * c
    return tuple(sorted((m, c) for m, c in out.items() if c != 0))


def _mono_mul(a: Monomial, b: Monomial, sign: int = 1) -> Monomial:
    out = dict(a)
    for s, e in b:
        out[s] = out.get(s, 0) + sign * e
    return tuple(sorted((s, e) for s, e in out.items() if e != 0))


# A product with more terms than this has no canonical form here (expanding products of sums
# grows exponentially); such an expression answers through sympy, unexpanded.
MAX_TERMS = 4096


def _poly_mul(a: Poly, b: Poly) -> Poly | None:
    if len(a) * len(b) > MAX_TERMS:
        return None
    out: dict[Monomial, Fraction] = {}
    for ma, ca in a:
        for mb, cb in b:
            m = _mono_mul(ma, mb)
            out[m] = out.get(m, Fraction(0)) + ca * cb
    return tuple(sorted((m, c) for m, c in out.items() if c != 0))


def _poly_div(a: Poly, b: Poly) -> Poly | None:
    if len(b) != 1:
        return None  # zero, or a sum of terms: no canonical form
    mb, cb = b[0]
    return tuple(sorted((_mono_mul(m, mb, -1), c / cb) for m, c in a))


def _const(value: int | Fraction) -> Poly:
    return (((), Fraction(value)),) if value != 0 else ()


class Affine:
    """An exact expression of rank variables and extents (see the module docstring)."""

    __slots__ = ("_hash", "_poly", "_poly_done", "_recipe", "_sympy")

    def __init__(self, recipe: _Recipe) -> None:
        self._recipe = recipe
        self._poly: Poly | None = None
        self._poly_done = False
        self._sympy: sp.Expr | None = None
        self._hash: int | None = None

    # ------------------------------------------------------------ construction
    @staticmethod
    def var(name: str) -> Affine:
        return Affine(("sym", Sym(name, True)))

    @staticmethod
    def extent(name: str) -> Affine:
        return Affine(("sym", Sym(name, False)))

    @staticmethod
    def const(value: int) -> Affine:
        return Affine(("num", int(value)))

    @staticmethod
    def from_sympy(expr: object) -> Affine:
        """Wrap a sympy expression (what other stages build); its value is kept as is."""
        if isinstance(expr, Affine):
            return expr
        if isinstance(expr, int):
            return Affine.const(expr)
        out = Affine(("sympy", expr))
        out._sympy = expr
        return out

    def simplified(self) -> Affine:
        """The same value; its sympy form is ``sympy.simplify`` of this one's."""
        return Affine(("simplify", self))

    @staticmethod
    def _wrap(x: Operand) -> Affine:
        return x if isinstance(x, Affine) else Affine.const(x)

    def __add__(self, other: Operand) -> Affine:
        return Affine(("+", self, Affine._wrap(other)))

    def __radd__(self, other: int) -> Affine:
        return Affine(("+", Affine.const(other), self))

    def __sub__(self, other: Operand) -> Affine:
        return Affine(("-", self, Affine._wrap(other)))

    def __rsub__(self, other: int) -> Affine:
        return Affine(("-", Affine.const(other), self))

    def __mul__(self, other: Operand) -> Affine:
        return Affine(("*", self, Affine._wrap(other)))

    def __rmul__(self, other: int) -> Affine:
        return Affine(("*", Affine.const(other), self))

    def __truediv__(self, other: Operand) -> Affine:
        return Affine(("/", self, Affine._wrap(other)))

    def __neg__(self) -> Affine:
        return Affine(("neg", self))

    # ------------------------------------------------------------ canonical form
    @property
    def poly(self) -> Poly | None:
        """The canonical form, or None where there is none (a division by a sum)."""
        if not self._poly_done:
            self._poly = self._compute_poly()
            self._poly_done = True
        return self._poly

    def _compute_poly(self) -> Poly | None:
        r = self._recipe
        op = r[0]
        if op == "sym":
            return ((((r[1], 1),), Fraction(1)),)
        if op == "num":
            return _const(r[1])
        if op == "sympy":
            return _poly_of_sympy(r[1])
        a = r[1].poly
        if op in ("neg", "simplify") or a is None:
            return None if a is None else (_poly_add((), a, -1) if op == "neg" else a)
        b = r[2].poly
        if b is None:
            return None
        if op == "+":
            return _poly_add(a, b)
        if op == "-":
            return _poly_add(a, b, -1)
        if op == "*":
            return _poly_mul(a, b)
        return _poly_div(a, b)

    @property
    def sympy(self) -> sp.Expr:
        """This expression in sympy, built by the same operations (imports sympy)."""
        if self._sympy is None:
            self._sympy = self._build_sympy()
        return self._sympy

    def _build_sympy(self) -> sp.Expr:
        import sympy

        from einsumcc.ir.nodes import extent_symbol, var_symbol

        r = self._recipe
        op = r[0]
        if op == "sym":
            s: Sym = r[1]
            return var_symbol(s.name) if s.var else extent_symbol(s.name)
        if op == "num":
            return sympy.Integer(r[1])
        if op == "neg":
            return -r[1].sympy
        if op == "simplify":
            return sympy.simplify(r[1].sympy)
        a = r[1].sympy
        b = r[2].sympy
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]

    # ------------------------------------------------------------ questions
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Affine):
            return NotImplemented
        if self is other:
            return True
        a, b = self.poly, other.poly
        if a is not None and b is not None:
            return a == b
        if a is None and b is None:
            return bool(self.sympy == other.sympy)
        return False

    def __hash__(self) -> int:
        if self._hash is None:
            p = self.poly
            self._hash = hash(p) if p is not None else hash(self.sympy)
        return self._hash

    def __repr__(self) -> str:
        return f"Affine({self.render()})"

    def render(self) -> str:
        """The text ``einsumcc show`` prints for this expression."""
        from einsumcc.ir.dump import render_index

        return render_index(self.sympy)

    @property
    def free_symbols(self) -> frozenset[Sym]:
        p = self.poly
        if p is None:
            from einsumcc.ir.nodes import is_var_symbol

            return frozenset(Sym(str(s), is_var_symbol(s)) for s in self.sympy.free_symbols)
        return frozenset(s for m, _ in p for s, _ in m)

    @property
    def variables(self) -> frozenset[str]:
        """The rank variables used."""
        return frozenset(s.name for s in self.free_symbols if s.var)

    @property
    def extents(self) -> frozenset[str]:
        """The rank extents used."""
        return frozenset(s.name for s in self.free_symbols if not s.var)

    @property
    def number(self) -> Fraction | None:
        """The value, when the expression is a number."""
        p = self.poly
        if p is None:
            value = self.sympy
            return Fraction(str(value)) if value.is_Rational else None
        if not p:
            return Fraction(0)
        if len(p) == 1 and p[0][0] == ():
            return p[0][1]
        return None

    def is_int(self, value: int) -> bool:
        """Whether the expression is the integer ``value``."""
        return self.number == value

    def is_var_plus(self, var: str, offset: int) -> bool:
        """Whether the expression is ``var + offset``."""
        return self == Affine.var(var) + offset if offset else self == Affine.var(var)

    def evaluate(self, values: Mapping[str, int | Fraction]) -> Fraction | None:
        """The value with extents (by name) replaced by ``values``; None if not a number."""
        p = self.poly
        if p is None:
            return self._evaluate_sympy(values)
        total = Fraction(0)
        for m, c in p:
            term = c
            for s, e in m:
                if s.var or s.name not in values:
                    return None
                base = Fraction(values[s.name])
                if base == 0 and e < 0:
                    return None
                term *= base**e
            total += term
        return total

    def _evaluate_sympy(self, values: Mapping[str, int | Fraction]) -> Fraction | None:
        import sympy

        from einsumcc.ir.nodes import extent_symbol

        subs = {
            extent_symbol(k): sympy.Rational(v.numerator, v.denominator)
            if isinstance(v, Fraction)
            else v
            for k, v in values.items()
        }
        value = self.sympy.subs(subs)
        return Fraction(str(value)) if value.is_Rational else None

    def affine_problem(self) -> tuple[str, str, str] | None:
        """Why this is not an affine index with integer coefficients, or None.

        ``("nonaffine", "", "")``, ``("coefficient", coeff, var)`` or ``("offset", const, "")``.
        """
        p = self.poly
        if p is None:
            return _sympy_affine_problem(self.sympy)
        coeffs: dict[str, Poly] = {}
        const: Poly = ()
        for m, c in p:
            vs = [(s, e) for s, e in m if s.var]
            if len(vs) > 1 or (vs and vs[0][1] != 1):
                return ("nonaffine", "", "")
            if vs:
                rest = tuple(x for x in m if not x[0].var)
                name = vs[0][0].name
                coeffs[name] = _poly_add(coeffs.get(name, ()), ((rest, c),))
            else:
                const = _poly_add(const, ((m, c),))
        for name in sorted(coeffs):
            value = Affine._number_of(coeffs[name])
            if value is not None and value.denominator != 1:
                return ("coefficient", str(value), name)
        value = Affine._number_of(const)
        if value is not None and value.denominator != 1:
            return ("offset", str(value), "")
        return None

    @staticmethod
    def _number_of(p: Poly) -> Fraction | None:
        if not p:
            return Fraction(0)
        if len(p) == 1 and p[0][0] == ():
            return p[0][1]
        return None


def _poly_of_sympy(expr: object) -> Poly | None:
    """The canonical form of a sympy expression of symbols, rationals, +, * and integer powers."""
    from einsumcc.ir.nodes import is_var_symbol

    e: Any = expr
    if e.is_Symbol:
        return ((((Sym(str(e), is_var_symbol(e)), 1),), Fraction(1)),)
    if e.is_Rational:
        return _const(Fraction(int(e.p), int(e.q)))
    if e.is_Add or e.is_Mul:
        parts = [_poly_of_sympy(a) for a in e.args]
        if any(q is None for q in parts):
            return None
        out: Poly | None = () if e.is_Add else _const(1)
        for q in parts:
            assert q is not None
            if out is None:
                return None
            out = _poly_add(out, q) if e.is_Add else _poly_mul(out, q)
        return out
    if e.is_Pow and e.exp.is_Integer:
        base = _poly_of_sympy(e.base)
        n = int(e.exp)
        if base is None or abs(n) > 64:
            return None
        power: Poly | None = _const(1)
        for _ in range(abs(n)):
            power = _poly_mul(power, base) if power is not None else None
        if power is None:
            return None
        return power if n >= 0 else _poly_div(_const(1), power)
    return None


def _sympy_affine_problem(expr: sp.Expr) -> tuple[str, str, str] | None:
    """:meth:`Affine.affine_problem` of an expression without a canonical form."""
    import sympy

    from einsumcc.ir.nodes import is_var_symbol

    variables = sorted((s for s in expr.free_symbols if is_var_symbol(s)), key=str)
    for v in variables:
        coeff = sympy.diff(expr, v)
        if any(is_var_symbol(x) for x in coeff.free_symbols):
            return ("nonaffine", "", "")
        if coeff.is_number and not coeff.is_integer:
            return ("coefficient", str(coeff), str(v))
    const = expr.subs(dict.fromkeys(variables, 0))
    if const.is_number and not const.is_integer:
        return ("offset", str(const), "")
    return None
