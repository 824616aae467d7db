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

import networkx as nx
import sympy

from einsumcc.diagnostics import Source
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
    var_symbol,
)


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
        idx = access.indices[pos]
        if idx == 0:
            return None
        if idx == var_symbol(x) and x in reader.lhs_variables:
            return Dependency("carried", frozenset({x}))
    pointwise = set()
    for mine, theirs in zip(writer.output.indices, access.indices, strict=True):
        if mine == theirs:
            pointwise |= {str(v) for v in mine.free_symbols if str(v) in lhs}
    return Dependency("ordered", frozenset(pointwise))


def build_dependencies(
    einsums: Sequence[Einsum], tensors: dict[str, Tensor]
) -> nx.MultiDiGraph[str]:
    """Einsum → Einsum edges with ``kind``, ``pointwise`` and ``tensor`` attributes."""
    g: nx.MultiDiGraph[str] = nx.MultiDiGraph()
    producers = {e.name: e for e in einsums}
    for e in einsums:
        g.add_node(e.name)
    for e in einsums:
        for acc in e.reads:
            w = producers.get(acc.tensor)
            t = tensors.get(acc.tensor)
            if w is None or t is None:
                continue
            dep = dependency(e, acc, w, t)
            if dep is not None:
                g.add_edge(
                    w.name, e.name, kind=dep.kind, pointwise=dep.pointwise, tensor=acc.tensor
                )
    return g


@dataclass(frozen=True)
class DependencyProblem:
    einsum: str
    message: str
    hint: str | None = None


def plan_stages(
    einsums: Sequence[Einsum], tensors: dict[str, Tensor], var_ranks: dict[str, str]
) -> tuple[tuple[Stage, ...], list[DependencyProblem]]:
    """Order the Einsums into stages, finding recurrences; report true cycles.

    Ties are broken by the order of ``einsums`` so that the result is deterministic.
    """
    g = build_dependencies(einsums, tensors)
    order_of = {e.name: i for i, e in enumerate(einsums)}
    by_name = {e.name: e for e in einsums}
    problems: list[DependencyProblem] = []
    comps = list(nx.strongly_connected_components(g))
    comp_of = {n: i for i, c in enumerate(comps) for n in c}
    groups: dict[int, Stage] = {}
    for i, comp in enumerate(comps):
        members = sorted(comp, key=order_of.__getitem__)
        sub = g.subgraph(comp)
        edges = list(sub.edges(data=True))
        carried = [(u, v, d) for u, v, d in edges if d["kind"] == "carried"]
        if len(members) == 1 and not edges:
            groups[i] = members[0]
            continue
        self_loops = [(u, v, d) for u, v, d in edges if u == v and d["kind"] != "carried"]
        if self_loops:
            u, _, d = self_loops[0]
            problems.append(
                DependencyProblem(
                    u,
                    f"cyclic dependence: {u} reads itself",
                    hint="a recurrence writes T[x + 1] and reads the previous iterate T[x]",
                )
            )
            continue
        xs = {by_name[u].iterative_variable for u, _, d in carried}
        if len(xs) != 1:
            cycle = nx.find_cycle(sub)
            names = " -> ".join([c[0] for c in cycle] + [cycle[0][0]])
            problems.append(
                DependencyProblem(
                    min((c[0] for c in cycle), key=order_of.__getitem__),
                    f"cyclic dependence: {names}"
                    + (" (a recurrence mixes iterative ranks)" if len(xs) > 1 else ""),
                    hint="a recurrence writes T[x + 1] and reads the previous iterate T[x]",
                )
            )
            continue
        x = next(iter(xs))
        assert x is not None
        whole = [
            (u, v, d) for u, v, d in edges if d["kind"] == "ordered" and x not in d["pointwise"]
        ]
        if whole:
            u, v, d = whole[0]
            problems.append(
                DependencyProblem(
                    v,
                    f"cyclic dependence: {v} needs {d['tensor']} at every {x}, but "
                    f"{d['tensor']} depends on {v} through the recurrence over {x}",
                    hint=f"read {d['tensor']} at the current iterate, indexed by {x}",
                )
            )
            continue
        plain = nx.DiGraph([(u, v) for u, v, d in edges if d["kind"] != "carried"])
        plain.add_nodes_from(members)
        if not nx.is_directed_acyclic_graph(plain):
            cycle = nx.find_cycle(plain)
            names = " -> ".join([c[0] for c in cycle] + [cycle[0][0]])
            problems.append(
                DependencyProblem(
                    min((c[0] for c in cycle), key=order_of.__getitem__),
                    f"cyclic dependence: {names}",
                    hint="a recurrence must read the previous iterate: write T[x + 1] = ... T[x]",
                )
            )
            continue
        missing = [m for m in members if x not in by_name[m].lhs_variables]
        if missing:
            problems.append(
                DependencyProblem(
                    missing[0],
                    f"{missing[0]} takes part in the recurrence over {x} "
                    f"but does not iterate over {x}",
                    hint=f"index its left side with {x}",
                )
            )
            continue
        inner = tuple(nx.lexicographical_topological_sort(plain, key=lambda n: order_of[n]))
        groups[i] = Recurrence(x, var_ranks.get(x, x.upper()), inner)
    if problems:
        return (), problems
    cond = nx.condensation(g, scc=comps)
    first = {i: min(order_of[n] for n in comps[i]) for i in range(len(comps))}
    order = nx.lexicographical_topological_sort(cond, key=lambda i: first[i])
    assert all(comp_of[n] == i for i, c in enumerate(comps) for n in c)
    return tuple(groups[i] for i in order), []


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
    def symbolic_extents(self) -> dict[str, sympy.Expr]:
        """Each rank's extent as a sympy expression: its own symbol."""
        return {r.name: r.symbol for r in self.ranks}

    # ------------------------------------------------------------ structure
    @functools.cached_property
    def dependencies(self) -> nx.MultiDiGraph[str]:
        """Einsum → Einsum edges with ``kind`` (carried, ordered), ``pointwise`` and ``tensor``."""
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
