"""The :class:`Cascade`: the whole IR of one `.ein` file, and its dependency structure.

The tuple of Einsums is the source of truth.  Graphs are derived, cached and frozen views.

Dependencies between Einsums are of two kinds:

``carried``
    the reader reads an iterative tensor at the current iterate (``RD[m1, p]`` while computing
    ``SPD[m1, p]``): the value was written by the *previous* iterate.  Not a cycle;
``ordered``
    the writer must run first.  The edge is *pointwise* in a variable ``x`` when the reader,
    at a given ``x``, needs only the writer's result at that same ``x`` (``SPD[m1, p]`` read
    while computing ``RD[m1 + 1, p]``, or ``RM[m1 + 1, p]`` while computing ``SLN``).  Inside a
    recurrence over ``x``, every ordered edge must be pointwise in ``x``.

A read of an iterative tensor at iterate 0 depends on its ``init`` only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from einsumcc.diagnostics import Source
from einsumcc.ir.digraph import Digraph, find_cycle, strongly_connected_components, topological_sort
from einsumcc.ir.nodes import (
    Access,
    Einsum,
    Expect,
    Init,
    Param,
    Rank,
    Role,
    Split,
    Tensor,
)

if TYPE_CHECKING:
    import networkx as nx
    import sympy


@dataclass(frozen=True, slots=True)
class Recurrence:
    """Einsums evaluated iterate by iterate over an iterative rank, in this order per iterate."""

    variable: str
    rank: str
    einsums: tuple[str, ...]


Stage = str | Recurrence


@dataclass(frozen=True, slots=True)
class Dependency:
    kind: str  # carried | ordered
    pointwise: frozenset[str]  # variables along which the reader needs only the same point


def dependency(reader: Einsum, access: Access, writer: Einsum, tensor: Tensor) -> Dependency | None:
    """How ``reader``'s read ``access`` depends on ``writer``; None: on the init only."""
    pos = tensor.iterative_position
    x = writer.iterative_variable
    lhs = set(reader.lhs_variables) & set(writer.lhs_variables)
    if pos is not None and x is not None:
        idx = access.affine_indices[pos]
        if idx.is_int(0):
            return None
        if idx.is_var_plus(x, 0) and x in reader.lhs_variables:
            return Dependency("carried", frozenset({x}))
    pointwise: set[str] = set()
    for mine, theirs in zip(writer.output.affine_indices, access.affine_indices, strict=True):
        if mine == theirs:
            pointwise |= {s.name for s in mine.free_symbols if s.name in lhs}
    return Dependency("ordered", frozenset(pointwise))


@dataclass(frozen=True)
class Edge:
    """A dependency of ``reader`` on ``writer`` through a read of ``tensor``."""

    writer: str
    reader: str
    kind: str
    pointwise: frozenset[str]
    tensor: str


def dependency_edges(einsums: Sequence[Einsum], tensors: dict[str, Tensor]) -> list[Edge]:
    """Einsum → Einsum edges, in the order of the readers and of their reads."""
    out: list[Edge] = []
    producers = {e.name: e for e in einsums}
    for e in einsums:
        for acc in e.reads:
            w = producers.get(acc.tensor)
            t = tensors.get(acc.tensor)
            if w is None or t is None:
                continue
            dep = dependency(e, acc, w, t)
            if dep is not None:
                out.append(Edge(w.name, e.name, dep.kind, dep.pointwise, acc.tensor))
    return out


def build_dependencies(
    einsums: Sequence[Einsum], tensors: dict[str, Tensor]
) -> nx.MultiDiGraph[str]:
    """Einsum → Einsum edges with ``kind``, ``pointwise`` and ``tensor`` attributes."""
    import networkx as nx

    g: nx.MultiDiGraph[str] = nx.MultiDiGraph()
    for e in einsums:
        g.add_node(e.name)
    for d in dependency_edges(einsums, tensors):
        g.add_edge(d.writer, d.reader, kind=d.kind, pointwise=d.pointwise, tensor=d.tensor)
    return g


@dataclass(frozen=True)
class DependencyProblem:
    einsum: str
    message: str
    hint: str | None = None


_RECURRENCE_HINT = "a recurrence writes T[x + 1] and reads the previous iterate T[x]"


