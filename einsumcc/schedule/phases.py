"""Loops per pass: the pass number of every node of a group over its streamed rank.

This is the FuseMax procedure of :mod:`einsumcc.analysis.passes`, node by node: a node that
streams over the loop variable runs in the pass of the latest streamed value it reads per
tile, and one pass after a value that is only final after a loop (an accumulator, the last
iterate of a recurrence).  Nodes without the loop variable run once, after the loop that
completes their last operand (0: before the loops).  A ``materialize``\\ d tensor that a
later pass reads cuts the kernel after the pass that computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from einsumcc.schedule.context import ScheduleContext
from einsumcc.schedule.fusion import FusedGroup, units
from einsumcc.schedule.nodes import Node, NodeProgram, ReadKind


@dataclass(frozen=True)
class Phases:
    phase: dict[str, int]  # nodes in a loop: the pass number
    after: dict[str, int]  # nodes outside the loops: after loop j (0: before the loops)
    passes: int


def read_sites(prog: NodeProgram, n: Node, keys: set[str]) -> list[tuple[Node, ReadKind]]:
    """The producers among ``keys`` that ``n`` reads, with how it reads them."""
    out: list[tuple[Node, ReadKind]] = []
    for acc in n.reads:
        p = prog.producer(acc.tensor)
        if p is not None and p.key in keys:
            out.append((p, prog.read_kind(acc, n)))
    if n.survive is not None and n.survive in keys:
        out.append((prog.node(n.survive), ReadKind.DIRECT))
    return out


def in_loop(n: Node, loop: str | None) -> bool:
    return loop is not None and loop in n.space


def accumulates(n: Node, loop: str | None) -> bool:
    return loop is not None and loop in n.reduced


def per_tile(p: Node, loop: str | None) -> bool:
    """``p`` has one value per tile of the loop (streamed, not accumulated over it)."""
    return in_loop(p, loop) and not accumulates(p, loop)


def assign_phases(ctx: ScheduleContext, g: FusedGroup) -> Phases:
    keys = g.keys
    loop = g.loop
    phase: dict[str, int] = {}
    after: dict[str, int] = {}
    done_at: dict[str, tuple[int, int]] = {}  # key -> (pass, 1 in loop | 2 after loop)
    for unit in units(g.nodes):
        if all(in_loop(n, loop) for n in unit):
            k = _unit_pass(ctx.prog, unit, keys, loop, phase, done_at)
            for n in unit:
                phase[n.key] = k
                done_at[n.key] = (k, 2 if accumulates(n, loop) else 1)
                if n.recurrence == loop:
                    done_at[n.key] = (k, 2)  # its final iterate
            continue
        for n in unit:
            if in_loop(n, loop):
                raise ctx.error(n, f"{n.statement}: a recurrence mixes loop ranks")
            j = 0
            for p, kind in read_sites(ctx.prog, n, keys):
                if kind is ReadKind.INIT:
                    continue
                jj, _ = done_at[p.key]
                j = max(j, jj)
            after[n.key] = j
            done_at[n.key] = (j, 2)
    return Phases(phase, after, max(phase.values(), default=0))


def _unit_pass(
    prog: NodeProgram,
    unit: list[Node],
    keys: set[str],
    loop: str | None,
    phase: dict[str, int],
    done_at: dict[str, tuple[int, int]],
) -> int:
    """The pass of a unit of loop nodes: the latest pass its operands allow."""
    members = {n.key for n in unit}
    k = 1
    for n in unit:
        for p, kind in read_sites(prog, n, keys):
            if p.key in members or kind is ReadKind.INIT:
                continue
            if per_tile(p, loop) and kind is not ReadKind.FINAL:
                k = max(k, phase[p.key])
            else:
                j, w = done_at[p.key]
                k = max(k, j + 1 if w == 2 else j)
    return k


def split_points(ctx: ScheduleContext, g: FusedGroup) -> tuple[set[int], list[str]]:
    """Passes after which the kernel ends because a materialized tensor crosses them, and a
    note for each materialized tensor that changes nothing."""
    keys = g.keys
    out: set[int] = set()
    notes: list[str] = []
    for name in ctx.materialize:
        p = ctx.prog.producer(name)
        if p is None or p.key not in keys or p.key not in g.phase:
            continue
        j = g.phase[p.key]
        later = [
            n
            for n in g.nodes
            if any(q.key == p.key for q, _ in read_sites(ctx.prog, n, keys))
            and g.phase.get(n.key, g.after.get(n.key, 0)) > j
        ]
        if later:
            out.add(j)
        else:
            notes.append(f"--materialize {name}: no later pass reads it, so nothing changes")
    return out, notes
