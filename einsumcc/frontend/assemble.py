"""The dependency structure, ``expect`` lines, the Cascade itself and the warnings on it."""

from __future__ import annotations

from pathlib import Path

from einsumcc.frontend import syntax as s
from einsumcc.frontend.constants import Constants
from einsumcc.frontend.context import Context, suggest
from einsumcc.frontend.parser import KEYWORDS, RESERVED
from einsumcc.ir import nodes as ir
from einsumcc.ir.cascade import (
    Cascade,
    Recurrence,
    Stage,
    dependency,
    dependency_edges,
    plan_stages,
)

EXPECTATIONS = {"passes": 1}


def stem(path: str) -> str:
    """The cascade name a file without a ``cascade`` header gets."""
    name = Path(path).stem.replace("-", "_").replace(".", "_")
    if not name.isidentifier():
        return "unnamed"
    return f"{name}_" if name in KEYWORDS or name in RESERVED else name


def provisional_tensors(ctx: Context) -> dict[str, ir.Tensor]:
    out: dict[str, ir.Tensor] = {}
    for name, info in ctx.tensors.items():
        if info.dims is None:
            continue
        role = info.role or ir.Role.INTERMEDIATE
        out[name] = ir.Tensor(name, role, info.dims, info.dtype, info.fill, info.span)
    return out


def check_dependencies(ctx: Context) -> tuple[Stage, ...]:
    if ctx.sink.errors:
        return ()
    einsums = [ctx.einsums[n] for n in ctx.assignments if n in ctx.einsums]
    tensors = provisional_tensors(ctx)
    if not check_filter_reads(ctx, einsums, tensors):
        return ()
    stages, problems = plan_stages(einsums, tensors, ctx.var_rank)
    for p in problems:
        st = ctx.assignments[p.einsum]
        ctx.error(st.target.span, p.message, hint=p.hint)
    return stages


def check_filter_reads(
    ctx: Context, einsums: list[ir.Einsum], tensors: dict[str, ir.Tensor]
) -> bool:
    """(v2) A filter reads inputs and tensors computed before its Einsum: not its own result
    (except the previous iterate of a recurrence), nor anything computed from it."""
    edges = [d for d in dependency_edges(einsums, tensors) if d.kind != "carried"]
    after: dict[str, set[str]] = {}
    for d in edges:
        after.setdefault(d.writer, set()).add(d.reader)
    ok = True
    for e in einsums:
        if not e.mask:
            continue
        later = _reachable(after, e.name)
        for acc in e.mask_reads:
            w = ctx.einsums.get(acc.tensor)
            t = tensors.get(acc.tensor)
            if w is None or t is None:
                continue
            dep = dependency(e, acc, w, t)
            if dep is None or dep.kind == "carried":
                continue
            if acc.tensor == e.name or acc.tensor in later:
                how = "" if acc.tensor == e.name else f" (it is computed from {e.name})"
                ctx.error(
                    acc.span,
                    f"the filter of {e.name} reads {acc.tensor}, which is not yet computed{how}",
                    hint="a filter may read inputs and tensors computed by earlier Einsums",
                )
                ok = False
    return ok


