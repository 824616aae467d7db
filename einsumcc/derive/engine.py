"""``derive``: rewrite a cascade to fewer passes over a rank, with certificates.

1. :class:`~einsumcc.derive.symbolic.Symbolic` finds the *statistics* (reductions over a whole
   fiber of the rank) and what each needs;
2. :class:`~einsumcc.derive.plan.Planner` applies the catalog of rewrites
   (:mod:`einsumcc.derive.rewrites`): division deferral, running max with exp correction
   factors, sink folding, moments, and the fusion of the resulting recurrences into one pass;
3. :class:`~einsumcc.derive.emit.Emitter` writes the result as `.ein` text, which is parsed and
   checked again and analysed for its passes (``expect passes(R) == N``).

When no statistic needs another one (RMSNorm, softmax's last pass), no rewrite lowers the
bound and the cascade is returned unchanged; the witnesses say what forces each pass left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from einsumcc.derive.emit import Block, Emitter, Tiling, tiling
from einsumcc.derive.plan import Applied, Planner
from einsumcc.derive.symbolic import NotRewritableError, Symbolic
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.dump import render_cascade, render_tensor
from einsumcc.ir.nodes import Reduce, children, free_variables

if TYPE_CHECKING:
    from einsumcc.derive.verify import OracleCheck


@dataclass(frozen=True)
class Derivation:
    """The result of :func:`derive`: the derived cascade and its text, the rewrites applied
    (each with its sympy certificates), the pass bounds before and after, and why each
    remaining pass exists."""

    rank: str
    original: Cascade = field(repr=False)
    cascade: Cascade = field(repr=False)
    text: str = field(repr=False)
    rewrites: tuple[Applied, ...]
    passes_before: int
    passes_after: int
    witnesses: tuple[str, ...]
    tile: tuple[str, int] | None = None
    # a finished statistic (by statement) → the rewrites that stopped others waiting for it
    removes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def certificates(self) -> tuple[tuple[str, str], ...]:
        return tuple((a.rewrite, str(c)) for a in self.rewrites for c in a.certificates)

    @property
    def proved(self) -> bool:
        return all(c.holds for a in self.rewrites for c in a.certificates)

    def check(self, seed: int = 0, dims: dict[str, int] | None = None) -> OracleCheck:
        """Compare the derived cascade with the original on the oracle (random inputs, and
        inputs scaled so that the scores reach ±80)."""
        from einsumcc.derive.verify import compare

        return compare(self, seed=seed, dims=dims)

    def summary(self) -> str:
        lines = [
            f"{self.original.name}: {self.passes_before} -> {self.passes_after} "
            f"pass{'es' if self.passes_after != 1 else ''} over {self.rank}"
        ]
        lines += [f"  rewrite: {a}" for a in self.rewrites]
        lines += [f"  remaining: {w}" for w in self.witnesses]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<Derivation {self.original.name} {self.rank}: "
            f"{self.passes_before} -> {self.passes_after}>"
        )


def _scan(sym: Symbolic, plan: Planner) -> None:
    """Find every statistic of the Einsums that depend on one."""
    for e in sym.c.einsums:
        if not sym.depends(e.name):
            continue
        if getattr(e, "mask", ()):
            plan.why_not[e.name] = "a data-dependent filter restricts its reductions"
            continue
        stack = [e.body]
        while stack:
            x = stack.pop()
            if isinstance(x, Reduce) and _full(sym, x):
                try:
                    sym.convert(x, e.where, e.name)
                except NotRewritableError as exc:
                    plan.why_not[e.name] = str(exc)
                continue
            stack.extend(children(x))


def _full(sym: Symbolic, r: Reduce) -> bool:
    fam = sym.family
    return bool(free_variables(r.body) & fam) and not (free_variables(r) & fam)


def derive(
    cascade: Cascade,
    rank: str,
    tile: tuple[str, int] | None = None,
    moments: str = "welford",
) -> Derivation:
    """Rewrite ``cascade`` to fewer passes over ``rank`` (module docstring)."""
    from einsumcc.analysis.passes import analyze_passes

    before = analyze_passes(cascade, rank).rank(rank)
    sym = Symbolic(cascade, rank)
    plan = Planner(sym, moments)
    _scan(sym, plan)
    plan.run()
    needed = any(sym.blocked(s.body) for s in sym.stats.values())
    if before.passes <= 1 or not needed:
        return _unchanged(cascade, rank, before.passes, plan)
    text = _emit(sym, plan, tiling(cascade, rank, tile), before.passes)
    from einsumcc.pipeline import load

    after = analyze_passes(load(text), rank).rank(rank)
    if after.passes >= before.passes:
        return _unchanged(cascade, rank, before.passes, plan)
    text += f"\nexpect passes({rank}) == {after.passes}\n"
    derived = load(text)
    old_names = {t.name for t in cascade.tensors}
    rewrites = list(plan.applied)
    carried = [t.name for t in derived.tensors if t.is_iterative and t.name not in old_names]
    if len(carried) > 1:
        rewrites.append(
            Applied(
                "fusion",
                rank,
                f"{len(carried)} reductions over {rank} ({', '.join(carried)}) run as "
                "recurrences in one pass",
            )
        )
    return Derivation(
        rank,
        cascade,
        derived,
        text,
        tuple(rewrites),
        before.passes,
        after.passes,
        _explain_remaining(derived, rank, plan),
        tile,
        tuple((k, tuple(sorted(v))) for k, v in plan.removes.items()),
    )


def _unchanged(cascade: Cascade, rank: str, passes: int, plan: Planner) -> Derivation:
    from einsumcc.pipeline import load

    text = render_cascade(cascade)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("expect passes"))
    text = (
        f"# {cascade.name}: no rewrite lowers the passes over {rank}\n"
        f"{text}\nexpect passes({rank}) == {passes}\n"
    )
    derived = load(text)
    return Derivation(
        rank, cascade, derived, text, (), passes, passes, _explain_remaining(derived, rank, plan)
    )


def _explain_remaining(derived: Cascade, rank: str, plan: Planner) -> tuple[str, ...]:
    from einsumcc.derive.explain import remaining

    return tuple(remaining(derived, rank, plan.why_not))


def _emit(sym: Symbolic, plan: Planner, t: Tiling, before: int) -> str:
    em = Emitter(sym, plan, t)
    for rm in plan.maxes.values():
        em.running_max(rm)
    for mo in plan.moments.values():
        em.moments(mo)
    for a in plan.accs.values():
        em.accumulator(a)
    for s in plan.plain:
        em.plain(s)
    kept = Block(f"unchanged: the Einsums that need no finished statistic over {t.rank}")
    done = Block("the finished statistics: each reads the last iterate of its recurrence")
    for e in sym.c.einsums:
        mask = tuple(em.tile(m) for m in getattr(e, "mask", ()))
        if not sym.depends(e.name):
            em.add(kept, em.tiled_lhs(e.output), em.tile(e.body), em.conds(e.where), mask)
            continue
        body, where = em.rewrite(e)
        em.add(done, em.tiled_lhs(e.output), body, where, mask)
    em.blocks.insert(0, kept)
    em.blocks.append(done)
    return _assemble(em, t, before)


def _live(em: Emitter) -> set[str]:
    todo = [t.name for t in em.c.outputs]
    live: set[str] = set()
    while todo:
        name = todo.pop()
        if name in live:
            continue
        live.add(name)
        todo.extend(em.reads.get(name, ()))
    return live


def _assemble(em: Emitter, t: Tiling, before: int) -> str:
    from einsumcc.ir.dump import render_access, render_expr, render_index

    c = em.c
    live = _live(em)
    lines = [
        f"# {c.name}, derived by `einsumcc derive --rank {t.rank}`: {before} passes over "
        f"{t.rank} before",
        f"cascade {c.name}_derived",
    ]
    for r in c.ranks:
        lines.append(
            f"rank {r.name}" + (f" = {render_index(r.extent)}" if r.extent is not None else "")
        )
    lines.extend(t.new_ranks)
    lines.extend(f"split {s.parent} -> {', '.join(s.children)}" for s in c.splits)
    lines.extend(t.new_splits)
    lines.extend(f"param {p.name} = {render_expr(p.value)}" for p in c.params)
    for x in c.tensors:
        if x.role.value != "tensor" or x.name in live:
            lines.append(render_tensor(em.tiled_tensor(x)))
    lines.extend(d for name, d in em.decls.items() if name in live)
    lines.extend(
        f"init {render_access(i.target)} = {render_expr(i.value)}"
        for i in c.inits
        if i.target.tensor in live
    )
    lines.extend(i for i in em.inits if i.split()[1].split("[")[0] in live)
    for b in em.blocks:
        body = [line for line in b.lines if line.split("[")[0].strip() in live]
        if body:
            lines.extend(["", f"# {b.comment}", *body])
    return "\n".join(lines) + "\n"
