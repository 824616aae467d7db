"""The checker's own expression and graph types agree with sympy and networkx."""

from __future__ import annotations

from fractions import Fraction

import networkx as nx
from hypothesis import given
from hypothesis import strategies as st

from einsumcc.ir.affine import Affine
from einsumcc.ir.digraph import Digraph, find_cycle, strongly_connected_components, topological_sort
from einsumcc.ir.nodes import extent_symbol, var_symbol

m, n, M0, P = Affine.var("m"), Affine.var("n"), Affine.extent("M0"), Affine.extent("P")


def test_sympy_form_replays_the_operations():
    e = m * M0 + n - 1
    assert e.sympy == var_symbol("m") * extent_symbol("M0") + var_symbol("n") - 1
    assert (P / M0).simplified().sympy == extent_symbol("P") / extent_symbol("M0")


def test_equality_is_by_value():
    assert m + n == n + m
    assert (m + 1) * M0 == m * M0 + M0
    assert m * M0 / M0 == m
    assert hash((m + 1) * M0) == hash(m * M0 + M0)
    assert Affine.from_sympy(var_symbol("m") * 2 + 1) == m * 2 + 1
    assert m != Affine.extent("m")


def test_questions():
    assert (m * M0 + n).variables == {"m", "n"}
    assert (m * M0 + n).extents == {"M0"}
    assert (P / 4).evaluate({"P": 10}) == Fraction(5, 2)
    assert (P / (M0 + 1)).evaluate({"P": 10, "M0": 4}) == 2  # through sympy
    assert (m - m + 3).number == 3
    assert (m * n).affine_problem() == ("nonaffine", "", "")
    assert (m / 2).affine_problem() == ("coefficient", "1/2", "m")
    assert (m + Affine.const(1) / 2).affine_problem() == ("offset", "1/2", "")
    assert (m * M0 / P).affine_problem() is None
    assert (P / (m + 1)).affine_problem() == ("nonaffine", "", "")


edges = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=16)


@given(edges)
def test_graph_algorithms_agree_with_networkx(pairs):
    ours: Digraph[int] = Digraph(pairs)
    theirs: nx.MultiDiGraph[int] = nx.MultiDiGraph()
    theirs.add_edges_from(pairs)
    try:
        expected = [(u, v) for u, v, *_ in nx.find_cycle(theirs)]
    except nx.NetworkXNoCycle:
        expected = None
    found = find_cycle(ours)
    assert (None if found is None else [(u, v) for u, v, _ in found]) == expected
    assert sorted(map(sorted, strongly_connected_components(ours))) == sorted(
        map(sorted, nx.strongly_connected_components(theirs))
    )
    order = topological_sort(ours, key=lambda x: -x)
    if nx.is_directed_acyclic_graph(theirs):
        assert order == list(nx.lexicographical_topological_sort(theirs, key=lambda x: -x))
    else:
        assert order is None
