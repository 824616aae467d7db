"""The Einstein rule: make implicit sums explicit.

A rank variable that occurs on the right, is not on the left and is not bound by an explicit
reduction is summed.  The sum covers the smallest sub-expression that contains all its uses,
widened to the whole product chain (factors joined by ``*`` and ``/``; a negated factor is still
a factor) when that sub-expression lies inside one.  So ``Z[] = Y[] * A[k]`` is
``Z[] = sum{k} (Y[] * A[k])`` and ``X[p] = A[k, p] + B[p]`` is ``sum{k} A[k, p] + B[p]``.
"""

from __future__ import annotations

from collections.abc import Iterable

from einsumcc.ir.nodes import Access, Binary, Expr, Neg, Reduce, VarRef, children, with_children

Path = tuple[int, ...]


def _node_at(e: Expr, path: Path) -> Expr:
    for i in path:
        e = children(e)[i]
    return e


def _uses(e: Expr, variables: frozenset[str], path: Path, out: dict[str, list[Path]]) -> None:
    if isinstance(e, Access):
        for v in e.variables & variables:
            out.setdefault(v, []).append(path)
    elif isinstance(e, VarRef) and e.var in variables:
        out.setdefault(e.var, []).append(path)
    for i, c in enumerate(children(e)):
        _uses(c, variables, (*path, i), out)


def _common_prefix(paths: list[Path]) -> Path:
    first = paths[0]
    n = len(first)
    for p in paths[1:]:
        n = min(n, len(p))
        for i in range(n):
            if p[i] != first[i]:
                n = i
                break
    return first[:n]


def _in_product(node: Expr) -> bool:
    return isinstance(node, Neg) or (isinstance(node, Binary) and node.op in {"*", "/"})


def sum_scopes(body: Expr, implicit: Iterable[str]) -> dict[Path, tuple[str, ...]]:
    """Where each implicit variable's sum goes: path of the summed sub-expression → variables."""
    variables = frozenset(implicit)
    uses: dict[str, list[Path]] = {}
    _uses(body, variables, (), uses)
    scopes: dict[Path, list[str]] = {}
    for v in sorted(uses):
        scope = _common_prefix(uses[v])
        while scope and _in_product(_node_at(body, scope[:-1])):
            scope = scope[:-1]
        scopes.setdefault(scope, []).append(v)
    return {p: tuple(sorted(vs)) for p, vs in scopes.items()}


def make_sums_explicit(body: Expr, implicit: Iterable[str]) -> Expr:
    """``body`` with a ``sum{...}`` around the scope of every implicit variable."""
    scopes = sum_scopes(body, implicit)
    if not scopes:
        return body

    def rebuild(e: Expr, path: Path) -> Expr:
        kids = children(e)
        new = tuple(rebuild(c, (*path, i)) for i, c in enumerate(kids))
        if new != kids or any(a is not b for a, b in zip(new, kids, strict=True)):
            e = with_children(e, new)
        if path in scopes:
            e = Reduce("sum", scopes[path], e, span=getattr(e, "span", None))
        return e

    return rebuild(body, ())