def _reachable(after: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        for n in after.get(stack.pop(), ()):
            if n not in seen:
                seen.add(n)
                stack.append(n)
    return seen


def check_expects(ctx: Context) -> tuple[ir.Expect, ...]:
    out: list[ir.Expect] = []
    for st in ctx.program.statements:
        if isinstance(st, s.ExpectStmt):
            x = _expect(ctx, st)
            if x is not None:
                out.append(x)
    return tuple(out)


def _expect(ctx: Context, st: s.ExpectStmt) -> ir.Expect | None:
    fn = st.fn.name
    if fn not in EXPECTATIONS:
        ctx.error(
            st.fn.span,
            f"unknown expectation '{fn}'",
            hint=suggest(fn, EXPECTATIONS) or "known: " + ", ".join(EXPECTATIONS),
        )
        return None
    if len(st.args) != EXPECTATIONS[fn]:
        ctx.error(st.span, f"{fn}(...) takes {EXPECTATIONS[fn]} rank")
        return None
    args: list[str] = []
    ok = True
    for a in st.args:
        if isinstance(a, s.Name) and a.name in ctx.ranks:
            args.append(a.name)
        elif isinstance(a, s.Name):
            hint = suggest(a.name, ctx.ranks)
            if a.name in ctx.var_rank:
                hint = f"name the rank, not its variable: {ctx.var_rank[a.name]}"
            ctx.error(a.span, f"expect names unknown rank '{a.name}'", hint=hint)
            ok = False
        else:
            ctx.error(a.span, f"{fn}(...) takes a rank name")
            ok = False
    if not isinstance(st.value, s.Number) or not st.value.text.isdigit():
        ctx.error(st.value.span, "an expectation compares with an integer")
        return None
    return ir.Expect(fn, tuple(args), st.op, int(st.value.text), st.span) if ok else None


def build(ctx: Context, stages: tuple[Stage, ...], expects: tuple[ir.Expect, ...]) -> Cascade:
    order: list[str] = []
    for stage in stages:
        if isinstance(stage, Recurrence):
            order.extend(stage.einsums)
        else:
            order.append(stage)
    tensors = provisional_tensors(ctx)
    inputs = [t for t in tensors.values() if t.role is ir.Role.INPUT]
    outputs = [t for t in tensors.values() if t.role is ir.Role.OUTPUT]
    inter = [tensors[n] for n in order if tensors[n].role is ir.Role.INTERMEDIATE]
    all_tensors = (*inputs, *outputs, *inter)
    tensor_rank = {t.name: i for i, t in enumerate(all_tensors)}
    ranks = tuple(
        ir.Rank(name, ctx.rank_extents.get(name), st.span) for name, st in ctx.ranks.items()
    )
    splits = tuple(
        ir.Split(p, tuple(c.name for c in st.children), st.span) for p, st in ctx.splits.items()
    )
    params = tuple(ir.Param(n, ctx.param_values[n], st.span) for n, st in ctx.params.items())
    inits = tuple(sorted(ctx.ir_inits.values(), key=lambda i: tensor_rank[i.target.tensor]))
    return Cascade(
        ctx.name or stem(ctx.file),
        ranks,
        splits,
        params,
        all_tensors,
        inits,
        tuple(ctx.einsums[n] for n in order),
        expects,
        ctx.source,
    )


# ---------------------------------------------------------------- warnings


def warn_split_mixing(ctx: Context, cascade: Cascade) -> None:
    """``m`` beside its tiles ``m1, m0`` in one Einsum is almost always a mistake."""
    for e in cascade.einsums:
        used = set(e.variables)
        for split in cascade.splits:
            parent = cascade.rank(split.parent).var
            kids = [cascade.rank(c).var for c in split.children]
            if parent in used and used & set(kids):
                site = next((a.span for a in e.reads if parent in a.variables), e.output.span)
                ctx.warning(
                    site,
                    f"'{parent}' and its tiles {', '.join(kids)} both index {e.name}: "
                    f"{parent} ranges over all of {split.parent} independently of them",
                    hint=f"to read the tile, index with {split.index_affine.render()}",
                )


def warn_fills(ctx: Context, constants: Constants, cascade: Cascade) -> None:
    """A filter's fill that flows into exp or max changes the result."""
    for e in cascade.einsums:
        if not e.filtered:
            continue
        t = cascade.tensor(e.name)
        fill = constants.fold(t.fill)
        if fill is None or fill <= -1e4:
            continue
        for consumer in cascade.consumers(e.name):
            how = _sensitive_use(consumer.body, e.name)
            if how:
                ctx.warning(
                    (e.where[0] if e.where else e.mask[0]).span,
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
