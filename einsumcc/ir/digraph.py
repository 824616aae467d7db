"""A small directed (multi)graph for the checker, so that checking needs no networkx.

Nodes and edges keep their insertion order, and the algorithms visit them in that order:
:func:`find_cycle` returns the cycle that ``networkx.find_cycle`` returns on a graph built in
the same order, so that diagnostics name the same cycle.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Generic, TypeVar

N = TypeVar("N", bound=Hashable)


class Digraph(Generic[N]):
    """Nodes in insertion order; ``succ[u]`` maps each successor to the number of edges."""

    def __init__(self, edges: Iterable[tuple[N, N]] = ()) -> None:
        self.succ: dict[N, dict[N, int]] = {}
        for u, v in edges:
            self.add_edge(u, v)

    def add_node(self, n: N) -> None:
        self.succ.setdefault(n, {})

    def add_edge(self, u: N, v: N) -> None:
        self.add_node(u)
        self.add_node(v)
        self.succ[u][v] = self.succ[u].get(v, 0) + 1

    @property
    def nodes(self) -> list[N]:
        return list(self.succ)

    def edges_from(self, u: N) -> Iterator[tuple[N, N, int]]:
        for v, count in self.succ[u].items():
            for k in range(count):
                yield u, v, k

    def subgraph(self, keep: Iterable[N]) -> Digraph[N]:
        wanted = set(keep)
        out: Digraph[N] = Digraph()
        for u in self.succ:
            if u in wanted:
                out.add_node(u)
        for u in out.succ:
            for v, count in self.succ[u].items():
                if v in wanted:
                    out.succ[u][v] = count
        return out


def _edge_dfs(g: Digraph[N], start: N) -> Iterator[tuple[N, N, int]]:
    """Every edge reachable from ``start``, depth first (``networkx.edge_dfs``)."""
    visited_edges: set[tuple[N, N, int]] = set()
    visited_nodes: set[N] = set()
    pending: dict[N, Iterator[tuple[N, N, int]]] = {}
    stack = [start]
    while stack:
        current = stack[-1]
        if current not in visited_nodes:
            pending[current] = g.edges_from(current)
            visited_nodes.add(current)
        edge = next(pending[current], None)
        if edge is None:
            stack.pop()
        elif edge not in visited_edges:
            visited_edges.add(edge)
            stack.append(edge[1])
            yield edge


def _cycle_from(g: Digraph[N], start: N, explored: set[N]) -> list[tuple[N, N, int]] | None:
    edges: list[tuple[N, N, int]] = []
    seen = {start}
    active = {start}
    previous_head: N | None = None
    for edge in _edge_dfs(g, start):
        tail, head = edge[0], edge[1]
        if head in explored:
            continue
        if previous_head is not None and tail != previous_head:
            while True:  # backtrack to the edge whose head is this tail
                if not edges:
                    active = {tail}
                    break
                active.remove(edges.pop()[1])
                if edges and edges[-1][1] == tail:
                    break
        edges.append(edge)
        if head in active:
            for i, e in enumerate(edges):
                if e[0] == head:
                    return edges[i:]
            return edges
        seen.add(head)
        active.add(head)
        previous_head = head
    explored.update(seen)
    return None


def find_cycle(g: Digraph[N]) -> list[tuple[N, N, int]] | None:
    """The first cycle met by a depth-first search from the nodes in order, or None."""
    explored: set[N] = set()
    for start in g.succ:
        if start in explored:
            continue
        cycle = _cycle_from(g, start, explored)
        if cycle is not None:
            return cycle
    return None


def strongly_connected_components(g: Digraph[N]) -> list[set[N]]:
    """Tarjan's algorithm (iterative); components in reverse topological order."""
    index: dict[N, int] = {}
    low: dict[N, int] = {}
    on_stack: set[N] = set()
    stack: list[N] = []
    out: list[set[N]] = []
    for root in g.succ:
        if root in index:
            continue
        work: list[tuple[N, Iterator[N]]] = [(root, iter(g.succ[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            child = next(it, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp: set[N] = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == node:
                            break
                    out.append(comp)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(g.succ[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def topological_sort(g: Digraph[N], key: Callable[[N], int]) -> list[N] | None:
    """Nodes in dependency order, the smallest ``key`` first among the ready; None: a cycle."""
    indegree = dict.fromkeys(g.succ, 0)
    for u in g.succ:
        for v, count in g.succ[u].items():
            indegree[v] += count
    ready = [(key(n), i, n) for i, n in enumerate(g.succ) if indegree[n] == 0]
    heapq.heapify(ready)
    order_of = {n: i for i, n in enumerate(g.succ)}
    out: list[N] = []
    while ready:
        _, _, n = heapq.heappop(ready)
        out.append(n)
        for v, count in g.succ[n].items():
            indegree[v] -= count
            if indegree[v] == 0:
                heapq.heappush(ready, (key(v), order_of[v], v))
    return out if len(out) == len(g.succ) else None