class _Planner:
    """Orders the Einsums into stages; one strongly connected component at a time."""

    def __init__(
        self,
        einsums: Sequence[Einsum],
        tensors: dict[str, Tensor],
        var_ranks: dict[str, str],
    ) -> None:
        self.edges = dependency_edges(einsums, tensors)
        self.graph: Digraph[str] = Digraph()
        for e in einsums:
            self.graph.add_node(e.name)
        for d in self.edges:
            self.graph.add_edge(d.writer, d.reader)
        self.order_of = {e.name: i for i, e in enumerate(einsums)}
        self.by_name = {e.name: e for e in einsums}
        self.var_ranks = var_ranks

    def first(self, cycle: list[tuple[str, str, int]]) -> str:
        return min((c[0] for c in cycle), key=self.order_of.__getitem__)

    def component(self, comp: set[str]) -> Stage | DependencyProblem:
        """The stage of one component, or the problem that keeps it from being one."""
        members = sorted(comp, key=self.order_of.__getitem__)
        node_order = {n: i for i, n in enumerate(self.graph.succ)}
        edges = sorted(
            (d for d in self.edges if d.writer in comp and d.reader in comp),
            key=lambda d: node_order[d.writer],
        )
        if len(members) == 1 and not edges:
            return members[0]
        self_loops = [d for d in edges if d.writer == d.reader and d.kind != "carried"]
        if self_loops:
            u = self_loops[0].writer
            return DependencyProblem(
                u, f"cyclic dependence: {u} reads itself", hint=_RECURRENCE_HINT
            )
        xs = {self.by_name[d.writer].iterative_variable for d in edges if d.kind == "carried"}
        if len(xs) != 1:
            cycle = find_cycle(self.graph.subgraph(comp))
            assert cycle is not None
            names = " -> ".join([c[0] for c in cycle] + [cycle[0][0]])
            return DependencyProblem(
                self.first(cycle),
                f"cyclic dependence: {names}"
                + (" (a recurrence mixes iterative ranks)" if len(xs) > 1 else ""),
                hint=_RECURRENCE_HINT,
            )
        x = next(iter(xs))
        assert x is not None
        return self.recurrence(x, members, edges)

    def recurrence(
        self, x: str, members: list[str], edges: list[Edge]
    ) -> Stage | DependencyProblem:
        whole = [d for d in edges if d.kind == "ordered" and x not in d.pointwise]
        if whole:
            d = whole[0]
            return DependencyProblem(
                d.reader,
                f"cyclic dependence: {d.reader} needs {d.tensor} at every {x}, but "
                f"{d.tensor} depends on {d.reader} through the recurrence over {x}",
                hint=f"read {d.tensor} at the current iterate, indexed by {x}",
            )
        plain: Digraph[str] = Digraph((d.writer, d.reader) for d in edges if d.kind != "carried")
        for m in members:
            plain.add_node(m)
        inner = topological_sort(plain, key=self.order_of.__getitem__)
        if inner is None:
            cycle = find_cycle(plain)
            assert cycle is not None
            names = " -> ".join([c[0] for c in cycle] + [cycle[0][0]])
            return DependencyProblem(
                self.first(cycle),
                f"cyclic dependence: {names}",
                hint="a recurrence must read the previous iterate: write T[x + 1] = ... T[x]",
            )
        missing = [m for m in members if x not in self.by_name[m].lhs_variables]
        if missing:
            return DependencyProblem(
                missing[0],
                f"{missing[0]} takes part in the recurrence over {x} but does not iterate over {x}",
                hint=f"index its left side with {x}",
            )
        return Recurrence(x, self.var_ranks.get(x, x.upper()), tuple(inner))

    def plan(self) -> tuple[tuple[Stage, ...], list[DependencyProblem]]:
        comps = strongly_connected_components(self.graph)
        problems: list[DependencyProblem] = []
        groups: dict[int, Stage] = {}
        for i, comp in enumerate(comps):
            found = self.component(comp)
            if isinstance(found, DependencyProblem):
                problems.append(found)
            else:
                groups[i] = found
        if problems:
            return (), problems
        comp_of = {n: i for i, c in enumerate(comps) for n in c}
        cond: Digraph[int] = Digraph()
        for i in range(len(comps)):
            cond.add_node(i)
        for d in self.edges:
            if comp_of[d.writer] != comp_of[d.reader]:
                cond.add_edge(comp_of[d.writer], comp_of[d.reader])
        first = {i: min(self.order_of[n] for n in comps[i]) for i in range(len(comps))}
        order = topological_sort(cond, key=first.__getitem__)
        assert order is not None
        return tuple(groups[i] for i in order), []


def plan_stages(
    einsums: Sequence[Einsum], tensors: dict[str, Tensor], var_ranks: dict[str, str]
) -> tuple[tuple[Stage, ...], list[DependencyProblem]]:
    """Order the Einsums into stages, finding recurrences; report true cycles.

    Ties are broken by the order of ``einsums`` so that the result is deterministic.
    """
    return _Planner(einsums, tensors, var_ranks).plan()


