"""Text and JSON forms of the analyses (``einsumcc analyze passes|cost``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy

from einsumcc.analysis.cost import CostReport
from einsumcc.analysis.exprs import json_expr, value_at
from einsumcc.analysis.passes import Footprint, PassAnalysis, PassReport
from einsumcc.ir.dump import render_index


def _expr(e: sympy.Expr, extents: Mapping[str, int] | None) -> str:
    text = render_index(sympy.sympify(e))
    value = value_at(e, extents)
    return f"{text} = {_number(value)}" if value is not None else text


def _number(value: sympy.Expr) -> str:
    v = int(value) if value.is_integer else float(value)
    return f"{v:,}" if isinstance(v, int) else f"{v:.6g}"


def _footprint_text(f: Footprint, extents: Mapping[str, int] | None) -> list[str]:
    if f.kind == "none":
        return []
    outer = f" per point of {', '.join(f.outer)}" if f.outer else ""
    if f.kind == "live_fiber":
        return [
            f"live footprint: {_expr(f.per_point, extents)} values of {f.tensors[0]}{outer} "
            f"must stay on chip between passes ({_expr(f.total_bytes, extents)} bytes in all),",
            f"  or be spilled: +{_expr(f.spill_bytes_per_pass, extents)} bytes of DRAM traffic "
            "per extra pass",
        ]
    return [
        f"carried state: {_expr(f.per_point, extents)} values{outer} "
        f"({', '.join(f.tensors)}), independent of the rank's extent "
        f"({_expr(f.total_bytes, extents)} bytes in all)"
    ]


def render_rank(r: PassReport, extents: Mapping[str, int] | None) -> list[str]:
    lines = [f"{r.rank}: {r.passes} pass{'es' if r.passes != 1 else ''}"]
    if r.passes > 1 or any(f.kind != "none" for f in [r.footprint]):
        for k, names in sorted(r.by_pass.items()):
            label = f"pass {k}" if k else "no pass"
            lines.append(f"  {label}: {', '.join(names)}")
    for w in r.witnesses:
        lines.append(f"  why {w}")
    lines.extend("  " + x for x in _footprint_text(r.footprint, extents))
    return lines


def render_passes(report: PassAnalysis, extents: Mapping[str, int] | None = None) -> str:
    lines = [f"{report.cascade}: passes per rank (a lower bound for every mapping)"]
    for r in report.ranks:
        lines.extend("  " + x for x in render_rank(r, extents))
    return "\n".join(lines) + "\n"


def render_taxonomy(rows: Sequence[tuple[str, PassAnalysis]]) -> str:
    """A file × rank table of pass counts."""
    ranks: list[str] = []
    for _, rep in rows:
        ranks.extend(r.rank for r in rep.ranks if r.rank not in ranks)
    width = max(len(name) for name, _ in rows)
    head = f"{'file':<{width}}  " + "  ".join(f"{r:>3}" for r in ranks)
    lines = [head, "-" * len(head)]
    for name, rep in rows:
        cells = []
        for r in ranks:
            cells.append(
                f"{rep.passes[r]:>{max(3, len(r))}}"
                if r in rep.passes
                else f"{'.':>{max(3, len(r))}}"
            )
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines) + "\n"


def passes_json(
    report: PassAnalysis | PassReport, extents: Mapping[str, int] | None = None
) -> dict[str, object]:
    """The ``--json`` form of a pass analysis: ``to_dict`` of the report."""
    return report.to_dict(extents)


def render_cost(report: CostReport, extents: Mapping[str, int] | None = None) -> str:
    lines = [f"{report.cascade}: operation counts (unfiltered iteration spaces)"]
    for e in report.einsums:
        ops = (
            ", ".join(f"{op} {_expr(n, extents)}" for op, n in e.ops.items())
            or "data movement only"
        )
        mark = "  (filtered: at most)" if e.filtered else ""
        lines.append(f"  {e.name}: {ops}{mark}")
    lines.append(
        "  total: " + ", ".join(f"{op} {_expr(n, extents)}" for op, n in report.totals.items())
    )
    lines.append("compulsory traffic (each input read once, each output written once):")
    for label, table in (("read", report.input_bytes), ("write", report.output_bytes)):
        for name, n in table.items():
            lines.append(f"  {label} {name}: {_expr(n, extents)} bytes")
    lines.append(f"  total: {_expr(report.compulsory_bytes, extents)} bytes")
    return "\n".join(lines) + "\n"


def cost_json(report: CostReport, extents: Mapping[str, int] | None = None) -> dict[str, object]:
    return {
        "cascade": report.cascade,
        "einsums": {
            e.name: {
                "ops": {op: json_expr(n, extents) for op, n in e.ops.items()},
                "filtered": e.filtered,
            }
            for e in report.einsums
        },
        "totals": {op: json_expr(n, extents) for op, n in report.totals.items()},
        "input_bytes": {k: json_expr(v, extents) for k, v in report.input_bytes.items()},
        "output_bytes": {k: json_expr(v, extents) for k, v in report.output_bytes.items()},
        "compulsory_bytes": json_expr(report.compulsory_bytes, extents),
    }
