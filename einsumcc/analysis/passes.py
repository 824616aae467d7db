"""Pass analysis: the lower bound on the number of passes over a rank (FuseMax §III).

A pass over a fiber of a rank is a traversal of every element of that fiber.  Each time an
element must be revisited after every other element of the fiber was visited, there is an
additional pass.  On a cascade this happens when an Einsum *X* reduces the rank away (its
result is final only after the whole fiber was consumed) and a later Einsum *Z* needs that
result at points that still carry the rank while reading the fiber again: a read-read
dependence.  N such dependences in a chain force N + 1 passes, whatever the mapping.

The procedure (spec fusemax.md §4.3b) labels every Einsum with a pass number:

* an Einsum *traverses* a rank when its iteration space holds the rank's variable, or all
  the variables the rank was split into (``{m1, m0}`` for ``split M -> M1, M0``), or all the
  variables of an index that walks the rank through several of them in mixed radix
  (``A[n*J + j]`` with ``n < N``, ``j < J`` and ``N*J == K`` walks K, split or not);
* a read is a *stream* read when its index expressions use a variable of the rank (including
  the current iterate of an iterative copy, ``RM[m1, p]``) and a *done* read otherwise
  (``GM[p]``, or the final iterate ``RNV[f, M1, p]``);
* ``pass(e) = max(s, d + 1, 1)`` for a traversal and ``max(s, d)`` otherwise, where ``s`` and
  ``d`` are the largest pass numbers among the Einsums that produced its stream and done reads.

A statement with nested reductions is analysed as the Einsums it stands for: in
``O[f, p] = sum{m} (SN[m, p] * V[f, m]) / SD[p]`` the sum is one Einsum (a traversal of M) and
the division another (over ``f, p`` only), so deferring the division does not force a pass.
Recurrences over an iterative rank read partial results and force nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from einsumcc.analysis.exprs import json_expr
from einsumcc.diagnostics import Span
from einsumcc.ir.affine import Affine
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import (
    Access,
    Einsum,
    Expr,
    Reduce,
    Tensor,
    children,
    free_variables,
    walk,
)

if TYPE_CHECKING:
    import sympy


@dataclass(frozen=True)
class _Node:
    """One Einsum of the analysis: a statement, or a reduction nested inside one."""

    key: str  # "QK" for the statement, "QK.1" for its first nested reduction
    statement: str
    space: frozenset[str]  # iteration variables
    reads: tuple[Access, ...]  # tensor reads evaluated at this node
    inner: tuple[str, ...]  # keys of nested reductions whose results this node reads
    inner_spaces: tuple[frozenset[str], ...]  # the free variables of those results


def _decompose(e: Einsum) -> list[_Node]:
    """The statement as Einsums: one per reduction, innermost first, then the statement."""
    nodes: list[_Node] = []
    counter = [0]
    sites = _filter_sites(e)

    def visit(expr: Expr, key: str) -> tuple[list[Access], list[tuple[str, frozenset[str]]]]:
        reads: list[Access] = []
        inner: list[tuple[str, frozenset[str]]] = []
        stack = [expr]
        while stack:
            n = stack.pop()
            if isinstance(n, Reduce):
                counter[0] += 1
                sub = f"{e.name}.{counter[0]}"
                r_reads, r_inner = visit(n.body, sub)
                nodes.append(
                    _Node(
                        sub,
                        e.name,
                        free_variables(n.body),
                        tuple(r_reads) + sites.get(id(n), ()),
                        tuple(k for k, _ in r_inner),
                        tuple(s for _, s in r_inner),
                    )
                )
                inner.append((sub, free_variables(n)))
                continue
            if isinstance(n, Access):
                reads.append(n)
            stack.extend(children(n))
        return reads, inner

    reads, inner = visit(e.body, e.name)
    space = frozenset(e.lhs_variables) | free_variables(e.body)
    nodes.append(
        _Node(
            e.name,
            e.name,
            space,
            tuple(reads) + sites.get(0, ()),
            tuple(k for k, _ in inner),
            tuple(s for _, s in inner),
        )
    )
    return nodes


def _filter_sites(e: Einsum) -> dict[int, tuple[Access, ...]]:
    """(v2) Where the reads of the filter's data conditions are evaluated, like any access: a
    condition on left-hand variables only at the statement (key 0: it applies to the result),
    one on reduced variables at the outermost reduction that binds them (``id`` of the node)."""
    out: dict[int, tuple[Access, ...]] = {}
    lhs = frozenset(e.lhs_variables)
    for cond in e.mask:
        reads = tuple(n for n in walk(cond) if isinstance(n, Access))
        needed = free_variables(cond) - lhs
        site = _binding_reduction(e.body, needed, frozenset()) if needed else None
        key = 0 if site is None else id(site)
        out[key] = out.get(key, ()) + reads
    return out


def _binding_reduction(expr: Expr, needed: frozenset[str], scope: frozenset[str]) -> Expr | None:
    """The outermost reduction of ``expr`` within whose scope every ``needed`` variable is bound."""
    if isinstance(expr, Reduce):
        scope = scope | set(expr.variables)
        if needed <= scope:
            return expr
    for c in children(expr):
        found = _binding_reduction(c, needed, scope)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class Site:
    einsum: str
    span: Span | None = field(compare=False)

    @property
    def line(self) -> int | None:
        return self.span.line if self.span is not None else None

    def __str__(self) -> str:
        return f"{self.einsum} (line {self.line})" if self.line is not None else self.einsum


@dataclass(frozen=True)
class Witness:
    """Why pass ``number`` exists: ``reducer`` finishes a reduction over the rank into
    ``result``; ``consumer`` needs ``result`` while reading the fiber of ``tensor`` again
    (``tensor`` is empty when the consumer reads no such fiber and only traverses the rank)."""

    rank: str
    number: int
    reducer: Site
    result: str
    consumer: Site
    tensor: str

    def __str__(self) -> str:
        via = "" if self.result == self.reducer.einsum else ", computed from it,"
        # ``tensor`` is empty when the consumer reads no fiber of the rank again: it only
        # traverses the rank (e.g. ``Z[d] = S[]`` writes a D fiber from a finished sum).
        again = (
            f"while re-reading the {self.rank} fiber of {self.tensor}"
            if self.tensor
            else f"while traversing {self.rank} again"
        )
        return (
            f"pass {self.number}: {self.reducer} reduces {self.rank} fully; "
            f"{self.consumer} needs {self.result}{via} {again}"
        )


@dataclass(frozen=True)
class Footprint:
    """What a mapping must keep per outer point.

    ``kind`` is ``live_fiber`` for a multi-pass rank (a whole fiber survives between passes,
    or is spilled and re-read), ``carried_state`` for a one-pass rank carried by recurrences,
    and ``none`` otherwise.  ``per_point`` is in values, ``outer`` the ranks of a point.
    The sizes are sympy expressions: footprints are computed on first use.
    """

    kind: str
    per_point: sympy.Expr
    outer: tuple[str, ...]
    tensors: tuple[str, ...]
    total_bytes: sympy.Expr = None  # the live tensor(s) in full (default 0)
    spill_bytes_per_pass: sympy.Expr = None  # DRAM traffic if spilled (default 0)

    def __post_init__(self) -> None:
        import sympy

        for name in ("total_bytes", "spill_bytes_per_pass"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, sympy.Integer(0))

    def to_dict(self, extents: Mapping[str, int] | None = None) -> dict[str, object]:
        return {
            "kind": self.kind,
            "per_point": json_expr(self.per_point, extents),
            "outer": list(self.outer),
            "tensors": list(self.tensors),
            "total_bytes": json_expr(self.total_bytes, extents),
            "spill_bytes_per_pass": json_expr(self.spill_bytes_per_pass, extents),
        }


def _witness_dict(w: Witness) -> dict[str, object]:
    return {
        "rank": w.rank,
        "pass": w.number,
        "reducer": {"einsum": w.reducer.einsum, "line": w.reducer.line},
        "result": w.result,
        "consumer": {"einsum": w.consumer.einsum, "line": w.consumer.line},
        "tensor": w.tensor or None,
    }


@dataclass(frozen=True)
class PassReport:
    """The passes over one rank (``einsumcc.passes(cascade, rank)``).

    ``count`` is the lower bound on the number of passes, ``per_einsum`` the pass number of
    every statement (0: outside every pass), ``witnesses`` why each extra pass exists and
    ``footprint`` what a mapping must keep (computed on first use: it needs sympy).
    """

    rank: str
    passes: int
    einsums: tuple[tuple[str, int], ...]  # statement → pass number (0: outside every pass)
    witnesses: tuple[Witness, ...]
    cascade: str = ""
    compute_footprint: Callable[[], Footprint] | None = field(
        default=None, compare=False, hash=False, repr=False
    )

    @property
    def count(self) -> int:
        return self.passes

    @property
    def per_einsum(self) -> dict[str, int]:
        return dict(self.einsums)

    @functools.cached_property
    def footprint(self) -> Footprint:
        assert self.compute_footprint is not None
        return self.compute_footprint()

    @property
    def by_pass(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for name, k in self.einsums:
            out.setdefault(k, []).append(name)
        return out

    def __repr__(self) -> str:
        return (
            f"<PassReport {self.cascade} {self.rank}: "
            f"{self.passes} pass{'es' if self.passes != 1 else ''}>"
        )

    def to_dict(self, extents: Mapping[str, int] | None = None) -> dict[str, object]:
        """The JSON object of ``einsumcc analyze passes FILE --rank RANK --json``."""
        return _report_dict(self.cascade, (self,), extents)


def _report_dict(
    cascade: str, ranks: Iterable[PassReport], extents: Mapping[str, int] | None
) -> dict[str, object]:
    ranks = tuple(ranks)
    einsums: dict[str, dict[str, int]] = {}
    for r in ranks:
        for name, k in r.einsums:
            einsums.setdefault(name, {})[r.rank] = k
    return {
        "cascade": cascade,
        "passes": {r.rank: r.passes for r in ranks},
        "einsums": einsums,
        "witnesses": [_witness_dict(w) for r in ranks for w in r.witnesses],
        "footprint": {
            r.rank: r.footprint.to_dict(extents) for r in ranks if r.footprint.kind != "none"
        },
    }


@dataclass(frozen=True)
class PassAnalysis:
    """The passes over every rank of a cascade (or over the ranks asked for)."""

    cascade: str
    ranks: tuple[PassReport, ...]

    def rank(self, name: str) -> PassReport:
        return next(r for r in self.ranks if r.rank == name)

    @property
    def passes(self) -> dict[str, int]:
        return {r.rank: r.passes for r in self.ranks}

    def to_dict(self, extents: Mapping[str, int] | None = None) -> dict[str, object]:
        """The JSON object of ``einsumcc analyze passes FILE --json``."""
        return _report_dict(self.cascade, self.ranks, extents)


def _coverings(cascade: Cascade, rank: str) -> list[frozenset[str]]:
    """The variable sets that make up a whole fiber of ``rank``: ``{m}``, ``{m1, m0}``, ...,
    and those of an index that walks the rank through several variables (``{n, j}`` for
    ``A[n*J + j]`` with ``N*J == K``), whether or not a ``split`` names them."""
    out = [frozenset({cascade.rank(rank).var})]
    split = cascade.split_of(rank)
    if split is not None:
        options: list[frozenset[str]] = [frozenset()]
        for child in split.children:
            options = [o | c for o in options for c in _coverings(cascade, child)]
        out.extend(options)
    for variables, _ in implicit_walks(cascade, rank):
        if frozenset(variables) not in out:
            out.append(frozenset(variables))
    return out


def _family(cascade: Cascade, rank: str) -> frozenset[str]:
    """Every variable of the rank, of the ranks it was split into, and of the indices that
    walk it through several variables."""
    out = {cascade.rank(rank).var}
    split = cascade.split_of(rank)
    if split is not None:
        for child in split.children:
            out |= _family(cascade, child)
    for variables, _ in implicit_walks(cascade, rank):
        out |= set(variables)
    return frozenset(out)


def _extent_of(cascade: Cascade, rank: str, depth: int = 0) -> Affine | None:
    """The extent of ``rank`` in terms of the extents no declaration defines (``N = K / J``
    gives ``K / J``, ``J = 4`` gives 4); None when it has no canonical form."""
    r = cascade.rank(rank)
    if r.affine_extent is None or depth > len(cascade.ranks):
        return Affine.extent(rank)
    return _in_free_extents(cascade, r.affine_extent, depth + 1)


def _in_free_extents(cascade: Cascade, a: Affine, depth: int = 0) -> Affine | None:
    poly = a.poly
    if poly is None:
        return None
    out = Affine.const(0)
    for mono, coeff in poly:
        term = Affine.const(coeff.numerator) / coeff.denominator
        for sym, power in mono:
            if sym.var:
                base: Affine | None = Affine.var(sym.name)
            elif sym.name in cascade.var_ranks.values():
                base = _extent_of(cascade, sym.name, depth)
            else:
                base = Affine.extent(sym.name)
            if base is None:
                return None
            for _ in range(abs(power)):
                term = term * base if power > 0 else term / base
        out = out + term
    return out


def _walk_of(cascade: Cascade, rank: str, index: Affine) -> tuple[str, ...] | None:
    """The variables of ``index`` when it walks all of ``rank`` through several of them, in
    mixed radix (``n*J + j`` with ``n < N``, ``j < J`` and ``N*J == K``), split or not."""
    poly = index.poly
    if poly is None or len(poly) < 2:
        return None
    terms: list[tuple[str, Affine]] = []  # variable, stride
    for mono, coeff in poly:
        variables = [(s, p) for s, p in mono if s.var]
        if len(variables) != 1 or variables[0][1] != 1:
            return None
        rest = Affine.const(coeff.numerator) / coeff.denominator
        for s, p in mono:
            if not s.var:
                for _ in range(abs(p)):
                    e = Affine.extent(s.name)
                    rest = rest * e if p > 0 else rest / e
        stride = _in_free_extents(cascade, rest)
        if stride is None:
            return None
        terms.append((variables[0][0].name, stride))
    stride = Affine.const(1)
    left = list(terms)
    chain: list[str] = []
    while left:
        found = next((t for t in left if t[1] == stride), None)
        if found is None or found[0] not in cascade.var_ranks:
            return None
        left.remove(found)
        chain.append(found[0])
        extent = _extent_of(cascade, cascade.var_ranks[found[0]])
        if extent is None:
            return None
        stride = stride * extent
    whole = _extent_of(cascade, rank)
    if whole is None or stride != whole:
        return None
    return tuple(reversed(chain))


def implicit_walks(cascade: Cascade, rank: str) -> list[tuple[tuple[str, ...], Affine]]:
    """Every index of an access that walks all of ``rank`` through several variables, split
    or not (``A[n*J + j]``): its variables, outermost first, and the index."""
    out: list[tuple[tuple[str, ...], Affine]] = []
    for e in cascade.einsums:
        for acc in (e.output, *e.reads):
            t = cascade.tensor(acc.tensor)
            for d, ix in zip(t.dims, acc.affine_indices, strict=True):
                if d.rank != rank or d.iterative:
                    continue
                found = _walk_of(cascade, rank, ix)
                if found is not None and all(found != w for w, _ in out):
                    out.append((found, ix))
    return out


def _traverses(n: _Node, covers: list[frozenset[str]]) -> bool:
    return any(cov <= n.space for cov in covers)


class _Analysis:
    def __init__(self, cascade: Cascade) -> None:
        self.c = cascade
        self.nodes: list[_Node] = []
        for e in cascade.einsums:
            self.nodes.extend(_decompose(e))
        self.by_key = {n.key: n for n in self.nodes}
        self.order = {e.name: i for i, e in enumerate(cascade.einsums)}

    def run(self, rank: str) -> PassReport:
        covers = _coverings(self.c, rank)
        family = _family(self.c, rank)
        passes, why = self.propagate(covers, family)
        statement_pass = {e.name: passes[e.name] for e in self.c.einsums}
        # A statement's pass is that of its latest part.
        for n in self.nodes:
            statement_pass[n.statement] = max(statement_pass[n.statement], passes[n.key])
        total = max((passes[n.key] for n in self.nodes if _traverses(n, covers)), default=1)
        total = max(total, 1)
        witnesses = self.witnesses(rank, passes, why, family, covers)
        return PassReport(
            rank,
            total,
            tuple((e.name, statement_pass[e.name]) for e in self.c.einsums),
            witnesses,
            self.c.name,
            functools.partial(self.footprint, rank, total, witnesses, family),
        )

    def propagate(
        self, covers: list[frozenset[str]], family: frozenset[str]
    ) -> tuple[dict[str, int], dict[str, tuple[str, str]]]:
        """Pass numbers of every node, to a fixed point; and the done read that forced each."""
        passes: dict[str, int] = {n.key: 0 for n in self.nodes}
        why: dict[str, tuple[str, str]] = {}  # node → (done-read key, its tensor) that forced it
        for _ in range(len(self.nodes) + 2):
            changed = False
            for n in self.nodes:
                value = self.node_pass(n, passes, why, covers, family)
                if value != passes[n.key]:
                    passes[n.key] = value
                    changed = True
            if not changed:
                break
        return passes, why

    def node_pass(
        self,
        n: _Node,
        passes: Mapping[str, int],
        why: dict[str, tuple[str, str]],
        covers: list[frozenset[str]],
        family: frozenset[str],
    ) -> int:
        """``max(s, d + 1, 1)`` for a traversal, ``max(s, d)`` otherwise (module docstring)."""
        s = d = 0
        done_src: tuple[str, str] | None = None
        inputs: list[tuple[int, frozenset[str], tuple[str, str]]] = []
        for acc in sorted(n.reads, key=self.read_order):
            w = self.c.producer(acc.tensor)
            if w is not None:
                inputs.append((passes[w.name], acc.variables, (w.name, acc.tensor)))
        for key, space in zip(n.inner, n.inner_spaces, strict=True):
            inputs.append((passes[key], space, (key, "")))
        for k, variables, src in inputs:
            if variables & family:
                s = max(s, k)
            elif done_src is None or k > d:
                d, done_src = k, src
        if not _traverses(n, covers):
            return max(s, d)
        if d + 1 > s and done_src is not None and d >= 1:
            why[n.key] = done_src
        return max(s, d + 1, 1)

    def read_order(self, acc: Access) -> int:
        """Reads in the order their producers appear, so that ties name the earliest."""
        return self.order.get(acc.tensor, -1)

    # ------------------------------------------------------------ explanations
    def witnesses(
        self,
        rank: str,
        passes: Mapping[str, int],
        why: Mapping[str, tuple[str, str]],
        family: frozenset[str],
        covers: list[frozenset[str]],
    ) -> tuple[Witness, ...]:
        out: list[Witness] = []
        seen: set[int] = set()
        for n in self.nodes:
            k = passes[n.key]
            if n.key not in why or k in seen or k < 2:
                continue
            src_key, result = why[n.key]
            reducer = self.reducer(src_key, passes, family)
            if not result:
                result = self.by_key[src_key].statement if src_key in self.by_key else src_key
            tensor = self.reread(n, reducer, family, covers)
            seen.add(k)
            out.append(
                Witness(
                    rank,
                    k,
                    self.site(reducer),
                    result,
                    self.site(n.statement),
                    tensor,
                )
            )
        return tuple(sorted(out, key=lambda w: w.number))

    def site(self, statement: str) -> Site:
        return Site(statement, self.c.einsum(statement).span)

    def reducer(self, key: str, passes: Mapping[str, int], family: frozenset[str]) -> str:
        """The statement where the rank disappears on the way to a done value."""
        seen: set[str] = set()
        while key not in seen:
            seen.add(key)
            node = self.by_key.get(key)
            if node is None:
                return key
            if any(acc.variables & family for acc in node.reads) or any(
                s & family for s in node.inner_spaces
            ):
                return node.statement
            # Only done values flow in: follow the one with the highest pass.
            best: tuple[int, str] | None = None
            for acc in node.reads:
                w = self.c.producer(acc.tensor)
                if w is not None and (best is None or passes[w.name] > best[0]):
                    best = (passes[w.name], w.name)
            for sub in node.inner:
                if best is None or passes[sub] > best[0]:
                    best = (passes[sub], sub)
            if best is None:
                return node.statement
            key = best[1]
        return self.by_key[key].statement if key in self.by_key else key

    def reread(
        self, consumer: _Node, reducer: str, family: frozenset[str], covers: list[frozenset[str]]
    ) -> str:
        """The tensor whose fiber ``consumer`` reads again: one it streams, preferably along
        the whole rank, computed from what the reducer streamed."""
        reducer_sources: set[str] = set()
        for t in self.stream_sources(reducer, family):
            reducer_sources |= self.stream_sources_of_tensor(t, family)
        reads = [a for a in self.all_reads(consumer) if a.variables & family]
        whole = [a.tensor for a in reads if any(c <= a.variables for c in covers)]
        partial = [a.tensor for a in reads if a.tensor not in whole]
        for group in (whole, partial):
            direct = [t for t in group if t in self.stream_sources(reducer, family)]
            if direct:
                return direct[0]
            shared = [
                t for t in group if self.stream_sources_of_tensor(t, family) & reducer_sources
            ]
            if shared:
                return shared[0]
        return (whole + partial)[0] if reads else ""

    def all_reads(self, node: _Node) -> list[Access]:
        out = list(node.reads)
        for sub in node.inner:
            out.extend(self.all_reads(self.by_key[sub]))
        return out

    def stream_sources(self, statement: str, family: frozenset[str]) -> set[str]:
        node = self.by_key[statement]
        return {a.tensor for a in self.all_reads(node) if a.variables & family}

    @functools.cache  # noqa: B019 - the analysis object lives for one report
    def stream_sources_of_tensor(self, tensor: str, family: frozenset[str]) -> frozenset[str]:
        """Tensors that ``tensor`` is computed from along the rank, transitively."""
        out = {tensor}
        todo = [tensor]
        while todo:  # a worklist: the reads of a recurrence's Einsums form cycles
            e = self.c.producer(todo.pop())
            if e is None:
                continue
            for acc in self.all_reads(self.by_key[e.name]):
                if acc.variables & family and acc.tensor not in out:
                    out.add(acc.tensor)
                    todo.append(acc.tensor)
        return frozenset(out)

    # ------------------------------------------------------------ footprints
    def footprint(
        self, rank: str, total: int, witnesses: tuple[Witness, ...], family: frozenset[str]
    ) -> Footprint:
        ranks_of_family = {self.c.var_ranks[v] for v in family}
        live = [w for w in witnesses if w.tensor]  # a witness that re-reads a fiber
        if total > 1 and live:
            best: Footprint | None = None
            for w in live:
                t = self.c.tensor(w.tensor)
                fiber = [d for d in t.dims if d.rank in ranks_of_family]
                outer = tuple(d.rank for d in t.dims if d.rank not in ranks_of_family)
                per_point = self.simplify(_product(self.extent(d.rank, d.iterative) for d in fiber))
                size = self.simplify(_product(self.extent(d.rank, d.iterative) for d in t.dims))
                nbytes = size * t.dtype.itemsize
                spill = nbytes if t.role.value == "input" else 2 * nbytes
                fp = Footprint("live_fiber", per_point, outer, (t.name,), nbytes, spill)
                if best is None or _magnitude(fp.per_point) > _magnitude(best.per_point):
                    best = fp
            assert best is not None
            return best
        carried = self.carried_tensors(ranks_of_family)
        if carried:
            common = set.intersection(*(set(t.ranks) for t in carried)) - ranks_of_family
            outer = tuple(r for r in carried[0].ranks if r in common)
            import sympy

            state: sympy.Expr = sympy.Integer(0)
            total_bytes: sympy.Expr = sympy.Integer(0)
            for t in carried:
                inner = [d for d in t.dims if not d.iterative and d.rank not in common]
                values = _product(self.extent(d.rank) for d in inner)
                state = state + values
                whole = _product(self.extent(d.rank) for d in t.dims if not d.iterative)
                total_bytes = total_bytes + whole * t.dtype.itemsize
            return Footprint(
                "carried_state",
                self.simplify(state),
                outer,
                tuple(t.name for t in carried),
                self.simplify(total_bytes),
            )
        import sympy

        return Footprint("none", sympy.Integer(0), (), ())

    def carried_tensors(self, ranks: set[str]) -> list[Tensor]:
        out = []
        for t in self.c.tensors:
            pos = t.iterative_position
            if pos is not None and t.dims[pos].rank in ranks:
                out.append(t)
        return out

    def extent(self, rank: str, iterative: bool = False) -> sympy.Expr:
        sym = self.c.rank(rank).symbol
        return sym + 1 if iterative else sym

    def simplify(self, expr: sympy.Expr) -> sympy.Expr:
        """Write products of split ranks as their parent: ``M1*M0`` → ``M``."""
        from einsumcc.analysis.cost import in_parent_ranks

        return in_parent_ranks(self.c, expr)


def _magnitude(expr: sympy.Expr) -> float:
    """A size for comparing footprints: every extent set to 1024."""
    return float(expr.subs(dict.fromkeys(expr.free_symbols, 1024)))


def _product(items: object) -> sympy.Expr:
    import sympy

    out: sympy.Expr = sympy.Integer(1)
    for x in items:  # type: ignore[attr-defined]
        out = out * x
    return out


def analyze_passes(cascade: Cascade, rank: str | None = None) -> PassAnalysis:
    """Pass counts, pass numbers, witnesses and footprints for every rank (or one rank).

    >>> from einsumcc import load
    >>> c = load("rank K\\ninput A[K]\\ninput B[K]\\noutput Z[]\\n"
    ...          "Y[] = A[k] * B[k]\\nZ[] = Y[] * A[k]\\n")
    >>> analyze_passes(c).passes
    {'K': 2}
    """
    analysis = _Analysis(cascade)
    names = [r.name for r in cascade.ranks] if rank is None else [rank]
    return PassAnalysis(cascade.name, tuple(analysis.run(r) for r in names))
