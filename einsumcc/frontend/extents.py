"""Rank extents: default extents as exact expressions, splits, and their consistency."""

from __future__ import annotations

import math
from fractions import Fraction

from einsumcc.frontend import syntax as s
from einsumcc.frontend.context import Context, UnresolvedError, line_of, suggest
from einsumcc.ir.affine import Affine
from einsumcc.ir.digraph import Digraph, find_cycle

MAX_EXTENT = 2**62  # a larger extent is an error (sizes must fit in 64-bit integers)


class Extents:
    """Resolves ``rank X = ...`` and ``split X -> ...`` into ``ctx.rank_extents``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def resolve(self) -> None:
        ctx = self.ctx
        graph: Digraph[str] = Digraph()
        for name, st in ctx.ranks.items():
            graph.add_node(name)
            if st.extent is None:
                ctx.rank_extents[name] = None
                continue
            try:
                expr = self.expr(st.extent, name)
            except UnresolvedError:
                ctx.rank_extents[name] = None
                continue
            ctx.rank_extents[name] = expr
            for sym in sorted(expr.extents):
                graph.add_edge(sym, name)
        cycle = find_cycle(graph)
        if cycle is not None:
            names = [c[0] for c in cycle]
            first = min(names, key=lambda n: line_of(ctx.ranks[n].span))
            ctx.error(
                ctx.ranks[first].span,
                "cyclic rank extents: " + " -> ".join([*names, names[0]]),
            )
            for n in names:
                ctx.rank_extents[n] = None
        self.check_splits()
        for name in ctx.ranks:
            self.check_known(name)

    def check_known(self, name: str) -> None:
        """Extents that are fully known must be positive integers."""
        value = self.concrete(name)
        st = self.ctx.ranks[name]
        if value is None or st.extent is None:
            return
        if value.denominator != 1:
            expr = self.ctx.rank_extents[name]
            assert expr is not None
            uses = ", ".join(f"{sym} = {self.concrete(sym)}" for sym in sorted(expr.extents))
            self.ctx.error(
                st.extent.span,
                f"extent of {name} is {float(value):g}, not an integer"
                + (f" ({uses})" if uses else ""),
                hint="a division in an extent must be exact",
            )
        elif value <= 0:
            self.ctx.error(st.extent.span, f"extent of {name} is {value}; extents are positive")
        elif value > MAX_EXTENT:
            self.ctx.error(
                st.extent.span,
                f"extent of {name} is too large (more than 2**62)",
                hint="extents count the elements of a tensor's rank",
            )

    def closure(self, name: str) -> set[str]:
        """The ranks whose extents ``name``'s extent depends on, transitively."""
        out: set[str] = set()
        todo = [name]
        while todo:
            expr = self.ctx.rank_extents.get(todo.pop())
            for sym in expr.extents if expr is not None else ():
                if sym not in out:
                    out.add(sym)
                    todo.append(sym)
        return out

    def concrete(self, name: str) -> Fraction | None:
        """The value of ``name``'s extent when every extent it uses is known.

        An extent computed from one larger than :data:`MAX_EXTENT` is not computed (None):
        that one is reported, and values stay small enough to compute with.
        """
        memo: dict[str, Fraction | None] = {}
        visiting: set[str] = set()
        todo = [name]
        while todo:  # depth-first without recursion, each extent once (chains may be long)
            top = todo[-1]
            expr = self.ctx.rank_extents.get(top)
            if top in memo or expr is None:
                memo.setdefault(top, None)
                todo.pop()
                continue
            if top not in visiting:
                visiting.add(top)
                for sym in sorted(expr.extents):
                    if sym in visiting:
                        memo.setdefault(sym, None)  # a cycle: unknown
                    elif sym not in memo:
                        todo.append(sym)
                if todo[-1] != top:
                    continue
            todo.pop()
            values: dict[str, int | Fraction] = {}
            for sym in expr.extents:
                v = memo.get(sym)
                if v is None or abs(v) > MAX_EXTENT:
                    memo[top] = None
                    break
                values[sym] = v
            else:
                memo[top] = expr.evaluate(values)
        return memo[name]

    def known(self) -> dict[str, int]:
        """Every extent that is known and an integer."""
        out: dict[str, int] = {}
        for name in self.ctx.ranks:
            v = self.concrete(name)
            if v is not None and v.denominator == 1:
                out[name] = int(v)
        return out

    def expr(self, e: s.Expr, rank: str) -> Affine:
        ctx = self.ctx
        if isinstance(e, s.Number):
            if not e.text.isdigit():
                ctx.error(e.span, f"extent {e.text} of {rank} is not an integer")
                raise UnresolvedError
            return Affine.const(int(e.text))
        if isinstance(e, s.Name):
            if e.name in ctx.ranks:
                return Affine.extent(e.name)
            if e.name in ctx.params:
                ctx.error(
                    e.span,
                    f"param '{e.name}' cannot appear in an extent",
                    hint="extents are integer expressions of numbers and other extents",
                )
                raise UnresolvedError
            ctx.error(e.span, f"undeclared rank '{e.name}'", hint=suggest(e.name, ctx.ranks))
            raise UnresolvedError
        if isinstance(e, s.BinOp) and e.op == "**":
            return self.power(e, rank)
        if isinstance(e, s.BinOp):
            a = self.expr(e.lhs, rank)
            b = self.expr(e.rhs, rank)
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[e.op]
        ctx.error(
            e.span,
            f"extent of {rank} must be an integer expression of numbers and rank extents",
        )
        raise UnresolvedError

    def power(self, e: s.BinOp, rank: str) -> Affine:
        """(v2) ``a ** n`` in an extent: ``n`` a literal integer from 0 to 64."""
        base = self.expr(e.lhs, rank)
        exp = e.rhs
        if not (isinstance(exp, s.Number) and exp.text.isdigit() and int(exp.text) <= 64):
            self.ctx.error(
                exp.span,
                f"the exponent in the extent of {rank} must be an integer from 0 to 64",
                hint="extents are integer expressions: write 2 ** 10, not 2 ** 0.5",
            )
            raise UnresolvedError
        out = Affine.const(1)
        for _ in range(int(exp.text)):
            out = out * base
        return out

    def split_ok(self, parent: str, st: s.SplitStmt) -> bool:
        ok = True
        for ident in (st.parent, *st.children):
            if ident.name not in self.ctx.ranks:
                self.ctx.error(
                    ident.span,
                    f"undeclared rank '{ident.name}'",
                    hint=suggest(ident.name, self.ctx.ranks) or f"declare it: rank {ident.name}",
                )
                ok = False
        names = [c.name for c in st.children]
        if len(set(names)) != len(names) or parent in names:
            self.ctx.error(st.span, f"split of {parent} repeats a rank")
            ok = False
        return ok

    def check_splits(self) -> None:
        extents = self.ctx.rank_extents
        for parent, st in self.ctx.splits.items():
            if not self.split_ok(parent, st):
                continue
            names = [c.name for c in st.children]
            product = Affine.const(1)
            for c in names:
                product = product * Affine.extent(c)
            missing = [c for c in names if extents.get(c) is None]
            refers_to_parent = any(parent in self.closure(c) for c in names)
            if extents.get(parent) is None and not missing and not refers_to_parent:
                extents[parent] = product
            elif len(missing) == 1:
                extents[missing[0]] = (
                    Affine.extent(parent) / (product / Affine.extent(missing[0]))
                ).simplified()
            self.check_divides(parent, names, st)

    def check_divides(self, parent: str, names: list[str], st: s.SplitStmt) -> None:
        whole = self.concrete(parent)
        parts = [self.concrete(c) for c in names]
        if whole is None or not all(p is not None and p.denominator == 1 for p in parts):
            return
        prod = math.prod(int(p) for p in parts if p is not None)
        if whole != prod:
            self.ctx.error(
                st.span,
                f"split {parent} -> {', '.join(names)} does not divide: "
                f"{parent} = {whole} but {' * '.join(names)} = {prod}",
                hint=f"{parent} must equal the product of the ranks it is split into",
            )
