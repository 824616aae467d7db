"""Why each extra pass exists, and which rewrite would remove it (``analyze passes --explain``).

A pass exists because a consumer needs a finished statistic while reading the fiber again
(a :class:`~einsumcc.analysis.passes.Witness`).  It can be removed when the consumer only
feeds other statistics and a rewrite makes them independent of the finished value (division
deferral, running max, moments).  It cannot when the consumer's own result varies along the
rank and is needed element by element (an output such as softmax's ``Y[m, p]`` or
LayerNorm's ``Y[d, n]``): each element needs the finished statistic, so that pass is the
minimum.
"""

from __future__ import annotations

from collections.abc import Mapping

from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import Reduce, children


def _element_wise(cascade: Cascade, name: str, fam: frozenset[str]) -> bool:
    """Whether ``name``'s values along the rank are needed one by one: it is an output, or
    an Einsum reads it outside every reduction over the rank."""
    t = cascade.tensor(name)
    if t.role.value == "output":
        return True
    for e in cascade.einsums:
        outside = _reads_outside(e.body, name, fam) and set(e.lhs_variables) & fam
        if outside and (e.name == name or _element_wise(cascade, e.name, fam)):
            return True
    return False


def _reads_outside(x: object, name: str, fam: frozenset[str]) -> bool:
    from einsumcc.ir.nodes import Access

    if isinstance(x, Reduce) and set(x.variables) & fam:
        return False
    if isinstance(x, Access):
        return x.tensor == name
    return any(_reads_outside(k, name, fam) for k in children(x))  # type: ignore[arg-type]


def remaining(cascade: Cascade, rank: str, why_not: Mapping[str, str] | None = None) -> list[str]:
    """Why each extra pass of ``cascade`` (a derived one) is still there."""
    from einsumcc.analysis.passes import analyze_passes
    from einsumcc.derive.symbolic import family

    report = analyze_passes(cascade, rank).rank(rank)
    fam = family(cascade, rank)
    out: list[str] = []
    for w in report.witnesses:
        e = cascade.einsum(w.consumer.einsum)
        if set(e.lhs_variables) & fam and _element_wise(cascade, e.name, fam):
            out.append(
                f"pass {w.number}: no rewrite applies: {e.name} is needed at every element of "
                f"{rank} and each element needs the finished {w.result}; this pass is the "
                "minimum"
            )
            continue
        reasons = why_not or {}
        why = next((reasons[k] for k in (e.name, w.reducer.einsum, w.result) if k in reasons), None)
        why = why or "no rewrite in the catalog fits how it uses the finished value"
        out.append(f"pass {w.number}: no rewrite applies: {why} ({w})")
    return out


def explain(cascade: Cascade, rank: str) -> list[str]:
    """One line per extra pass of ``cascade``: the rewrite that removes it (``einsumcc
    derive`` applies it), or why none applies."""
    from einsumcc.analysis.passes import analyze_passes
    from einsumcc.derive import derive

    report = analyze_passes(cascade, rank).rank(rank)
    if report.passes <= 1:
        return []
    d = derive(cascade, rank)
    removes = dict(d.removes)
    applied = sorted({a.rewrite for a in d.rewrites if a.rewrite != "fusion"})
    left = {int(line.split(":")[0].split()[1]): line for line in d.witnesses}
    out: list[str] = []
    for w in report.witnesses:
        if w.number <= d.passes_after:
            out.append(left.get(w.number, f"pass {w.number}: no rewrite applies ({w})"))
            continue
        fixes = sorted({r for k in (w.reducer.einsum, w.result) for r in removes.get(k, ())})
        out.append(f"pass {w.number}: removed by {' and '.join(fixes or applied)} ({w})")
    return out