@dataclass(frozen=True)
class Cascade:
    """One cascade of extended Einsums.  Einsums are stored in a dependency order."""

    name: str
    ranks: tuple[Rank, ...]
    splits: tuple[Split, ...]
    params: tuple[Param, ...]
    tensors: tuple[Tensor, ...]
    inits: tuple[Init, ...]
    einsums: tuple[Einsum, ...]
    expects: tuple[Expect, ...] = ()
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)
    # default extents bound at load time (``load(..., M=1024)``), sorted by rank name
    dims: tuple[tuple[str, int], ...] = ()

    # ------------------------------------------------------------ lookups
    @functools.cached_property
    def _tensors(self) -> dict[str, Tensor]:
        return {t.name: t for t in self.tensors}

    @functools.cached_property
    def _einsums(self) -> dict[str, Einsum]:
        return {e.name: e for e in self.einsums}

    @functools.cached_property
    def _ranks(self) -> dict[str, Rank]:
        return {r.name: r for r in self.ranks}

    def tensor(self, name: str) -> Tensor:
        return self._tensors[name]

    def rank(self, name: str) -> Rank:
        return self._ranks[name]

    def einsum(self, name: str) -> Einsum:
        return self._einsums[name]

    def producer(self, tensor: str) -> Einsum | None:
        return self._einsums.get(tensor)

    def consumers(self, tensor: str) -> tuple[Einsum, ...]:
        return tuple(e for e in self.einsums if any(a.tensor == tensor for a in e.reads))

    def inits_of(self, tensor: str) -> tuple[Init, ...]:
        return tuple(i for i in self.inits if i.target.tensor == tensor)

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        return tuple(t for t in self.tensors if t.role is Role.INPUT)

    @property
    def outputs(self) -> tuple[Tensor, ...]:
        return tuple(t for t in self.tensors if t.role is Role.OUTPUT)

    @functools.cached_property
    def var_ranks(self) -> dict[str, str]:
        """Rank variable → rank name (``m1`` → ``M1``)."""
        return {r.var: r.name for r in self.ranks}

    def split_of(self, parent: str) -> Split | None:
        return next((s for s in self.splits if s.parent == parent), None)

    @functools.cached_property
    def symbolic_extents(self) -> dict[str, sympy.Expr]:  # imports sympy
        """Each rank's extent as a sympy expression: its own symbol."""
        return {r.name: r.symbol for r in self.ranks}

    # ------------------------------------------------------------ structure
    @functools.cached_property
    def dependencies(self) -> nx.MultiDiGraph[str]:
        """Einsum → Einsum edges with ``kind`` (carried, ordered), ``pointwise`` and ``tensor``."""
        import networkx as nx

        frozen: nx.MultiDiGraph[str] = nx.freeze(build_dependencies(self.einsums, self._tensors))
        return frozen

    @functools.cached_property
    def stages(self) -> tuple[Stage, ...]:
        """Evaluation plan: single Einsums and recurrences, in dependency order."""
        stages, problems = plan_stages(self.einsums, self._tensors, self.var_ranks)
        assert not problems, problems
        return stages

    @functools.cached_property
    def graph(self) -> nx.DiGraph[str]:
        """A read-only bipartite view: ``tensor:X`` and ``einsum:X`` nodes.

        Edges ``tensor:T → einsum:E`` carry ``dependencies``, a sorted tuple of the kinds of
        the reads (ordered, carried, init or input);
        edges ``einsum:E → tensor:E`` are writes.
        """
        import networkx as nx

        g: nx.DiGraph[str] = nx.DiGraph()
        for t in self.tensors:
            g.add_node(f"tensor:{t.name}", kind="tensor", name=t.name, role=t.role.value)
        for e in self.einsums:
            g.add_node(f"einsum:{e.name}", kind="einsum", name=e.name)
            g.add_edge(f"einsum:{e.name}", f"tensor:{e.name}", kind="write")
        for e in self.einsums:
            for acc in e.reads:
                w = self.producer(acc.tensor)
                kind = "input"
                if w is not None:
                    dep = dependency(e, acc, w, self.tensor(acc.tensor))
                    kind = dep.kind if dep is not None else "init"
                key = (f"tensor:{acc.tensor}", f"einsum:{e.name}")
                kinds = set(g.edges[key]["dependencies"]) if g.has_edge(*key) else set()
                g.add_edge(*key, kind="read", dependencies=tuple(sorted(kinds | {kind})))
        frozen: nx.DiGraph[str] = nx.freeze(g)
        return frozen
