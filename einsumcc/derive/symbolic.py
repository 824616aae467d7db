"""Value expressions of a cascade as sympy expressions, relative to one rank.

The rewrite engine reasons about *statistics*: reductions that consume a whole fiber of the
rank (``max{m} QK[m, p]``, ``sum{m} SN[m, p]``).  :class:`Symbolic` turns the right-hand sides
of a cascade into sympy expressions in which

* every statistic is one symbol (``S1``), with its definition in :attr:`Symbolic.stats`;
* every tensor that depends on a statistic is inlined (``SN[m, p]`` becomes
  ``exp(QK[m, p] - S1)``), so that a statistic's body shows what it depends on;
* everything else (inputs, intermediates that depend on no statistic, params, rank
  variables used as values, reductions over other ranks) is an *atom*: a symbol that stands
  for an IR expression, kept as it is.

:func:`to_ir` turns such an expression back into an IR value expression.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sympy

from einsumcc.ir.affine import Affine
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.dump import render_expr
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
    VarRef,
    children,
    extent_symbol,
    free_variables,
    var_symbol,
    with_children,
)


class NotRewritableError(Exception):
    """An expression the engine cannot reason about (it stays as it is)."""


def family(cascade: Cascade, rank: str) -> frozenset[str]:
    """Every variable that walks ``rank``: its own, those of the ranks it was split into, and
    those of an index that walks it through several variables (the pass analysis')."""
    from einsumcc.analysis.passes import _family

    return _family(cascade, rank)


@dataclass(frozen=True)
class Stat:
    """A reduction over a whole fiber of the rank: ``op{variables} body where ...``."""

    symbol: sympy.Symbol
    op: str
    variables: tuple[str, ...]
    body: sympy.Expr
    where: tuple[Condition, ...]
    origin: str


def substitute(e: Expr, m: Mapping[str, Affine]) -> Expr:
    """``e`` with rank variables replaced by affine expressions (bound ones are left alone)."""
    if not m:
        return e
    if isinstance(e, Access):
        return Access(e.tensor, [substitute_affine(ix, m) for ix in e.affine_indices], e.span)
    if isinstance(e, VarRef):
        return affine_expr(m[e.var]) if e.var in m else e
    if isinstance(e, Reduce):
        inner = {k: v for k, v in m.items() if k not in e.variables}
        return with_children(e, (substitute(e.body, inner),))
    kids = children(e)
    return with_children(e, tuple(substitute(k, m) for k in kids)) if kids else e


def substitute_affine(ix: Affine, m: Mapping[str, Affine]) -> Affine:
    used = {k: v for k, v in m.items() if k in ix.variables}
    if not used:
        return ix
    expr = ix.sympy.subs({var_symbol(k): v.sympy for k, v in used.items()}, simultaneous=True)
    return Affine.from_sympy(sympy.expand(expr))


def substitute_condition(c: Condition, m: Mapping[str, Affine]) -> Condition:
    return Condition(
        substitute_affine(c.affine_lhs, m), c.op, substitute_affine(c.affine_rhs, m), c.span
    )


def affine_expr(a: Affine) -> Expr:
    """An affine index expression as a value expression."""
    return to_ir(a.sympy, {})


def _reduce_is_full(r: Reduce, fam: frozenset[str]) -> bool:
    return bool(free_variables(r.body) & fam) and not (free_variables(r) & fam)


class Symbolic:
    """The cascade's expressions as sympy, with statistics and atoms (module docstring)."""

    def __init__(self, cascade: Cascade, rank: str) -> None:
        self.c = cascade
        self.rank = rank
        self.family = family(cascade, rank)
        self.atoms: dict[sympy.Symbol, Expr] = {}
        self._atom_of: dict[Expr, sympy.Symbol] = {}
        self.dependent_atoms: set[sympy.Symbol] = set()
        self.stats: dict[sympy.Symbol, Stat] = {}
        self._stat_of: dict[tuple[Any, ...], sympy.Symbol] = {}
        self._dep: dict[str, bool] = {}
        self.masks: dict[sympy.Symbol, tuple[Condition, ...]] = {}

    # ------------------------------------------------------------ classification
    def depends(self, tensor: str) -> bool:
        """Whether ``tensor`` depends on a statistic over the rank."""
        if tensor not in self._dep:
            self._dep[tensor] = False  # a guard for recurrences
            e = self.c.producer(tensor)
            self._dep[tensor] = e is not None and self.expr_depends(e.body)
        return self._dep[tensor]

    def expr_depends(self, e: Expr) -> bool:
        if isinstance(e, Reduce) and _reduce_is_full(e, self.family):
            return True
        if isinstance(e, Access) and e.tensor != "" and self.depends(e.tensor):
            return True
        return any(self.expr_depends(k) for k in children(e))

    def is_stream(self, sym: sympy.Symbol) -> bool:
        """An atom that varies along the rank."""
        if sym in self.masks:
            return any(c.variables & self.family for c in self.masks[sym])
        ir = self.atoms.get(sym)
        return ir is not None and bool(free_variables(ir) & self.family)

    def streams(self, expr: sympy.Expr) -> bool:
        return any(self.is_stream(s) for s in expr.free_symbols)

    def stats_in(self, expr: sympy.Expr) -> set[sympy.Symbol]:
        return {s for s in expr.free_symbols if s in self.stats}

    def count(self, variables: tuple[str, ...]) -> sympy.Expr:
        """The number of points of a fiber over ``variables`` (no filter)."""
        out = sympy.Integer(1)
        for v in variables:
            out *= extent_symbol(self.c.var_ranks[v])
        return out

    def blocked(self, expr: sympy.Expr) -> bool:
        """Whether ``expr`` needs a finished statistic."""
        return any(s in self.stats or s in self.dependent_atoms for s in expr.free_symbols)

    # ------------------------------------------------------------ conversion
    def atom(self, ir: Expr, dependent: bool = False) -> sympy.Symbol:
        sym = self._atom_of.get(ir)
        if sym is None:
            sym = sympy.Symbol(f"{render_expr(ir)}#{len(self.atoms)}", real=True)
            self._atom_of[ir] = sym
            self.atoms[sym] = ir
            if dependent:
                self.dependent_atoms.add(sym)
        return sym

    def convert(self, e: Expr, where: tuple[Condition, ...] = (), origin: str = "") -> sympy.Expr:
        """``e`` as sympy; full reductions in it become statistics filtered by ``where``."""
        if isinstance(e, Const):
            if isinstance(e.value, float) and e.value in (float("inf"), float("-inf")):
                return sympy.oo if e.value > 0 else -sympy.oo
            return sympy.Integer(e.value) if isinstance(e.value, int) else sympy.Float(e.value)
        if isinstance(e, ExtentRef):
            return extent_symbol(e.rank)
        if isinstance(e, ParamRef | VarRef):
            return self.atom(e)
        if isinstance(e, Access):
            return self.access(e)
        if isinstance(e, Neg):
            return -self.convert(e.operand, where, origin)
        if isinstance(e, Binary):
            if e.op not in _BINARY:
                return self.opaque(e)
            return sympy_binary(
                e.op, self.convert(e.lhs, where, origin), self.convert(e.rhs, where, origin)
            )
        if isinstance(e, Call):
            return sympy_call(e.fn, [self.convert(a, where, origin) for a in e.args])
        if not isinstance(e, Reduce):  # v2 conditions and select: atoms, or not rewritable
            return self.opaque(e)
        if _reduce_is_full(e, self.family):
            return self.stat(e, where, origin)
        if self.expr_depends(e.body):
            raise NotRewritableError(f"a reduction over {', '.join(e.variables)} of a statistic")
        return self.atom(e)

    def opaque(self, e: Expr) -> sympy.Expr:
        """An expression the algebra does not look into: an atom when it needs no statistic."""
        if self.expr_depends(e):
            raise NotRewritableError(f"{type(e).__name__.lower()} of a finished statistic")
        return self.atom(e)

    def stat(self, r: Reduce, where: tuple[Condition, ...], origin: str) -> sympy.Symbol:
        if r.op not in ("sum", "max", "min"):
            raise NotRewritableError(f"a {r.op} reduction")
        body = self.convert(r.body)
        mine = tuple(c for c in where if c.variables & self.family)
        key = (r.op, r.variables, sympy.srepr(body), mine)
        sym = self._stat_of.get(key)
        if sym is None:
            sym = sympy.Symbol(f"S{len(self.stats) + 1}", real=True)
            self._stat_of[key] = sym
            self.stats[sym] = Stat(sym, r.op, r.variables, body, mine, origin)
        return sym

    def access(self, acc: Access) -> sympy.Expr:
        e = self.c.producer(acc.tensor)
        if e is None or not self.depends(acc.tensor):
            return self.atom(acc)
        try:
            return self.inline(e, acc)
        except NotRewritableError:
            return self.atom(acc, dependent=True)

    def inline(self, e: Einsum, acc: Access) -> sympy.Expr:
        """The value of ``acc``, a read of a tensor that depends on a statistic."""
        if e.iterative_variable is not None:
            raise NotRewritableError("a recurrence")
        if getattr(e, "mask", ()):
            raise NotRewritableError("a data-dependent filter")
        m: dict[str, Affine] = {}
        for mine, theirs in zip(e.output.affine_indices, acc.affine_indices, strict=True):
            names = mine.variables
            if len(names) != 1 or not mine.is_var_plus(next(iter(names)), 0):
                raise NotRewritableError("a write through a split")
            m[next(iter(names))] = theirs
        where = tuple(substitute_condition(c, m) for c in e.where)
        if e.where and not (isinstance(e.body, Reduce) and _reduce_is_full(e.body, self.family)):
            if self.c.tensor(e.name).fill != Const(0):
                raise NotRewritableError("a filtered tensor with a nonzero fill")
            return self.convert(substitute(e.body, m)) * self.mask(where)
        return self.convert(substitute(e.body, m), where, e.name)

    def mask(self, where: tuple[Condition, ...]) -> sympy.Symbol:
        """The indicator of ``where`` (1 where it holds, 0 elsewhere): a filtered tensor with
        fill 0 is its value times its mask.  Only a sum can take a mask (into its filter)."""
        for sym, conds in self.masks.items():
            if conds == where:
                return sym
        sym = sympy.Symbol(f"MASK{len(self.masks)}", real=True)
        self.masks[sym] = where
        return sym

    def split_masks(self, expr: sympy.Expr) -> tuple[sympy.Expr, tuple[Condition, ...]]:
        """``expr`` without its mask factors, and their conditions."""
        conds: list[Condition] = []
        rest = sympy.Integer(1)
        for f in sympy.Mul.make_args(expr):
            base = f.base if f.is_Pow and f.exp.is_positive else f
            if base in self.masks:
                conds.extend(c for c in self.masks[base] if c not in conds)
            else:
                rest *= f
        if any(m in rest.free_symbols for m in self.masks):
            raise NotRewritableError("a filter inside a sum's term")
        return rest, tuple(conds)

    def masked(self, expr: sympy.Expr) -> bool:
        return any(m in expr.free_symbols for m in self.masks)


_BINARY = ("+", "-", "*", "/", "**")


def sympy_binary(op: str, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "**":
        return a**b
    return a / b


_FUNCTIONS = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "tanh": sympy.tanh,
    "abs": sympy.Abs,
}


def sympy_call(fn: str, args: list[sympy.Expr]) -> sympy.Expr:
    if fn in _FUNCTIONS:
        return _FUNCTIONS[fn](*args)
    if fn == "rsqrt":
        return 1 / sympy.sqrt(args[0])
    if fn == "max":
        return sympy.Max(*args)
    if fn == "min":
        return sympy.Min(*args)
    return sympy.Function(fn)(*args)


# ---------------------------------------------------------------- back to the IR


def to_ir(expr: sympy.Expr, atoms: Mapping[sympy.Symbol, Expr]) -> Expr:
    """A sympy expression as an IR value expression; ``atoms`` names what symbols stand for."""
    if expr.is_Symbol:
        return _symbol(expr, atoms)
    if expr.is_Number or expr in (sympy.oo, -sympy.oo):
        return _number(expr)
    if expr.is_Add:
        return _add(expr, atoms)
    if expr.is_Mul or expr.is_Pow:
        return _mul(expr, atoms)
    return _function(expr, atoms)


def _symbol(expr: sympy.Symbol, atoms: Mapping[sympy.Symbol, Expr]) -> Expr:
    if expr in atoms:
        return atoms[expr]
    if expr.is_positive:
        return ExtentRef(expr.name)
    if expr.is_nonnegative:
        return VarRef(expr.name)
    raise NotRewritableError(f"an unknown symbol {expr}")


def _number(expr: sympy.Expr) -> Expr:
    if expr == sympy.oo:
        return Const(float("inf"))
    if expr == -sympy.oo:
        return Neg(Const(float("inf")))
    if expr.is_Integer:
        value = int(expr)
        return Neg(Const(-value)) if value < 0 else Const(value)
    if expr.is_Rational:
        frac: Expr = Binary("/", Const(abs(int(expr.p))), Const(int(expr.q)))
        return Neg(frac) if expr < 0 else frac
    if expr.is_Float:
        value_f = float(expr)
        return Neg(Const(-value_f)) if value_f < 0 else Const(value_f)
    raise NotRewritableError(f"the number {expr}")


def _add(expr: sympy.Expr, atoms: Mapping[sympy.Symbol, Expr]) -> Expr:
    pos: list[Expr] = []
    neg: list[Expr] = []
    for t in sympy.Add.make_args(expr):
        coeff, _ = t.as_coeff_Mul()
        if coeff.is_number and coeff < 0:
            neg.append(to_ir(-t, atoms))
        else:
            pos.append(to_ir(t, atoms))
    out: Expr = pos[0] if pos else Neg(neg.pop(0))
    for p in pos[1:]:
        out = Binary("+", out, p)
    for n in neg:
        out = Binary("-", out, n)
    return out


def _mul(expr: sympy.Expr, atoms: Mapping[sympy.Symbol, Expr]) -> Expr:
    coeff, rest = expr.as_coeff_Mul()
    if coeff.is_number and coeff < 0:
        return Neg(to_ir(-expr, atoms))
    num: list[Expr] = [] if coeff == 1 else [_number(coeff)]
    den: list[Expr] = []
    for f in sympy.Mul.make_args(rest):
        base, exp = f.as_base_exp() if f.is_Pow else (f, sympy.Integer(1))
        if base == sympy.E:
            num.append(Call("exp", (to_ir(exp, atoms),)))
        elif exp.is_number and exp < 0:
            den.append(_power(base, -exp, atoms))
        else:
            num.append(_power(base, exp, atoms))
    out: Expr = num[0] if num else Const(1)
    for n in num[1:]:
        out = Binary("*", out, n)
    for d in den:
        out = Binary("/", out, d)
    return out


def _power(base: sympy.Expr, exp: sympy.Expr, atoms: Mapping[sympy.Symbol, Expr]) -> Expr:
    b = to_ir(base, atoms)
    if exp == 1:
        return b
    if exp == sympy.Rational(1, 2):
        return Call("sqrt", (b,))
    if exp.is_Integer and 1 < int(exp) <= 8:
        out = b
        for _ in range(int(exp) - 1):
            out = Binary("*", out, b)
        return out
    return Binary("**", b, to_ir(exp, atoms))  # v2 power


def _function(expr: sympy.Expr, atoms: Mapping[sympy.Symbol, Expr]) -> Expr:
    args = tuple(to_ir(a, atoms) for a in expr.args)
    if isinstance(expr, sympy.exp):
        return Call("exp", args)
    if isinstance(expr, sympy.log):
        return Call("log", args[:1])
    if isinstance(expr, sympy.Abs):
        return Call("abs", args)
    if isinstance(expr, sympy.Max | sympy.Min):
        fn = "max" if isinstance(expr, sympy.Max) else "min"
        out = args[0]
        for a in args[1:]:
            out = Call(fn, (out, a))
        return out
    name = type(expr).__name__
    if name in ("tanh", "sigmoid", "relu", "safe_div", "rsqrt"):
        return Call(name, args)
    raise NotRewritableError(f"the function {name}")
