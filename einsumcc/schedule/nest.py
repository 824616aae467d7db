"""Reductions over several large ranks as nested reductions, one large rank each.

``sum{m, n} X[m, n]`` is ``sum{m} (sum{n} X[m, n])``, which two kernels can stream.  (sum, max,
min and prod are associative and commutative; every filter condition stays on the innermost
reduction, which sees all the variables.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from einsumcc.ir.nodes import Access, var_symbol
from einsumcc.schedule.nodes import Node, NodeKind, NodeProgram


def nest_reductions(prog: NodeProgram, large: Callable[[str], bool]) -> NodeProgram:
    """``prog`` with every reduction over two or more ``large`` variables nested."""
    c = prog.cascade
    nodes: list[Node] = []
    parts = dict(prog.parts)
    order = {r.var: i for i, r in enumerate(c.ranks)}
    for n in prog.nodes:
        big = sorted((v for v in n.reduced if large(v)), key=order.__getitem__)
        if n.kind is NodeKind.MAP or len(big) < 2:
            nodes.append(n)
            continue
        for node in _levels(n, big):
            if node.key != n.key:  # a new part
                parts[node.key] = tuple(c.var_ranks[v] for v in node.variables)
            nodes.append(node)
    return NodeProgram(c, tuple(nodes), prog.views, parts)


def _levels(n: Node, big: list[str]) -> list[Node]:
    """The nested nodes of ``n``, innermost (a new part per level) first, ``n`` itself last."""
    small = [v for v in n.reduced if v not in big]
    levels = [[*small, big[-1]], *([v] for v in reversed(big[:-1]))]
    outer_free = [list(n.variables)]
    for lv in reversed(levels[1:]):
        outer_free.append(outer_free[-1] + lv)
    # outer_free[i]: the free variables of level len(levels) - 1 - i
    out: list[Node] = []
    body = n.body
    for depth, lv in enumerate(levels[:-1]):
        outs = tuple(outer_free[len(levels) - 1 - depth])
        key = f"{n.key}.n{depth + 1}"
        access = Access(key, tuple(var_symbol(v) for v in outs), n.span)
        out.append(
            dataclasses.replace(
                n,
                key=key,
                output=access,
                variables=outs,
                body=body,
                reduced=tuple(lv),
                mask=n.mask if depth == 0 else (),
                guard=(),
                survive=None,
                top=False,
                op=(n.op if n.kind is not NodeKind.SURVIVE or depth == 0 else "max"),
                kind=n.kind if depth == 0 else NodeKind.REDUCE,
            )
        )
        body = access
    op = "max" if n.kind is NodeKind.SURVIVE else n.op
    out.append(
        dataclasses.replace(
            n, kind=NodeKind.REDUCE, body=body, op=op, reduced=tuple(levels[-1]), mask=()
        )
    )
    return out
