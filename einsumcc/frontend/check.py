"""Semantic checks: syntax tree → cascade IR, or every error found at once.

The checker resolves names (rank, rank variable, param, tensor), infers the ranks of
undeclared intermediates from their left-hand sides, converts index expressions and filters to
affine sympy expressions, applies the Einstein rule, and checks the dependency structure.
Errors are collected and raised together, sorted by position.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx
import sympy

from einsumcc.diagnostics import Diagnostic, DiagnosticSink, Source, Span
from einsumcc.frontend import syntax as s
from einsumcc.frontend.parser import KEYWORDS, RESERVED
from einsumcc.ir import nodes as ir
from einsumcc.ir.bind import eval_constant
from einsumcc.ir.cascade import Cascade, Recurrence, plan_stages
from einsumcc.ir.dump import render_index
from einsumcc.ir.einstein import make_sums_explicit
from einsumcc.ir.nodes import extent_symbol, var_symbol

EXPECTATIONS = {"passes": 1}
_DTYPES = {d.value: d for d in ir.DType}


@dataclass(frozen=True)
class Checked:
    cascade: Cascade
    warnings: tuple[Diagnostic, ...]


def check_program(program: s.Program, source: Source | None = None) -> Checked:
    """Check ``program`` and build its IR.  Raises :class:`EinError` listing every error."""
    return _Checker(program, source).run()


def _suggest(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f"did you mean '{close[0]}'?" if close else None


def _span_of(node: object) -> Span | None:
    return getattr(node, "span", None)


class _UnresolvedError(Exception):
    """An expression could not be converted; the reason was already reported."""


@dataclass
class _TensorInfo:
    name: str
    role: ir.Role | None  # None: an undeclared intermediate
    dims: tuple[ir.Dim, ...] | None
    dtype: ir.DType
    fill: ir.Expr
    decl: s.TensorStmt | None
    span: Span | None


class _Checker:
    def __init__(self, program: s.Program, source: Source | None) -> None:
        self.program = program
        self.source = source
        self.file = program.file
        self.sink = DiagnosticSink(source)
        self.name = ""
        self.ranks: dict[str, s.RankStmt] = {}
        self.rank_extents: dict[str, sympy.Expr | None] = {}
        self.var_rank: dict[str, str] = {}
        self.splits: dict[str, s.SplitStmt] = {}
        self.params: dict[str, s.ParamStmt] = {}
        self.param_values: dict[str, ir.Expr] = {}
        self.tensors: dict[str, _TensorInfo] = {}
        self.assignments: dict[str, s.EinsumStmt] = {}
        self.inits: dict[str, s.InitStmt] = {}
        self.einsums: dict[str, ir.Einsum] = {}
        self.ir_inits: dict[str, ir.Init] = {}
        self.read_sites: dict[str, list[Span | None]] = {}

    # ------------------------------------------------------------ driver
    def run(self) -> Checked:
        self.collect()
        self.resolve_ranks()
        self.resolve_params()
        self.resolve_tensors()
        self.check_einsums()
        self.check_inits()
        self.check_roles()
        stages = self.check_dependencies()
        expects = self.check_expects()
        self.sink.raise_if_errors()
        cascade = self.build(stages, expects)
        self.warn_fills(cascade)
        self.warn_split_mixing(cascade)
        self.sink.raise_if_errors()
        return Checked(cascade, tuple(sorted(self.sink.warnings, key=Diagnostic.sort_key)))

    def error(
        self,
        span: Span | None,
        message: str,
        hint: str | None = None,
        notes: Iterable[tuple[str, Span | None]] = (),
    ) -> None:
        self.sink.error(span, message, hint, notes)

    def check_name(self, ident: s.Ident, what: str) -> bool:
        if ident.name in KEYWORDS or ident.name in RESERVED:
            kind = "reserved for future use" if ident.name in RESERVED else "a keyword"
            self.error(ident.span, f"'{ident.name}' is {kind} and cannot name a {what}")
            return False
        return True

    # ------------------------------------------------------------ declarations
    def collect(self) -> None:
        seen_names: dict[str, tuple[str, Span | None]] = {}

        def declare(ident: s.Ident, what: str) -> bool:
            self.check_name(ident, what)  # reported; keep the declaration to avoid follow-ups
            if ident.name in seen_names:
                kind, where = seen_names[ident.name]
                self.error(
                    ident.span,
                    f"'{ident.name}' is already declared as a {kind}",
                    notes=[("first declared here", where)],
                )
                return False
            seen_names[ident.name] = (what, ident.span)
            return True

        for i, st in enumerate(self.program.statements):
            if isinstance(st, s.CascadeStmt):
                if i != 0:
                    self.error(
                        st.span,
                        "the 'cascade' header must be the first statement",
                        hint="move it to the top of the file",
                    )
                elif self.check_name(st.name, "cascade"):
                    self.name = st.name.name
            elif isinstance(st, s.RankStmt):
                if not declare(st.name, "rank"):
                    continue
                if st.name.name == st.name.name.lower():
                    self.error(
                        st.name.span,
                        f"rank name '{st.name.name}' has no uppercase letter",
                        hint="a rank's variable is its lowercase name, so rank names are "
                        f"written in uppercase: rank {st.name.name.upper()}",
                    )
                var = st.name.name.lower()
                if var in self.var_rank:
                    other = self.var_rank[var]
                    self.error(
                        st.name.span,
                        f"ranks '{other}' and '{st.name.name}' share the variable '{var}'",
                        notes=[(f"'{other}' declared here", self.ranks[other].name.span)],
                    )
                    continue
                self.ranks[st.name.name] = st
                self.var_rank[var] = st.name.name
            elif isinstance(st, s.SplitStmt):
                if st.parent.name in self.splits:
                    self.error(
                        st.parent.span,
                        f"rank '{st.parent.name}' is split twice",
                        notes=[("first split here", self.splits[st.parent.name].span)],
                    )
                else:
                    self.splits[st.parent.name] = st
            elif isinstance(st, s.ParamStmt):
                if declare(st.name, "param"):
                    self.params[st.name.name] = st
            elif isinstance(st, s.TensorStmt):
                if declare(st.name, "tensor"):
                    role = {"input": ir.Role.INPUT, "output": ir.Role.OUTPUT}.get(
                        st.kind, ir.Role.INTERMEDIATE
                    )
                    self.tensors[st.name.name] = _TensorInfo(
                        st.name.name, role, None, ir.DType.F32, ir.Const(0), st, st.name.span
                    )
            elif isinstance(st, s.EinsumStmt):
                name = st.target.tensor.name
                if not self.check_name(st.target.tensor, "tensor"):
                    continue
                if name in self.assignments:
                    self.error(
                        st.target.span,
                        f"tensor '{name}' is assigned twice",
                        hint="each tensor is assigned by exactly one Einsum; "
                        "give the second result another name",
                        notes=[("first assigned here", self.assignments[name].target.span)],
                    )
                else:
                    self.assignments[name] = st
            elif isinstance(st, s.InitStmt):
                name = st.target.tensor.name
                if name in self.inits:
                    self.error(
                        st.target.span,
                        f"tensor '{name}' has two init statements",
                        notes=[("first init here", self.inits[name].span)],
                    )
                else:
                    self.inits[name] = st
            elif isinstance(st, s.ReservedStmt):
                self.error(st.span, f"'{st.word}' is reserved for future use")
        # Names of ranks, variables and params must not collide with tensors or each other.
        for var, rank in self.var_rank.items():
            if var in self.params:
                self.error(
                    self.params[var].name.span,
                    f"param '{var}' has the name of rank {rank}'s variable",
                    hint="choose another name for the param",
                )
        for name in self.assignments:
            if name in self.ranks or name in self.params or name in self.var_rank:
                st = self.assignments[name]
                what = "rank" if name in self.ranks else "param" if name in self.params else "var"
                self.error(
                    st.target.tensor.span,
                    f"'{name}' names a {what if what != 'var' else 'rank variable'}, not a tensor",
                )

    # ------------------------------------------------------------ ranks
    def resolve_ranks(self) -> None:
        graph: nx.DiGraph[str] = nx.DiGraph()
        for name, st in self.ranks.items():
            graph.add_node(name)
            if st.extent is None:
                self.rank_extents[name] = None
                continue
            try:
                expr = self.extent_expr(st.extent, name)
            except _UnresolvedError:
                self.rank_extents[name] = None
                continue
            self.rank_extents[name] = expr
            for sym in expr.free_symbols:
                graph.add_edge(str(sym), name)
        if not nx.is_directed_acyclic_graph(graph):
            cycle = nx.find_cycle(graph)
            names = [c[0] for c in cycle]
            first = min(names, key=lambda n: _line(self.ranks[n].span))
            self.error(
                self.ranks[first].span,
                "cyclic rank extents: " + " -> ".join([*names, names[0]]),
            )
            for n in names:
                self.rank_extents[n] = None
        self.check_splits()
        # Extents that are fully known must be positive integers.
        for name in self.ranks:
            value = self.concrete_extent(name)
            st = self.ranks[name]
            if value is None or st.extent is None:
                continue
            if not value.is_integer:
                expr = self.rank_extents[name]
                assert expr is not None
                uses = ", ".join(
                    f"{sym} = {self.concrete_extent(str(sym))}"
                    for sym in sorted(expr.free_symbols, key=str)
                )
                self.error(
                    st.extent.span,
                    f"extent of {name} is {float(value):g}, not an integer"
                    + (f" ({uses})" if uses else ""),
                    hint="a division in an extent must be exact",
                )
            elif value <= 0:
                self.error(st.extent.span, f"extent of {name} is {value}; extents are positive")

    def extent_closure(self, name: str) -> set[str]:
        """The ranks whose extents ``name``'s extent depends on, transitively."""
        out: set[str] = set()
        todo = [name]
        while todo:
            expr = self.rank_extents.get(todo.pop())
            for sym in expr.free_symbols if expr is not None else ():
                if str(sym) not in out:
                    out.add(str(sym))
                    todo.append(str(sym))
        return out

    def concrete_extent(self, name: str, depth: int = 0) -> sympy.Expr | None:
        expr = self.rank_extents.get(name)
        if expr is None or depth > 50:
            return None
        subs = {}
        for sym in expr.free_symbols:
            v = self.concrete_extent(str(sym), depth + 1)
            if v is None:
                return None
            subs[sym] = v
        value = expr.subs(subs)
        return value if value.is_number else None

    def extent_expr(self, e: s.Expr, rank: str) -> sympy.Expr:
        if isinstance(e, s.Number):
            if not e.text.isdigit():
                self.error(e.span, f"extent {e.text} of {rank} is not an integer")
                raise _UnresolvedError
            return sympy.Integer(int(e.text))
        if isinstance(e, s.Name):
            if e.name in self.ranks:
                return extent_symbol(e.name)
            if e.name in self.params:
                self.error(
                    e.span,
                    f"param '{e.name}' cannot appear in an extent",
                    hint="extents are integer expressions of numbers and other extents",
                )
                raise _UnresolvedError
            self.error(e.span, f"undeclared rank '{e.name}'", hint=_suggest(e.name, self.ranks))
            raise _UnresolvedError
        if isinstance(e, s.BinOp):
            a = self.extent_expr(e.lhs, rank)
            b = self.extent_expr(e.rhs, rank)
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[e.op]
        self.error(
            e.span,
            f"extent of {rank} must be an integer expression of numbers and rank extents",
        )
        raise _UnresolvedError

    def check_splits(self) -> None:
        for parent, st in self.splits.items():
            ok = True
            for ident in (st.parent, *st.children):
                if ident.name not in self.ranks:
                    self.error(
                        ident.span,
                        f"undeclared rank '{ident.name}'",
                        hint=_suggest(ident.name, self.ranks) or f"declare it: rank {ident.name}",
                    )
                    ok = False
            names = [c.name for c in st.children]
            if len(set(names)) != len(names) or parent in names:
                self.error(st.span, f"split of {parent} repeats a rank")
                ok = False
            if not ok:
                continue
            product: sympy.Expr = sympy.Integer(1)
            for c in names:
                product = product * extent_symbol(c)
            missing = [c for c in names if self.rank_extents.get(c) is None]
            refers_to_parent = any(parent in self.extent_closure(c) for c in names)
            if self.rank_extents.get(parent) is None and not missing and not refers_to_parent:
                self.rank_extents[parent] = product
            elif len(missing) == 1:
                self.rank_extents[missing[0]] = sympy.simplify(
                    extent_symbol(parent) / (product / extent_symbol(missing[0]))
                )
            whole = self.concrete_extent(parent)
            parts = [self.concrete_extent(c) for c in names]
            known = whole is not None and all(p is not None and p.is_integer for p in parts)
            if known:
                prod = math.prod(int(p) for p in parts if p is not None)
                if whole != prod:
                    self.error(
                        st.span,
                        f"split {parent} -> {', '.join(names)} does not divide: "
                        f"{parent} = {whole} but {' * '.join(names)} = {prod}",
                        hint=f"{parent} must equal the product of the ranks it is split into",
                    )

    # ------------------------------------------------------------ params
    def resolve_params(self) -> None:
        graph: nx.DiGraph[str] = nx.DiGraph()
        for name, st in self.params.items():
            graph.add_node(name)
            try:
                value = self.const_expr(st.value, f"param {name}")
            except _UnresolvedError:
                continue
            self.param_values[name] = value
            for n in ir.walk(value):
                if isinstance(n, ir.ParamRef):
                    graph.add_edge(n.name, name)
        if not nx.is_directed_acyclic_graph(graph):
            cycle = [c[0] for c in nx.find_cycle(graph)]
            self.error(
                self.params[cycle[0]].span,
                "cyclic params: " + " -> ".join([*cycle, cycle[0]]),
            )

    def literal(self, e: s.Expr) -> ir.Expr | None:
        """Numbers, inf, params and extents: what every kind of expression may hold."""
        if isinstance(e, s.Number):
            return ir.Const(e.value, e.span)
        if isinstance(e, s.Inf):
            return ir.Const(math.inf, e.span)
        if isinstance(e, s.Name) and e.name in self.params:
            return ir.ParamRef(e.name, e.span)
        if isinstance(e, s.Name) and e.name in self.ranks:
            return ir.ExtentRef(e.name, e.span)
        return None

    def const_expr(self, e: s.Expr, what: str) -> ir.Expr:
        """A constant expression: numbers, inf, params, extents, arithmetic and functions."""
        lit = self.literal(e)
        if lit is not None:
            return lit
        if isinstance(e, s.Name):
            if e.name in self.var_rank:
                self.error(
                    e.span,
                    f"rank variable '{e.name}' cannot appear in {what}",
                    hint=f"{what} is a constant expression; the extent is {self.var_rank[e.name]}",
                )
                raise _UnresolvedError
            if e.name in KEYWORDS:
                self.error(e.span, f"unexpected keyword '{e.name}' in {what}")
                raise _UnresolvedError
            self.error(
                e.span,
                f"undeclared name '{e.name}' in {what}",
                hint=_suggest(e.name, [*self.params, *self.ranks]),
            )
            raise _UnresolvedError
        if isinstance(e, s.Neg):
            return ir.Neg(self.const_expr(e.operand, what), e.span)
        if isinstance(e, s.BinOp):
            a = self.const_expr(e.lhs, what)
            b = self.const_expr(e.rhs, what)
            return ir.Binary(e.op, a, b, e.span)
        if isinstance(e, s.Call):
            args = tuple(self.const_expr(a, what) for a in e.args)
            self.check_call(e)
            return ir.Call(e.fn.name, args, e.span)
        self.error(
            e.span,
            f"{what} must be a constant expression",
            hint="constants are numbers, inf, params, rank extents, arithmetic and functions",
        )
        raise _UnresolvedError

    def check_call(self, e: s.Call) -> None:
        name = e.fn.name
        if name not in ir.FUNCTIONS:
            hint = _suggest(name, ir.FUNCTIONS)
            if name in ir.REDUCTIONS:
                hint = f"'{name}' is a reduction: write {name}{{var}} operand"
            elif name in self.tensors or name in self.assignments:
                hint = f"tensors are indexed with brackets: {name}[...]"
            self.error(e.fn.span, f"unknown function '{name}'", hint=hint)
            raise _UnresolvedError
        arity = ir.FUNCTIONS[name]
        if len(e.args) != arity:
            plural = "s" if arity != 1 else ""
            hint = None
            if name in {"max", "min"} and len(e.args) == 1:
                hint = f"to reduce over a rank, write {name}{{var}} operand"
            self.error(
                e.span,
                f"function '{name}' takes {arity} argument{plural}, got {len(e.args)}",
                hint=hint,
            )
            raise _UnresolvedError

    def eval_const(self, e: ir.Expr) -> float | None:
        """Evaluate a constant expression with default extents; None when not known yet."""
        extents: dict[str, int] = {}
        for name in self.ranks:
            v = self.concrete_extent(name)
            if v is not None and v.is_integer:
                extents[name] = int(v)
        try:
            return eval_constant(e, extents, self.param_values)
        except (KeyError, RecursionError):
            return None

    # ------------------------------------------------------------ tensors
    def resolve_tensors(self) -> None:
        for info in self.tensors.values():
            st = info.decl
            assert st is not None
            dims: list[ir.Dim] = []
            ok = True
            for d in st.dims:
                dim = self.decl_dim(d)
                if dim is None:
                    ok = False
                else:
                    dims.append(dim)
            info.dims = tuple(dims) if ok else None
            if st.dtype is not None:
                if st.dtype.name in _DTYPES:
                    info.dtype = _DTYPES[st.dtype.name]
                else:
                    self.error(
                        st.dtype.span,
                        f"unknown dtype '{st.dtype.name}'",
                        hint=_suggest(st.dtype.name, _DTYPES) or "dtypes are " + ", ".join(_DTYPES),
                    )
            if st.fill is not None:
                try:
                    info.fill = self.const_expr(st.fill, f"the fill value of {info.name}")
                except _UnresolvedError:
                    continue
                value = self.eval_const(info.fill)
                if value is not None and not info.dtype.can_represent(value):
                    self.error(
                        st.fill.span,
                        f"fill value {value!r} of {info.name} cannot be represented in "
                        f"{info.dtype.value}",
                        hint=self.fill_hint(info.dtype, value),
                    )
        # Undeclared intermediates: ranks from the left-hand side.
        for name, assignment in self.assignments.items():
            if name in self.tensors:
                continue
            dims_or_none = self.lhs_dims(assignment.target)
            self.tensors[name] = _TensorInfo(
                name, None, dims_or_none, ir.DType.F32, ir.Const(0), None, assignment.target.span
            )

    def fill_hint(self, dtype: ir.DType, value: float) -> str:
        if dtype.is_float and math.isfinite(value):
            return (
                f"the largest finite {dtype.value} is {dtype.max_finite:g}; use -inf, or a "
                "wider dtype such as f32"
            )
        if not dtype.is_float:
            return f"{dtype.value} holds integers from {dtype.min_value:g} to {dtype.max_finite:g}"
        return "choose a value the dtype can hold"

    def decl_dim(self, d: s.Expr) -> ir.Dim | None:
        if isinstance(d, s.Name):
            if d.name in self.ranks:
                return ir.Dim(d.name)
            self.error(
                d.span,
                f"undeclared rank '{d.name}'",
                hint=_suggest(d.name, self.ranks) or f"declare it: rank {d.name}",
            )
            return None
        if (
            isinstance(d, s.BinOp)
            and d.op == "+"
            and isinstance(d.lhs, s.Name)
            and isinstance(d.rhs, s.Number)
            and d.rhs.text == "1"
        ):
            if d.lhs.name in self.ranks:
                return ir.Dim(d.lhs.name, iterative=True)
            self.error(
                d.lhs.span, f"undeclared rank '{d.lhs.name}'", _suggest(d.lhs.name, self.ranks)
            )
            return None
        self.error(
            d.span,
            "a tensor's dimensions are rank names, or X+1 for an iterative rank",
        )
        return None

    def lhs_dims(self, target: s.Access) -> tuple[ir.Dim, ...] | None:
        dims: list[ir.Dim] = []
        ok = True
        for idx in target.indices:
            dim = self.lhs_index_dim(idx)
            if dim is None:
                ok = False
            else:
                dims.append(dim)
        return tuple(dims) if ok else None

    def lhs_index_dim(self, idx: s.Expr) -> ir.Dim | None:
        """The dimension that a left-hand index implies, or None (reported)."""
        if isinstance(idx, s.Name) and idx.name in self.var_rank:
            return ir.Dim(self.var_rank[idx.name])
        if (
            isinstance(idx, s.BinOp)
            and idx.op == "+"
            and isinstance(idx.lhs, s.Name)
            and idx.lhs.name in self.var_rank
            and isinstance(idx.rhs, s.Number)
            and idx.rhs.text == "1"
        ):
            return ir.Dim(self.var_rank[idx.lhs.name], iterative=True)
        try:
            expr = self.affine(idx, "an index")
        except _UnresolvedError:
            return None
        for parent, st in self.splits.items():
            if all(c.name in self.ranks for c in st.children) and parent in self.ranks:
                split = ir.Split(parent, tuple(c.name for c in st.children))
                if sympy.expand(expr - split.index_expr) == 0:
                    return ir.Dim(parent)
        if isinstance(idx, s.Name):
            self.unknown_name(idx)
            return None
        self.error(
            idx.span,
            "a left-hand index must be a rank variable, x + 1 for an iterative rank, "
            "or the split expression of a rank",
        )
        return None

    # ------------------------------------------------------------ names and indices
    def unknown_name(self, e: s.Name) -> None:
        name = e.name
        if name in KEYWORDS:
            self.error(e.span, f"unexpected keyword '{name}'")
        elif name in self.tensors or name in self.assignments:
            self.error(
                e.span,
                f"tensor '{name}' is used without brackets",
                hint=f"write {name}[...] (a rank-0 tensor is {name}[])",
            )
        elif name.upper() != name and name.upper() not in self.ranks and name == name.lower():
            hint = _suggest(name, self.var_rank) or f"declare its rank: rank {name.upper()}"
            self.error(e.span, f"rank variable '{name}' has no rank", hint=hint)
        else:
            cands = [*self.var_rank, *self.ranks, *self.params]
            self.error(e.span, f"undeclared name '{name}'", hint=_suggest(name, cands))

    def affine(self, e: s.Expr, what: str) -> sympy.Expr:
        expr = self.index_expr(e, what)
        variables = [sym for sym in expr.free_symbols if ir.is_var_symbol(sym)]
        for v in variables:
            coeff = sympy.diff(expr, v)
            if any(ir.is_var_symbol(x) for x in coeff.free_symbols):
                self.error(
                    e.span,
                    f"{what} must be affine in rank variables",
                    hint="products of rank variables are not allowed",
                )
                raise _UnresolvedError
            if coeff.is_number and not coeff.is_integer:
                self.error(
                    e.span,
                    f"coefficient {coeff} of {v} in {what} is not an integer",
                    hint="a division in an index expression must be exact",
                )
                raise _UnresolvedError
        const = expr.subs(dict.fromkeys(variables, 0))
        if const.is_number and not const.is_integer:
            self.error(e.span, f"{what} has a non-integer offset {const}")
            raise _UnresolvedError
        return expr

    def index_expr(self, e: s.Expr, what: str) -> sympy.Expr:
        if isinstance(e, s.Name):
            if e.name in self.var_rank:
                return var_symbol(e.name)
            if e.name in self.ranks:
                return extent_symbol(e.name)
            if e.name in self.params:
                self.error(
                    e.span,
                    f"param '{e.name}' cannot appear in {what}",
                    hint="index expressions use rank variables, extents and integers",
                )
                raise _UnresolvedError
            self.unknown_name(e)
            raise _UnresolvedError
        if isinstance(e, s.Number):
            if not e.text.isdigit():
                self.error(e.span, f"{what} must be an integer expression, not {e.text}")
                raise _UnresolvedError
            return sympy.Integer(int(e.text))
        if isinstance(e, s.BinOp):
            a = self.index_expr(e.lhs, what)
            b = self.index_expr(e.rhs, what)
            if e.op == "/" and b.is_number and b == 0:
                self.error(e.span, f"division by zero in {what}")
                raise _UnresolvedError
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[e.op]
        if isinstance(e, s.Neg):
            return -self.index_expr(e.operand, what)
        kind = {
            s.Access: "a tensor access",
            s.Call: "a function call",
            s.Reduce: "a reduction",
            s.Inf: "inf",
        }.get(type(e), "this")
        self.error(
            e.span,
            f"{what} cannot contain {kind}",
            hint="index expressions are affine: rank variables, extents and integers",
        )
        raise _UnresolvedError

    # ------------------------------------------------------------ einsums
    def tensor_dims(self, name: str) -> tuple[ir.Dim, ...] | None:
        info = self.tensors.get(name)
        return info.dims if info is not None else None

    def check_einsums(self) -> None:
        for name, st in self.assignments.items():
            info = self.tensors[name]
            if name in self.ranks or name in self.params or name in self.var_rank:
                continue
            out = self.check_lhs(st.target, info)
            try:
                body = self.value_expr(st.value, frozenset(), ctx=name)
            except _UnresolvedError:
                continue
            if out is None:
                continue
            lhs_vars = {
                str(v) for ix in out.indices for v in ix.free_symbols if ir.is_var_symbol(v)
            }
            if not self.check_scoping(st, body, lhs_vars):
                continue
            implicit = ir.free_variables(body) - lhs_vars
            body = make_sums_explicit(body, implicit)
            where = self.check_where(st, body, lhs_vars)
            if where is None:
                continue
            self.einsums[name] = ir.Einsum(out, body, where, st.span)

    def check_lhs(self, target: s.Access, info: _TensorInfo) -> ir.Access | None:
        seen: dict[str, Span | None] = {}
        indices: list[sympy.Expr] = []
        ok = True
        dims = info.dims
        if dims is not None and len(target.indices) != len(dims):
            self.error(
                target.span,
                f"{info.name} has {len(dims)} rank{'s' if len(dims) != 1 else ''} "
                f"({', '.join(map(str, dims)) or 'rank 0'}) but is assigned with "
                f"{len(target.indices)} ind{'ices' if len(target.indices) != 1 else 'ex'}",
                notes=[("declared here", info.span)] if info.decl else [],
            )
            return None
        for i, idx in enumerate(target.indices):
            dim = self.lhs_index_dim(idx)
            if dim is None:
                ok = False
                continue
            try:
                expr = self.affine(idx, "an index")
            except _UnresolvedError:
                ok = False
                continue
            for v in expr.free_symbols:
                if ir.is_var_symbol(v):
                    if str(v) in seen:
                        self.error(
                            idx.span,
                            f"rank variable '{v}' appears twice on the left side",
                            hint="left-hand indices are distinct rank variables",
                        )
                        ok = False
                    seen[str(v)] = idx.span
            if dims is not None and dims[i] != dim and ok:
                want = dims[i]
                var = self.ranks[want.rank].name.name.lower()
                hint = self.transpose_hint(info.name, dims, target)
                if want.rank == dim.rank and want.iterative:
                    msg = (
                        f"{info.name} is iterative in {want.rank}: "
                        "its Einsum writes the next iterate"
                    )
                    hint = f"write {info.name}[..{var} + 1..] = ... and read {info.name}[..{var}..]"
                elif want.rank == dim.rank:
                    msg = f"{info.name} is not iterative in {want.rank}"
                    hint = f"index it with {var}, or declare it {info.name}[..{want.rank}+1..]"
                else:
                    msg = (
                        f"index {_show(idx)} (rank {dim.rank}) is at position {i + 1} of "
                        f"{info.name}, which has rank {want.rank}"
                    )
                self.error(
                    idx.span,
                    msg,
                    hint=hint,
                    notes=[(f"{info.name} declared here", info.span)] if info.decl else [],
                )
                ok = False
            indices.append(expr)
        if not ok:
            return None
        return ir.Access(info.name, tuple(indices), target.span)

    def transpose_hint(self, name: str, dims: tuple[ir.Dim, ...], access: s.Access) -> str | None:
        bare = [i.name for i in access.indices if isinstance(i, s.Name) and i.name in self.var_rank]
        if len(bare) != len(access.indices):
            return f"{name} is declared {name}[{', '.join(map(str, dims))}]"
        ranks = sorted(self.var_rank[b] for b in bare)
        if ranks == sorted(d.rank for d in dims):
            by_rank = {self.var_rank[b]: b for b in bare}
            fixed = ", ".join(by_rank[d.rank] for d in dims)
            shown = ", ".join(map(str, dims))
            return f"{name} is declared {name}[{shown}]: did you mean {name}[{fixed}]?"
        return f"{name} is declared {name}[{', '.join(map(str, dims))}]"

    def value_expr(self, e: s.Expr, bound: frozenset[str], ctx: str) -> ir.Expr:
        lit = self.literal(e)
        if lit is not None:
            return lit
        if isinstance(e, s.Name):
            if e.name in self.var_rank:
                return ir.VarRef(e.name, e.span)
            self.unknown_name(e)
            raise _UnresolvedError
        if isinstance(e, s.Neg):
            return ir.Neg(self.value_expr(e.operand, bound, ctx), e.span)
        if isinstance(e, s.BinOp):
            errors = 0
            parts: list[ir.Expr] = []
            for side in (e.lhs, e.rhs):
                try:
                    parts.append(self.value_expr(side, bound, ctx))
                except _UnresolvedError:
                    errors += 1
            if errors:
                raise _UnresolvedError
            return ir.Binary(e.op, parts[0], parts[1], e.span)
        if isinstance(e, s.Call):
            args: list[ir.Expr] = []
            failed = False
            for a in e.args:
                try:
                    args.append(self.value_expr(a, bound, ctx))
                except _UnresolvedError:
                    failed = True
            self.check_call(e)
            if failed:
                raise _UnresolvedError
            return ir.Call(e.fn.name, tuple(args), e.span)
        if isinstance(e, s.Reduce):
            return self.reduce_expr(e, bound, ctx)
        assert isinstance(e, s.Access)
        return self.read_access(e)

    def reduce_expr(self, e: s.Reduce, bound: frozenset[str], ctx: str) -> ir.Expr:
        op = e.op.name
        ok = True
        if op not in ir.REDUCTIONS:
            hint = _suggest(op, ir.REDUCTIONS) or "reductions are sum, max, min and prod"
            self.error(e.op.span, f"unknown reduction '{op}'", hint=hint)
            ok = False
        names: list[str] = []
        for v in e.variables:
            if v.name not in self.var_rank:
                if v.name in self.ranks:
                    self.error(
                        v.span,
                        f"'{v.name}' is a rank; a reduction binds its variable",
                        hint=f"write {op}{{{v.name.lower()}}}",
                    )
                else:
                    split_hint = None
                    if v.name.upper() in self.splits:
                        kids = [c.name.lower() for c in self.splits[v.name.upper()].children]
                        parts = ", ".join(k.upper() for k in kids)
                        split_hint = (
                            f"rank {v.name.upper()} is split into ({parts}); "
                            f"reduce over {', '.join(kids)}"
                        )
                    self.error(
                        v.span,
                        f"rank variable '{v.name}' has no rank",
                        hint=split_hint or _suggest(v.name, self.var_rank),
                    )
                ok = False
            elif v.name in bound or v.name in names:
                self.error(v.span, f"rank variable '{v.name}' is already bound by a reduction")
                ok = False
            else:
                names.append(v.name)
        body = self.value_expr(e.body, bound | set(names), ctx)
        used = ir.free_variables(body)
        for v in e.variables:
            if v.name in names and v.name not in used:
                rank = self.var_rank[v.name]
                split = self.splits.get(rank)
                if split is not None:
                    tiles = ", ".join(c.name.lower() for c in split.children)
                    hint = f"rank {rank} is split into its tiles here: reduce over {tiles}?"
                else:
                    hint = (
                        f"a reduction's operand is a single factor: to reduce a product, "
                        f"parenthesise it: {op}{{{v.name}}} (A[..{v.name}..] * B[..])"
                    )
                self.error(
                    v.span,
                    f"'{v.name}' does not occur in the operand of {op}{{{v.name}}}",
                    hint=hint,
                )
                ok = False
        if not ok:
            raise _UnresolvedError
        return ir.Reduce(op, tuple(sorted(names)), body, e.span)

    def read_access(self, e: s.Access) -> ir.Access:
        name = e.tensor.name
        info = self.tensors.get(name)
        if info is None:
            if name in self.ranks or name in self.params:
                self.error(
                    e.tensor.span,
                    f"'{name}' is a {'rank' if name in self.ranks else 'param'}, not a tensor",
                )
            else:
                cands = list(self.tensors)
                self.error(
                    e.tensor.span,
                    f"undeclared tensor '{name}'",
                    hint=_suggest(name, cands) or f"declare it: input {name}[...]",
                )
            raise _UnresolvedError
        self.read_sites.setdefault(name, []).append(e.span)
        dims = info.dims
        if dims is None:
            raise _UnresolvedError
        if len(e.indices) != len(dims):
            shown = f"{name}[{', '.join(map(str, dims))}]"
            self.error(
                e.span,
                f"{name} has {len(dims)} rank{'s' if len(dims) != 1 else ''} but is indexed "
                f"with {len(e.indices)}",
                hint=f"{name} is {shown}",
                notes=[("declared here", info.span)] if info.decl else [],
            )
            raise _UnresolvedError
        indices: list[sympy.Expr] = []
        failed = False
        for i, idx in enumerate(e.indices):
            try:
                expr = self.affine(idx, "an index")
            except _UnresolvedError:
                failed = True
                continue
            dim = dims[i]
            if failed:
                indices.append(expr)
                continue
            if isinstance(idx, s.Name) and idx.name in self.var_rank:
                rank = self.var_rank[idx.name]
                if rank != dim.rank:
                    self.error(
                        idx.span,
                        f"index '{idx.name}' (rank {rank}) is at position {i + 1} of {name}, "
                        f"which has rank {dim.rank}",
                        hint=self.transpose_hint(name, dims, e),
                    )
                    failed = True
            elif isinstance(idx, s.Name) and idx.name == dim.rank and not dim.iterative:
                self.error(
                    idx.span,
                    f"index {idx.name} is out of range: rank {dim.rank} of {name} "
                    f"runs from 0 to {dim.rank} - 1",
                    hint=f"did you mean the rank variable '{dim.rank.lower()}'? (an extent "
                    "used as an index reads the final iterate of an iterative tensor)",
                )
                failed = True
            indices.append(expr)
        if failed:
            raise _UnresolvedError
        return ir.Access(name, tuple(indices), e.span)

    def check_scoping(self, st: s.EinsumStmt, body: ir.Expr, lhs_vars: set[str]) -> bool:
        """Bound reduction variables: not on the left, not used outside their operand."""
        ok = True
        bound_anywhere: set[str] = set()
        for n in ir.walk(body):
            if isinstance(n, ir.Reduce):
                for v in n.variables:
                    if v in lhs_vars:
                        self.error(
                            n.span,
                            f"rank variable '{v}' is reduced but also appears on the left side",
                            hint=f"drop '{v}' from the left side, or do not reduce over it",
                        )
                        ok = False
                    bound_anywhere.add(v)
        free = ir.free_variables(body)
        for v in sorted(bound_anywhere & free):
            site = self.first_free_use(st.value, v, frozenset())
            self.error(
                site or st.span,
                f"rank variable '{v}' is used outside the reduction that binds it",
                hint=f"a reduction's operand is a single factor: to reduce a product, "
                f"parenthesise it: sum{{{v}}} (A[..{v}..] * B[..{v}..])",
            )
            ok = False
        return ok

    def first_free_use(self, e: s.Expr, v: str, bound: frozenset[str]) -> Span | None:
        if isinstance(e, s.Name):
            return e.span if e.name == v and v not in bound else None
        if isinstance(e, s.Access):
            for idx in e.indices:
                span = self.first_free_use(idx, v, bound)
                if span is not None:
                    return span
            return None
        if isinstance(e, s.Reduce):
            return self.first_free_use(e.body, v, bound | {x.name for x in e.variables})
        kids: tuple[s.Expr, ...] = ()
        if isinstance(e, s.BinOp):
            kids = (e.lhs, e.rhs)
        elif isinstance(e, s.Neg):
            kids = (e.operand,)
        elif isinstance(e, s.Call):
            kids = e.args
        for k in kids:
            span = self.first_free_use(k, v, bound)
            if span is not None:
                return span
        return None

    def check_where(
        self, st: s.EinsumStmt, body: ir.Expr, lhs_vars: set[str]
    ) -> tuple[ir.Condition, ...] | None:
        conds: list[ir.Condition] = []
        reduced = {v for n in ir.walk(body) if isinstance(n, ir.Reduce) for v in n.variables}
        space = lhs_vars | reduced
        ok = True
        for c in st.where:
            try:
                lhs = self.affine(c.lhs, "a filter condition")
                rhs = self.affine(c.rhs, "a filter condition")
            except _UnresolvedError:
                ok = False
                continue
            cond = ir.Condition(lhs, c.op, rhs, c.span)
            outside = sorted(cond.variables - space)
            if outside:
                self.error(
                    c.span,
                    f"filter variable '{outside[0]}' is not iterated by this Einsum",
                    hint="a filter restricts the Einsum's own iteration space",
                )
                ok = False
                continue
            if not self.condition_in_one_scope(body, cond.variables - lhs_vars):
                self.error(
                    c.span,
                    "this condition relates variables of separate reductions",
                    hint="write the reductions as separate Einsums",
                )
                ok = False
                continue
            conds.append(cond)
        return tuple(conds) if ok else None

    def condition_in_one_scope(self, body: ir.Expr, needed: frozenset[str]) -> bool:
        if not needed:
            return True

        def visit(e: ir.Expr, scope: frozenset[str]) -> bool:
            if isinstance(e, ir.Reduce):
                scope = scope | set(e.variables)
                if needed <= scope:
                    return True
            return any(visit(c, scope) for c in ir.children(e))

        return visit(body, frozenset())

    # ------------------------------------------------------------ inits
    def check_inits(self) -> None:
        for name, st in self.inits.items():
            info = self.tensors.get(name)
            if info is None:
                self.error(
                    st.target.tensor.span,
                    f"init of undeclared tensor '{name}'",
                    hint=_suggest(name, self.tensors),
                )
                continue
            dims = info.dims
            if dims is None:
                continue
            pos = next((i for i, d in enumerate(dims) if d.iterative), None)
            if pos is None:
                self.error(
                    st.target.span,
                    f"init of {name}, which is not iterative",
                    hint=f"only a tensor assigned as {name}[..x + 1..] has an init",
                )
                continue
            if len(st.target.indices) != len(dims):
                self.error(
                    st.target.span,
                    f"{name} has {len(dims)} ranks but its init has "
                    f"{len(st.target.indices)} indices",
                )
                continue
            indices: list[sympy.Expr] = []
            ok = True
            for i, idx in enumerate(st.target.indices):
                if i == pos:
                    if not (isinstance(idx, s.Number) and idx.text == "0"):
                        self.error(
                            idx.span,
                            f"init sets the first iterate: index 0 of {dims[i].rank}",
                            hint=f"write {name}[.., 0, ..]",
                        )
                        ok = False
                    indices.append(sympy.Integer(0))
                    continue
                if not (isinstance(idx, s.Name) and idx.name in self.var_rank):
                    self.error(idx.span, "init indices are rank variables (and 0 for the iterate)")
                    ok = False
                    continue
                if self.var_rank[idx.name] != dims[i].rank:
                    self.error(
                        idx.span,
                        f"index '{idx.name}' (rank {self.var_rank[idx.name]}) is at position "
                        f"{i + 1} of {name}, which has rank {dims[i].rank}",
                    )
                    ok = False
                indices.append(var_symbol(idx.name))
            try:
                value = self.const_expr(st.value, f"the init of {name}")
            except _UnresolvedError:
                continue
            if ok:
                self.ir_inits[name] = ir.Init(
                    ir.Access(name, tuple(indices), st.target.span), value, st.span
                )

    # ------------------------------------------------------------ roles
    def check_roles(self) -> None:
        read = {a.tensor for e in self.einsums.values() for a in e.reads}
        for name, info in self.tensors.items():
            assigned = name in self.assignments
            if info.role is ir.Role.INPUT and assigned:
                st = self.assignments[name]
                self.error(
                    st.target.tensor.span,
                    f"'{name}' is an input and cannot be assigned",
                    hint="declare it with 'tensor' or 'output' instead, or rename the result",
                    notes=[("declared as input here", info.span)],
                )
            if info.role is ir.Role.OUTPUT and not assigned:
                self.report_unassigned_output(info, read)
            if info.role is ir.Role.INTERMEDIATE and not assigned and info.decl is not None:
                if name in read:
                    self.error(
                        info.span,
                        f"tensor '{name}' is read but never assigned",
                        hint=f"assign it ({name}[...] = ...) or declare it as an input",
                    )
                elif name not in self.inits:
                    self.sink.warning(info.span, f"tensor '{name}' is declared but never used")
            dims = info.dims
            iterative = dims is not None and any(d.iterative for d in dims)
            if assigned and iterative and dims is not None and name not in self.inits:
                st = self.assignments[name]
                pos = next(i for i, d in enumerate(dims) if d.iterative)
                shown = ", ".join("0" if i == pos else d.rank.lower() for i, d in enumerate(dims))
                self.error(
                    st.target.span,
                    f"iterative tensor '{name}' has no init",
                    hint=f"set its first iterate: init {name}[{shown}] = ...",
                )
            unused = assigned and info.role is None and name not in read
            if unused and name not in self.inits and not self.similar_output(name):
                self.sink.warning(
                    self.assignments[name].target.span,
                    f"tensor '{name}' is assigned but never used",
                    hint="declare it as an output to keep it",
                )
        if not any(i.role is ir.Role.OUTPUT for i in self.tensors.values()):
            first = self.program.statements[0].span if self.program.statements else None
            self.error(
                first,
                "the cascade declares no output",
                hint="declare the result: output NAME[RANKS] : dtype",
            )

    def similar_output(self, name: str) -> str | None:
        outs = [
            n
            for n, i in self.tensors.items()
            if i.role is ir.Role.OUTPUT and n not in self.assignments
        ]
        close = difflib.get_close_matches(name, outs, n=1, cutoff=0.6)
        lowered = [o for o in outs if o.lower() == name.lower()]
        found = lowered or close
        return found[0] if found else None

    def report_unassigned_output(self, info: _TensorInfo, read: set[str]) -> None:
        # A misspelled left-hand side leaves the output unassigned; blame the misspelling.
        for cand, st in self.assignments.items():
            if cand in read or self.tensors[cand].role is not None:
                continue
            if self.similar_output(cand) == info.name:
                self.error(
                    st.target.tensor.span,
                    f"tensor '{cand}' is assigned but never used, and output '{info.name}' "
                    "is never assigned",
                    hint=f"did you mean {info.name}?",
                    notes=[(f"output '{info.name}' declared here", info.span)],
                )
                return
        self.error(
            info.span,
            f"output '{info.name}' is never assigned",
            hint=f"add an Einsum {info.name}[...] = ...",
        )

    # ------------------------------------------------------------ dependencies
    def check_dependencies(self) -> tuple[object, ...]:
        if self.sink.errors:
            return ()
        einsums = [self.einsums[n] for n in self.assignments if n in self.einsums]
        tensors = self.provisional_tensors()
        stages, problems = plan_stages(einsums, tensors, self.var_rank)
        for p in problems:
            st = self.assignments[p.einsum]
            self.error(st.target.span, p.message, hint=p.hint)
        return stages

    def provisional_tensors(self) -> dict[str, ir.Tensor]:
        out: dict[str, ir.Tensor] = {}
        for name, info in self.tensors.items():
            if info.dims is None:
                continue
            role = info.role or ir.Role.INTERMEDIATE
            out[name] = ir.Tensor(name, role, info.dims, info.dtype, info.fill, info.span)
        return out

    # ------------------------------------------------------------ expectations
    def check_expects(self) -> tuple[ir.Expect, ...]:
        out: list[ir.Expect] = []
        for st in self.program.statements:
            if not isinstance(st, s.ExpectStmt):
                continue
            fn = st.fn.name
            if fn not in EXPECTATIONS:
                self.error(
                    st.fn.span,
                    f"unknown expectation '{fn}'",
                    hint=_suggest(fn, EXPECTATIONS) or "known: " + ", ".join(EXPECTATIONS),
                )
                continue
            args: list[str] = []
            ok = True
            if len(st.args) != EXPECTATIONS[fn]:
                self.error(st.span, f"{fn}(...) takes {EXPECTATIONS[fn]} rank")
                continue
            for a in st.args:
                if isinstance(a, s.Name) and a.name in self.ranks:
                    args.append(a.name)
                elif isinstance(a, s.Name):
                    hint = _suggest(a.name, self.ranks)
                    if a.name in self.var_rank:
                        hint = f"name the rank, not its variable: {self.var_rank[a.name]}"
                    self.error(a.span, f"expect names unknown rank '{a.name}'", hint=hint)
                    ok = False
                else:
                    self.error(a.span, f"{fn}(...) takes a rank name")
                    ok = False
            if not isinstance(st.value, s.Number) or not st.value.text.isdigit():
                self.error(st.value.span, "an expectation compares with an integer")
                ok = False
            if ok:
                assert isinstance(st.value, s.Number)
                out.append(ir.Expect(fn, tuple(args), st.op, int(st.value.text), st.span))
        return tuple(out)

    # ------------------------------------------------------------ build
    def build(self, stages: tuple[object, ...], expects: tuple[ir.Expect, ...]) -> Cascade:
        order: list[str] = []
        for stage in stages:
            if isinstance(stage, Recurrence):
                order.extend(stage.einsums)
            else:
                assert isinstance(stage, str)
                order.append(stage)
        tensors = self.provisional_tensors()
        inputs = [t for t in tensors.values() if t.role is ir.Role.INPUT]
        outputs = [t for t in tensors.values() if t.role is ir.Role.OUTPUT]
        inter = [tensors[n] for n in order if tensors[n].role is ir.Role.INTERMEDIATE]
        all_tensors = (*inputs, *outputs, *inter)
        tensor_rank = {t.name: i for i, t in enumerate(all_tensors)}
        ranks = tuple(
            ir.Rank(name, self.rank_extents.get(name), st.span) for name, st in self.ranks.items()
        )
        splits = tuple(
            ir.Split(p, tuple(c.name for c in st.children), st.span)
            for p, st in self.splits.items()
        )
        params = tuple(ir.Param(n, self.param_values[n], st.span) for n, st in self.params.items())
        inits = tuple(sorted(self.ir_inits.values(), key=lambda i: tensor_rank[i.target.tensor]))
        name = self.name or _stem(self.file)
        return Cascade(
            name,
            ranks,
            splits,
            params,
            all_tensors,
            inits,
            tuple(self.einsums[n] for n in order),
            expects,
            self.source,
        )

    # ------------------------------------------------------------ warnings
    def warn_split_mixing(self, cascade: Cascade) -> None:
        """``m`` beside its tiles ``m1, m0`` in one Einsum is almost always a mistake."""
        for e in cascade.einsums:
            used = set(e.variables)
            for split in cascade.splits:
                parent = cascade.rank(split.parent).var
                kids = [cascade.rank(c).var for c in split.children]
                if parent in used and used & set(kids):
                    site = next((a.span for a in e.reads if parent in a.variables), e.output.span)
                    self.sink.warning(
                        site,
                        f"'{parent}' and its tiles {', '.join(kids)} both index {e.name}: "
                        f"{parent} ranges over all of {split.parent} independently of them",
                        hint=f"to read the tile, index with {render_index(split.index_expr)}",
                    )

    def warn_fills(self, cascade: Cascade) -> None:
        """A filter's fill that flows into exp or max changes the result."""
        for e in cascade.einsums:
            if not e.where:
                continue
            t = cascade.tensor(e.name)
            fill = self.eval_const(t.fill)
            if fill is None or fill <= -1e4:
                continue
            for consumer in cascade.consumers(e.name):
                how = _sensitive_use(consumer.body, e.name)
                if how:
                    self.sink.warning(
                        e.where[0].span,
                        f"points removed by this filter hold {e.name}'s fill {fill:g}, which "
                        f"{how} in {consumer.name}",
                        hint=f"declare the fill: tensor {e.name}[{', '.join(map(str, t.dims))}]"
                        " : f32 = -inf",
                    )
                    break


def _sensitive_use(e: ir.Expr, tensor: str, under: str | None = None) -> str | None:
    """Whether ``tensor`` is read under exp, log or a max reduction inside ``e``."""
    if isinstance(e, ir.Access):
        return under if e.tensor == tensor else None
    if isinstance(e, ir.Call) and e.fn in {"exp", "log"}:
        under = f"flows into {e.fn}"
    if isinstance(e, ir.Reduce) and e.op == "max":
        under = "takes part in a max"
    for c in ir.children(e):
        found = _sensitive_use(c, tensor, under)
        if found:
            return found
    return None


def _line(span: Span | None) -> int:
    return span.line if span is not None else 0


def _show(e: s.Expr) -> str:
    if isinstance(e, s.Name):
        return f"'{e.name}'"
    return "expression"


def _stem(path: str) -> str:
    from pathlib import Path

    stem = Path(path).stem.replace("-", "_").replace(".", "_")
    if not stem.isidentifier():
        return "unnamed"
    return f"{stem}_" if stem in KEYWORDS or stem in RESERVED else stem
