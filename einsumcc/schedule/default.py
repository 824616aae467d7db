"""The default schedule of a cascade, derived from its structure and its pass analysis.

1. **Nodes.** Views are inlined and reductions become nodes of their own
   (:func:`einsumcc.schedule.nodes.prepare`).
2. **Kernels.** Nodes are grouped greedily, in dependency order, into groups that can share
   one launch grid.  In a group:

   * a *large* rank (extent unknown at compile time, above :data:`WHOLE_LIMIT`, or the outer
     part of a split) that is reduced, or an iterative rank, is the *streamed* rank: the
     kernel loops over it.  At most one per group;
   * a variable that no node of the group reduces, that every node doing real work iterates
     over, and that every read inside the group sees at the same point, is a *grid* variable:
     programs run in parallel over its tiles (large ranks) or indices (small ranks, e.g.
     batch and heads);
   * every other variable is small and held *whole* in registers.

   A node that would leave a large rank neither streamed nor on the grid starts a new group,
   and so does a read of another point of a tensor computed in the group (``T[m + 1]``): such
   tensors go through global memory between kernels.
3. **Loops.** In a group, each node gets a pass number over the streamed rank (the FuseMax
   procedure of :mod:`einsumcc.analysis.passes`, node by node): one loop per pass.  A loop
   recomputes the nodes of earlier passes it reads per tile, unless the schedule option
   ``materialize`` names them: then the kernel ends after the pass that computes them, they
   are written to global memory and the next kernel reads them back.
4. **Tiles.** Grid ranks take tiles of :data:`GRID_TILE`, streamed ranks :data:`STREAM_TILE`
   (smaller when a broadcast-multiply-reduce would exceed :data:`REGISTER_BUDGET` values),
   whole ranks the next power of two of their extent; the inner part of a split is its tile.
   ``tiles`` overrides them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sympy

from einsumcc.analysis.passes import analyze_passes
from einsumcc.diagnostics import EinError, Span
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import Access, Role, free_variables, var_symbol
from einsumcc.schedule.contraction import contraction, product
from einsumcc.schedule.nodes import Node, NodeKind, Program, ReadKind, prepare
from einsumcc.schedule.schedule import (
    Axis,
    AxisRole,
    Kernel,
    Loop,
    Placement,
    Schedule,
)

WHOLE_LIMIT = 256  # the largest extent held whole in registers by default
GRID_TILE = 128  # the first tiled grid rank (the rows of a tile contraction, e.g. queries)
GRID_TILE_OTHER = 64  # further tiled grid ranks (the columns of a matmul)
STREAM_TILE = 64
MIN_TILE = 16
REGISTER_BUDGET = 1 << 13  # values in the largest register tile, at default tiles
WIDE_TILE = 1 << 13  # kernels whose largest tile has this many values run 8 warps, else 4
TRITON_MAX_NUMEL = 1 << 20  # Triton's limit on the elements of one block


def _units(nodes: Sequence[Node]) -> list[list[Node]]:
    """Consecutive nodes of one recurrence stage form one unit that is never split."""
    out: list[list[Node]] = []
    for n in nodes:
        if (
            out
            and n.recurrence is not None
            and out[-1][-1].recurrence == n.recurrence
            and out[-1][-1].stage == n.stage
        ):
            out[-1].append(n)
        else:
            out.append([n])
    return out


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _suggest(name: str, options: Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, list(options), n=1)
    return f"did you mean {close[0]}?" if close else None


def compile_extents(c: Cascade, dims: Mapping[str, int] | None) -> dict[str, int | None]:
    """Every rank's extent when known at compile time (``dims`` override), else None."""
    dims = dict(dims or {})
    names = [r.name for r in c.ranks]
    for name, value in dims.items():
        if name not in names:
            raise EinError.plain(
                f"--dims names unknown rank '{name}'",
                hint=_suggest(name, names) or "ranks of " + c.name + ": " + ", ".join(names),
            )
        if int(value) <= 0:
            raise EinError.plain(f"--dims {name}={value}: extents are positive integers")
    known: dict[str, int | None] = {n: int(dims[n]) for n in dims}
    for _ in range(len(names) + len(c.splits) + 2):
        changed = False
        for r in c.ranks:
            if r.name in known or r.extent is None:
                continue
            syms = {str(s) for s in r.extent.free_symbols}
            if all(known.get(s) is not None for s in syms):
                value = sympy.nsimplify(r.extent.subs({c.rank(s).symbol: known[s] for s in syms}))
                if not value.is_integer or value <= 0:
                    raise EinError.at(
                        r.span,
                        f"extent of {r.name} = {r.extent} is {value}: not a positive integer",
                        c.source,
                        hint="choose extents that divide exactly",
                    )
                known[r.name] = int(value)
                changed = True
        for s in c.splits:
            parts = [known.get(ch) for ch in s.children]
            whole = known.get(s.parent)
            if whole is None and all(p is not None for p in parts):
                prod = 1
                for p in parts:
                    assert p is not None
                    prod *= p
                known[s.parent] = prod
                changed = True
            elif whole is not None and sum(p is None for p in parts) == 1:
                prod = 1
                for p in parts:
                    prod *= p or 1
                missing = s.children[parts.index(None)]
                if whole % prod:
                    raise EinError.at(
                        s.span,
                        f"split {s.parent} -> {', '.join(s.children)}: {s.parent} = {whole} "
                        f"is not a multiple of {prod}",
                        c.source,
                        hint=f"choose {s.parent} as a multiple of the inner extents",
                    )
                known[missing] = whole // prod
                changed = True
        if not changed:
            break
    for s in c.splits:
        values = [known.get(ch) for ch in s.children]
        whole = known.get(s.parent)
        if whole is not None and all(v is not None for v in values):
            prod = 1
            for v in values:
                assert v is not None
                prod *= v
            if prod != whole:
                raise EinError.at(
                    s.span,
                    f"split {s.parent} -> {', '.join(s.children)} does not hold: "
                    f"{s.parent} = {whole} but the parts multiply to {prod}",
                    c.source,
                    hint=f"choose {s.parent} as a multiple of the inner extents",
                )
    return {n: known.get(n) for n in names}


@dataclass
class _Group:
    nodes: list[Node]
    grid: list[str] = field(default_factory=list)
    loop: str | None = None
    roles: dict[str, tuple[AxisRole, int]] = field(default_factory=dict)
    phase: dict[str, int] = field(default_factory=dict)  # loop nodes: pass number
    after: dict[str, int] = field(default_factory=dict)  # program nodes: after loop j
    passes: int = 0
    tiled: set[str] = field(default_factory=set)  # grid variables tiled (not one per index)


class _Deriver:
    def __init__(
        self,
        c: Cascade,
        dims: Mapping[str, int] | None,
        tiles: Mapping[str, int] | None,
        materialize: Sequence[str],
    ) -> None:
        self.c = c
        self.known = compile_extents(c, dims)
        self.tiles = dict(tiles or {})
        self.materialize = tuple(materialize)
        self.notes: list[str] = []
        self.outer_parts = {ch for s in c.splits for ch in s.children[:-1]}
        self.prog = self.nest(prepare(c))
        self.pass_report = analyze_passes(c)
        self.check_options()

    def nest(self, prog: Program) -> Program:
        """A reduction over several large ranks as nested reductions, one large rank each:
        ``sum{m, n} X[m, n]`` is ``sum{m} (sum{n} X[m, n])``, which two kernels can stream.
        (sum, max, min and prod are associative and commutative; every filter condition
        stays on the innermost reduction, which sees all the variables.)"""
        nodes: list[Node] = []
        parts = dict(prog.parts)
        order = {r.var: i for i, r in enumerate(self.c.ranks)}
        for n in prog.nodes:
            big = sorted((v for v in n.reduced if self.large(v)), key=order.__getitem__)
            if n.kind is NodeKind.MAP or len(big) < 2:
                nodes.append(n)
                continue
            small = [v for v in n.reduced if v not in big]
            levels = [[*small, big[-1]], *([v] for v in reversed(big[:-1]))]
            free = list(n.variables)
            outer_free = [list(free)]
            for lv in reversed(levels[1:]):
                outer_free.append(outer_free[-1] + lv)
            # outer_free[i]: the free variables of level len(levels) - 1 - i
            body = n.body
            for depth, lv in enumerate(levels):
                last = depth == len(levels) - 1
                outs = tuple(outer_free[len(levels) - 1 - depth])
                if last:
                    op = "max" if n.kind is NodeKind.SURVIVE else n.op
                    kind = NodeKind.REDUCE
                    node = dataclasses.replace(
                        n, kind=kind, body=body, op=op, reduced=tuple(lv), mask=()
                    )
                    if n.kind is NodeKind.SURVIVE:
                        node = dataclasses.replace(node, kind=NodeKind.REDUCE, op="max")
                    nodes.append(node)
                    break
                key = f"{n.key}.n{depth + 1}"
                ranks = tuple(self.c.var_ranks[v] for v in outs)
                parts[key] = ranks
                access = Access(key, tuple(var_symbol(v) for v in outs), n.span)
                nodes.append(
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
        return Program(prog.cascade, tuple(nodes), prog.views, parts)

    # ------------------------------------------------------------ helpers
    def rank(self, var: str) -> str:
        return self.c.var_ranks[var]

    def large(self, var: str) -> bool:
        """Too large to hold whole: unknown at compile time or above :data:`WHOLE_LIMIT`."""
        n = self.known[self.rank(var)]
        return n is None or next_pow2(n) > WHOLE_LIMIT

    def streamable(self, var: str, space: set[str]) -> bool:
        """Traversed by a loop when reduced: large, or the outer part of a split whose inner
        part is iterated too (it counts tiles of the inner part, which is the block)."""
        return self.large(var) or self.streamable_outer(var, space)

    def span(self, rank: str) -> Span | None:
        return self.c.rank(rank).span

    def error(self, node: Node, message: str, hint: str | None = None) -> EinError:
        return EinError.at(node.span, message, self.c.source, hint=hint)

    def check_options(self) -> None:
        ranks = [r.name for r in self.c.ranks]
        for name, value in self.tiles.items():
            if name not in ranks:
                raise EinError.plain(
                    f"--tile names unknown rank '{name}'",
                    hint=_suggest(name, ranks)
                    or "ranks of " + self.c.name + ": " + ", ".join(ranks),
                )
            if value < 1 or value & (value - 1):
                raise EinError.at(
                    self.span(name),
                    f"--tile {name}={value}: a tile is a power of two (a Triton block shape)",
                    self.c.source,
                    hint=f"for example --tile {name}={next_pow2(max(value, 1))}",
                )
            if value > TRITON_MAX_NUMEL:
                raise EinError.at(
                    self.span(name),
                    f"--tile {name}={value} exceeds Triton's block limit of {TRITON_MAX_NUMEL}",
                    self.c.source,
                )
        tensors = {t.name for t in self.c.tensors}
        views = {name for name, _ in self.prog.views}
        for name in self.materialize:
            if name not in tensors:
                raise EinError.plain(
                    f"--materialize names unknown tensor '{name}'",
                    hint=_suggest(name, tensors),
                )
            t = self.c.tensor(name)
            if t.role is not Role.INTERMEDIATE:
                raise EinError.at(
                    t.span,
                    f"--materialize {name}: {name} is an {t.role.value}, already in global memory",
                    self.c.source,
                    hint="materialize names intermediates that a later pass reads",
                )
            if name in views:
                raise EinError.at(
                    t.span,
                    f"--materialize {name}: {name} is a view of another tensor and is never "
                    "computed",
                    self.c.source,
                )

    # ------------------------------------------------------------ grouping
    def units(self) -> list[list[Node]]:
        """Nodes in order; a recurrence's nodes form one unit that is never split."""
        return _units(self.prog.nodes)

    def analyze(self, nodes: list[Node]) -> _Group | tuple[Node, str, str | None]:
        """The group's grid and loop, or (node, reason, hint) why it cannot be one kernel."""
        keys = {n.key for n in nodes}
        for n in nodes:
            for acc in n.reads:
                p = self.prog.producer(acc.tensor)
                if p is None or p.key not in keys:
                    continue
                if self.prog.read_kind(acc, n) is ReadKind.GATHER:
                    return (
                        n,
                        f"{n.statement} reads {acc.tensor} at another point than the one computed",
                        None,
                    )
        reduced: set[str] = set()
        space: set[str] = set()
        iterative: set[str] = set()
        for n in nodes:
            reduced |= set(n.reduced)
            space |= set(n.space)
            if n.recurrence is not None:
                iterative.add(n.recurrence)
        large = {v for v in space if self.large(v)}
        heavy = [n for n in nodes if n.kind is not NodeKind.MAP or set(n.space) & large]
        grid = {
            v
            for v in space
            if v not in reduced and v not in iterative and all(v in n.variables for n in heavy)
        }
        loop = {v for v in reduced if self.streamable(v, space)} | iterative
        rest = large - grid - loop
        if len(loop) > 1:
            culprit = next(
                (n for n in nodes if len(set(n.space) & loop) > 1),
                nodes[-1],
            )
            names = ", ".join(sorted(self.rank(v) for v in loop))
            return (
                culprit,
                f"it would stream two ranks ({names}) in one kernel; the Triton backend "
                "streams one rank per kernel",
                "give one of them an extent of at most "
                f"{WHOLE_LIMIT} (--dims) so that it is held whole, or reduce one rank per Einsum",
            )
        if rest:
            v = sorted(rest)[0]
            culprit = next((n for n in heavy if v not in n.variables), nodes[-1])
            return (
                culprit,
                f"rank {self.rank(v)} is neither streamed nor parallel here",
                None,
            )
        g = _Group(list(nodes))
        g.loop = next(iter(loop)) if loop else None
        g.tiled = self.tiled_grid(nodes, grid, space, g.loop)
        tiled = g.tiled
        g.grid = self.grid_order(grid, tiled)
        return g

    def tiled_grid(
        self, nodes: list[Node], grid: set[str], space: set[str], loop: str | None
    ) -> set[str]:
        """The grid variables that get tiles instead of one program per index.

        A contraction's operand needs a register axis besides the contracted one to be a
        tl.dot: the rows of the query tile in attention, the rows and columns of a matmul.
        Such an axis is a grid variable that this operand has and the other one lacks (a
        variable both have, batch or heads, stays one program per index).  A kernel where no
        contraction asks for one tiles one grid variable, the innermost large one (the rows of
        a softmax or a LayerNorm)."""
        lanes = {v for v in space if v not in grid}
        if loop is not None and self.scalar_loop(loop, space):
            lanes.discard(loop)
        order = {r.var: i for i, r in enumerate(self.c.ranks)}
        tiled: set[str] = set()
        for n in nodes:
            if n.kind is not NodeKind.REDUCE or n.op != "sum":
                continue
            prod = product(n.body, frozenset(n.reduced))
            if len(prod.inner) != 2:
                continue
            for f, other in ((prod.inner[0], prod.inner[1]), (prod.inner[1], prod.inner[0])):
                free = free_variables(f.expr) - set(n.reduced)
                if free & (lanes | tiled):
                    continue
                theirs = free_variables(other.expr)
                options = [
                    v
                    for v in free
                    if v in grid
                    and v not in theirs
                    and (self.large(v) or (self.known[self.rank(v)] or 0) >= MIN_TILE)
                ]
                if options:
                    # prefer a large rank, then the one declared last (the query rank)
                    tiled.add(max(options, key=lambda v: (self.large(v), order[v])))
        if not tiled:
            large = [v for v in grid if self.large(v)]
            if large:
                tiled.add(max(large, key=order.__getitem__))
        return tiled

    def scalar_loop(self, var: str, space: set[str]) -> bool:
        """The loop over ``var`` takes one index per iteration: an iterative rank, or the
        outer part of a split whose inner part is the block."""
        iterative = any(n.recurrence == var for n in self.prog.nodes)
        return (
            iterative
            or (not self.large(var) and self.streamable(var, space))
            or (self.rank(var) in self.outer_parts and self.streamable_outer(var, space))
        )

    def streamable_outer(self, var: str, space: set[str]) -> bool:
        rank = self.rank(var)
        for sp in self.c.splits:
            if rank in sp.children[:-1]:
                inner = sp.children[sp.children.index(rank) + 1 :]
                if any(self.c.rank(ch).var in space for ch in inner):
                    return True
        return False

    def grid_order(self, grid: set[str], tiled: set[str]) -> list[str]:
        """Tiled grid variables first (fastest-varying), then batch-like ones, innermost first."""
        order = {r.var: i for i, r in enumerate(self.c.ranks)}
        first = sorted((v for v in grid if v in tiled), key=order.__getitem__)
        batch = sorted((v for v in grid if v not in tiled), key=order.__getitem__, reverse=True)
        return first + batch

    def partition(self) -> list[_Group]:
        """Greedy fusion: keep adding a ready unit (its producers placed) that the current
        kernel can take, in cascade order; when none fits, start a new kernel."""
        units = self.units()
        unit_of = {n.key: i for i, u in enumerate(units) for n in u}
        deps: list[set[int]] = []
        for i, u in enumerate(units):
            d: set[int] = set()
            for n in u:
                for acc in n.reads:
                    p = self.prog.producer(acc.tensor)
                    if p is not None and self.prog.read_kind(acc, n) is not ReadKind.INIT:
                        d.add(unit_of[p.key])
                if n.survive is not None:
                    d.add(unit_of[n.survive])
            d.discard(i)
            deps.append(d)
        groups: list[_Group] = []
        current: list[Node] = []
        info: _Group | None = None
        placed: set[int] = set()
        remaining = list(range(len(units)))
        while remaining:
            ready = [i for i in remaining if deps[i] <= placed]
            first_failure: tuple[int, tuple[Node, str, str | None]] | None = None
            for i in ready:
                trial = self.analyze(current + units[i])
                if isinstance(trial, _Group):
                    current, info = current + units[i], trial
                    placed.add(i)
                    remaining.remove(i)
                    break
                if first_failure is None:
                    first_failure = (i, trial)
            else:
                assert first_failure is not None
                i, (node, reason, hint) = first_failure
                if not current:
                    raise self.error(
                        node, f"the Triton backend cannot compile {node.statement}: {reason}", hint
                    )
                assert info is not None
                groups.append(info)
                unit = units[i]
                where = (
                    unit[0].statement
                    if unit[0].top
                    else f"{unit[0].statement} (its part {unit[0].key})"
                )
                self.notes.append(
                    f"kernel k{len(groups)} starts at {where}: in the previous kernel, {reason}"
                )
                current, info = [], None
        if current:
            assert info is not None
            groups.append(info)
        return groups

    # ------------------------------------------------------------ roles and tiles
    def assign_roles(self, g: _Group) -> None:
        space: list[str] = []
        for n in g.nodes:
            space.extend(v for v in n.space if v not in space)
        first_tiled = next((v for v in g.grid if v in g.tiled), None)
        for v in space:
            rank = self.rank(v)
            ext = self.known[rank]
            if v in g.grid:
                if v in g.tiled:
                    default = GRID_TILE if v == first_tiled else GRID_TILE_OTHER
                    if ext is not None:
                        default = min(default, next_pow2(ext))
                    g.roles[v] = (AxisRole.GRID, self.tiles.get(rank, default))
                else:
                    g.roles[v] = (AxisRole.GRID, 1)
            elif v == g.loop:
                if self.scalar_loop(v, set(space)):
                    g.roles[v] = (AxisRole.ITERATE, 1)
                else:
                    g.roles[v] = (AxisRole.STREAM, self.tiles.get(rank, STREAM_TILE))
            else:
                assert ext is not None, v
                g.roles[v] = (AxisRole.WHOLE, self.tiles.get(rank, next_pow2(ext)))
        self.fit_registers(g)

    def footprint(
        self, g: _Group, roles: Mapping[str, tuple[AxisRole, int]], var: str | None = None
    ) -> int:
        """Values in the largest register tile (only tiles with axis ``var``, if given)."""
        lanes = {v: b for v, (_, b) in roles.items() if b > 1}
        worst = 1
        for n in g.nodes:
            con = contraction(n, lanes)
            tiles: list[tuple[str, ...]]
            if con is not None:
                tiles = [(con.i, con.k), (con.k, con.j), (con.i, con.j)]
            else:
                used = set(n.space)
                if n.kind is NodeKind.MAP:
                    used = set(n.variables) | free_variables(n.body)
                tiles = [tuple(used)]
            for axes in tiles:
                if var is not None and var not in axes:
                    continue
                size = 1
                for v in axes:
                    size *= lanes.get(v, 1)
                worst = max(worst, size)
        return worst

    def fit_registers(self, g: _Group) -> None:
        """Shrink default stream, then grid, tiles until the largest register value fits."""
        shrinkable = [
            v
            for v, (role, _) in g.roles.items()
            if role is AxisRole.STREAM and self.rank(v) not in self.tiles
        ] + [
            v
            for v, (role, b) in g.roles.items()
            if role is AxisRole.GRID and b > 1 and self.rank(v) not in self.tiles
        ]
        for v in shrinkable:
            role, b = g.roles[v]
            while b > MIN_TILE and self.footprint(g, g.roles, v) > REGISTER_BUDGET:
                b //= 2
                g.roles[v] = (role, b)
        size = self.footprint(g, g.roles)
        if size > TRITON_MAX_NUMEL:
            node = g.nodes[-1]
            raise self.error(
                node,
                f"a register value of {size} elements exceeds Triton's block limit of "
                f"{TRITON_MAX_NUMEL}",
                "use smaller tiles (--tile) or smaller extents",
            )

    def check_tiles(self, groups: list[_Group]) -> None:
        for rank, value in self.tiles.items():
            var = self.c.rank(rank).var
            roles = [g.roles[var] for g in groups if var in g.roles]
            if not roles:
                split = self.c.split_of(rank)
                hint = (
                    f"{rank} is traversed as {' x '.join(split.children)}: tile "
                    f"{split.children[-1]} instead"
                    if split is not None
                    else None
                )
                raise EinError.at(
                    self.span(rank),
                    f"--tile {rank}={value}: no kernel iterates over {rank}",
                    self.c.source,
                    hint=hint,
                )
            for role, _ in roles:
                ext = self.known[rank]
                if role is AxisRole.ITERATE:
                    why = (
                        f"{rank} is iterative: its recurrence runs one iterate at a time"
                        if any(n.recurrence == var for n in self.prog.nodes)
                        else f"{rank} is the outer part of a split: it counts tiles of "
                        f"{self.split_inner(rank)}, which is its tile"
                    )
                    raise EinError.at(
                        self.span(rank),
                        f"--tile {rank}={value}: {why}",
                        self.c.source,
                        hint=f"tile {self.split_inner(rank)} instead"
                        if rank in self.outer_parts
                        else None,
                    )
                if role is AxisRole.GRID and not any(var in g.tiled for g in groups):
                    raise EinError.at(
                        self.span(rank),
                        f"--tile {rank}={value}: {rank} is a batch rank here, one program per "
                        "index",
                        self.c.source,
                    )
                if role is AxisRole.WHOLE and ext is not None and value < ext:
                    raise EinError.at(
                        self.span(rank),
                        f"--tile {rank}={value}: {rank} = {ext} is held whole in registers, so "
                        f"its tile must be at least {ext}",
                        self.c.source,
                        hint=f"change the extent instead: --dims {rank}={value}",
                    )

    def split_inner(self, rank: str) -> str:
        s = next(s for s in self.c.splits if rank in s.children)
        return s.children[-1]

    # ------------------------------------------------------------ passes
    def read_sites(self, n: Node, keys: set[str]) -> list[tuple[Node, ReadKind]]:
        out: list[tuple[Node, ReadKind]] = []
        for acc in n.reads:
            p = self.prog.producer(acc.tensor)
            if p is not None and p.key in keys:
                out.append((p, self.prog.read_kind(acc, n)))
        if n.survive is not None and n.survive in keys:
            out.append((self.prog.node(n.survive), ReadKind.DIRECT))
        return out

    def in_loop(self, n: Node, loop: str | None) -> bool:
        return loop is not None and loop in n.space

    def accumulates(self, n: Node, loop: str | None) -> bool:
        return loop is not None and loop in n.reduced

    def assign_phases(self, g: _Group) -> None:
        keys = {n.key for n in g.nodes}
        loop = g.loop
        by_unit: dict[int, list[Node]] = {}
        for n in g.nodes:
            by_unit.setdefault(id(self.unit_of(n)), []).append(n)
        done_at: dict[str, tuple[int, int]] = {}  # key -> (pass, 1 in loop | 2 after loop)
        for unit in self.group_units(g):
            members = {n.key for n in unit}
            if all(self.in_loop(n, loop) for n in unit):
                k = 1
                for n in unit:
                    for p, kind in self.read_sites(n, keys):
                        if p.key in members or kind is ReadKind.INIT:
                            continue
                        stream = self.in_loop(p, loop) and not self.accumulates(p, loop)
                        if stream and kind is not ReadKind.FINAL:
                            k = max(k, g.phase[p.key])
                        else:
                            j, w = done_at[p.key]
                            k = max(k, j + 1 if w == 2 else j)
                for n in unit:
                    g.phase[n.key] = k
                    done_at[n.key] = (k, 2 if self.accumulates(n, loop) else 1)
                    if n.recurrence == loop:
                        done_at[n.key] = (k, 2)  # its final iterate
                continue
            for n in unit:
                if self.in_loop(n, loop):
                    raise self.error(n, f"{n.statement}: a recurrence mixes loop ranks")
                j = 0
                for p, kind in self.read_sites(n, keys):
                    if kind is ReadKind.INIT:
                        continue
                    jj, _ = done_at[p.key]
                    j = max(j, jj)
                g.after[n.key] = j
                done_at[n.key] = (j, 2)
        g.passes = max(g.phase.values(), default=0)

    def unit_of(self, n: Node) -> tuple[int, str | None]:
        return (n.stage, n.recurrence)

    def group_units(self, g: _Group) -> list[list[Node]]:
        return _units(g.nodes)

    # ------------------------------------------------------------ kernels
    def split_points(self, g: _Group) -> set[int]:
        """Passes after which the kernel ends because a materialized tensor crosses them."""
        keys = {n.key for n in g.nodes}
        out: set[int] = set()
        for name in self.materialize:
            p = self.prog.producer(name)
            if p is None or p.key not in keys or p.key not in g.phase:
                continue
            j = g.phase[p.key]
            later = [
                n
                for n in g.nodes
                if any(q.key == p.key for q, _ in self.read_sites(n, keys))
                and g.phase.get(n.key, g.after.get(n.key, 0)) > j
            ]
            if later:
                out.add(j)
            else:
                self.notes.append(
                    f"--materialize {name}: no later pass reads it, so nothing changes"
                )
        return out

    def build(self) -> Schedule:
        groups = self.partition()
        for g in groups:
            self.assign_roles(g)
            self.assign_phases(g)
        loops: dict[str, int] = {}
        for g in groups:
            if g.loop is not None:
                loops[g.loop] = loops.get(g.loop, 0) + g.passes
        if len(groups) > 1 and len(loops) > 1:
            most = max(loops.values())
            for v in sorted(loops):
                rank = self.rank(v)
                if (
                    self.known[rank] is None
                    and loops[v] < most
                    and not any(n.recurrence == v for n in self.prog.nodes)
                ):
                    self.notes.append(
                        f"{rank} has no extent at compile time, so it is streamed; "
                        f"--dims {rank}=N holds it whole in registers when N <= {WHOLE_LIMIT}, "
                        "which may need fewer kernels"
                    )
        self.check_tiles(groups)
        kernels: list[Kernel] = []
        kernel_of: dict[str, int] = {}  # node -> kernel computing it (first time)
        plans: list[tuple[_Group, list[tuple[int, int]]]] = []
        for g in groups:
            cuts = sorted(self.split_points(g))
            ranges: list[tuple[int, int]] = []
            start = 1
            for cut in cuts:
                ranges.append((start, cut))
                start = cut + 1
            ranges.append((start, max(g.passes, start - 1) if g.passes else 0))
            if g.passes == 0:
                ranges = [(1, 0)]
            plans.append((g, ranges))
        # first pass: which kernel computes each node
        index = 0
        for g, ranges in plans:
            for a, b in ranges:
                for n in g.nodes:
                    if (n.key in g.phase and a <= g.phase[n.key] <= b) or (
                        n.key in g.after
                        and ((g.after[n.key] == 0 and a == 1) or a <= g.after[n.key] <= b)
                    ):
                        kernel_of[n.key] = index
                index += 1
        index = 0
        evaluated: dict[int, set[str]] = {}
        for g, ranges in plans:
            for a, b in ranges:
                kernels.append(self.kernel(g, a, b, index, kernel_of, evaluated))
                index += 1
        # global tensors: computed in one kernel, read by a later one
        reads_by_kernel: dict[int, set[str]] = {}
        for i, k in enumerate(kernels):
            reads_by_kernel[i] = set(k.reads)
        placements = self.placements(kernels, kernel_of, evaluated)
        global_names = {p.tensor for p in placements if p.where == "global"}
        # stores and reads of scratch tensors
        final: list[Kernel] = []
        for i, k in enumerate(kernels):
            final.append(self.with_traffic(k, i, kernel_of, evaluated, global_names))
        return Schedule(
            cascade=self.c.name,
            kernels=tuple(final),
            placements=tuple(placements),
            extents=tuple((r.name, self.known[r.name]) for r in self.c.ranks),
            tiles=self.used_tiles(groups),
            materialize=self.materialize,
            views=tuple((name, self.render_access(src)) for name, src in self.prog.views),
            passes=self.pass_summary(groups),
            pass_report=self.pass_report,
            notes=tuple(self.notes),
            program=self.prog,
        )

    def render_access(self, a: object) -> str:
        from einsumcc.ir.dump import render_access
        from einsumcc.ir.nodes import Access

        assert isinstance(a, Access)
        return render_access(a)

    def used_tiles(self, groups: list[_Group]) -> tuple[tuple[str, int], ...]:
        out: dict[str, int] = {}
        for g in groups:
            for v, (role, b) in g.roles.items():
                if (role in (AxisRole.GRID, AxisRole.STREAM) and b > 1) or (
                    role is AxisRole.WHOLE and b > 1
                ):
                    out.setdefault(self.rank(v), b)
        order = [r.name for r in self.c.ranks]
        return tuple(sorted(out.items(), key=lambda kv: order.index(kv[0])))

    def pass_summary(self, groups: list[_Group]) -> tuple[tuple[str, int], ...]:
        out: dict[str, int] = {}
        for g in groups:
            if g.loop is None:
                continue
            rank = self.rank(g.loop)
            if rank in out:
                continue
            out[rank] = self.pass_report.rank(rank).passes
            parent = next((s.parent for s in self.c.splits if rank in s.children), None)
            if parent is not None and parent not in out:
                out[parent] = self.pass_report.rank(parent).passes
        return tuple(out.items())

    def kernel(
        self,
        g: _Group,
        a: int,
        b: int,
        index: int,
        kernel_of: Mapping[str, int],
        evaluated: dict[int, set[str]],
    ) -> Kernel:
        keys = {n.key for n in g.nodes}
        loop = g.loop
        order = {n.key: i for i, n in enumerate(g.nodes)}
        before = tuple(
            n.key for n in g.nodes if n.key in g.after and g.after[n.key] == 0 and a == 1
        )
        ev: set[str] = set(before)
        loops: list[Loop] = []
        for k in range(a, b + 1):
            assert loop is not None
            members = {n.key for n in g.nodes if g.phase.get(n.key) == k}
            todo = list(members)
            recomputed: set[str] = set()
            while todo:
                key = todo.pop()
                n = self.prog.node(key)
                for p, kind in self.read_sites(n, keys):
                    if p.key in members or p.key in recomputed or kind is ReadKind.INIT:
                        continue
                    per_tile = self.in_loop(p, loop) and not self.accumulates(p, loop)
                    if not per_tile or kind is ReadKind.FINAL:
                        continue
                    if p.key in self.materialize and kernel_of[p.key] != index:
                        continue
                    unit = [q.key for q in g.nodes if self.unit_of(q) == self.unit_of(p)]
                    if p.recurrence is None:
                        unit = [p.key]
                    for q in unit:
                        if q not in members and q not in recomputed:
                            recomputed.add(q)
                            todo.append(q)
            nodes = tuple(sorted(members | recomputed, key=order.__getitem__))
            accumulators = tuple(n for n in nodes if self.accumulates(self.prog.node(n), loop))
            carried = tuple(
                n
                for n in nodes
                if self.prog.node(n).recurrence == loop
                and self.prog.node(n).top
                and self.prog.node(n).iterative_variable == loop
            )
            after = tuple(n.key for n in g.nodes if n.key in g.after and g.after[n.key] == k)
            ev |= set(nodes) | set(after)
            loops.append(
                Loop(
                    number=k,
                    var=loop,
                    nodes=nodes,
                    recomputed=tuple(sorted(recomputed, key=order.__getitem__)),
                    accumulators=accumulators,
                    carried=carried,
                    stores=(),
                    after=after,
                )
            )
        evaluated[index] = ev
        axes = self.axes(g, ev)
        stream = self.rank(loop) if loop is not None else None
        if stream is not None:
            # the outer part of a split whose inner part is a block: the parent is streamed
            for sp in self.c.splits:
                if stream in sp.children[:-1] and any(
                    self.c.rank(ch).var in g.roles
                    for ch in sp.children[sp.children.index(stream) + 1 :]
                ):
                    stream = sp.parent
                    break
        return Kernel(
            name=f"k{index}",
            axes=axes,
            grid=tuple(v for v in g.grid if any(a.var == v for a in axes)),
            before=before,
            loops=tuple(loops),
            reads=(),
            writes=(),
            stream=stream,
            num_warps=8 if self.footprint(g, g.roles) >= WIDE_TILE else 4,
        )

    def axes(self, g: _Group, evaluated: set[str]) -> tuple[Axis, ...]:
        used: list[str] = []
        for n in g.nodes:
            if n.key in evaluated:
                used.extend(v for v in n.space if v not in used)
        rank_order = {r.var: i for i, r in enumerate(self.c.ranks)}
        out: list[Axis] = []

        def make(v: str) -> Axis:
            role, block = g.roles[v]
            return Axis(v, self.rank(v), role, block, self.known[self.rank(v)])

        out.extend(make(v) for v in g.grid if v in used)
        streams = [v for v in used if g.roles[v][0] in (AxisRole.STREAM, AxisRole.ITERATE)]
        out.extend(make(v) for v in streams)
        wholes = sorted(
            (v for v in used if g.roles[v][0] is AxisRole.WHOLE), key=rank_order.__getitem__
        )
        out.extend(make(v) for v in wholes)
        return tuple(out)

    # ------------------------------------------------------------ placement
    def placements(
        self,
        kernels: list[Kernel],
        kernel_of: Mapping[str, int],
        evaluated: Mapping[int, set[str]],
    ) -> list[Placement]:
        out: list[Placement] = []
        views = dict(self.prog.views)
        readers: dict[str, set[int]] = {}
        for i in range(len(kernels)):
            for key in evaluated[i]:
                n = self.prog.node(key)
                deps = [a.tensor for a in n.reads]
                if n.survive is not None:
                    deps.append(n.survive)
                for t in deps:
                    p = self.prog.producer(t)
                    if p is None:
                        continue
                    if p.key in evaluated[i]:
                        continue
                    readers.setdefault(p.key, set()).add(i)
        for tensor in self.c.tensors:
            if tensor.role is Role.INPUT:
                out.append(Placement(tensor.name, "input", "global memory, read by the kernels"))
                continue
            if tensor.name in views:
                out.append(
                    Placement(
                        tensor.name,
                        "view",
                        f"no storage: reads become {self.render_access(views[tensor.name])}",
                    )
                )
                continue
            p = self.prog.producer(tensor.name)
            if p is None:
                continue
            out.append(self.place(p, kernels, kernel_of, readers, tensor.role is Role.OUTPUT))
        for key in self.prog.parts:
            p = self.prog.node(key)
            out.append(self.place(p, kernels, kernel_of, readers, False))
        return out

    def place(
        self,
        p: Node,
        kernels: list[Kernel],
        kernel_of: Mapping[str, int],
        readers: Mapping[str, set[int]],
        output: bool,
    ) -> Placement:
        i = kernel_of[p.key]
        k = kernels[i]
        later = sorted(j for j in readers.get(p.key, set()) if j != i)
        loop = next(
            (lp for lp in k.loops if p.key in lp.nodes and p.key not in lp.recomputed), None
        )
        recomputed_in = [
            f"loop {lp.number}" if kk.name == k.name else f"{kk.name} loop {lp.number}"
            for kk in kernels
            for lp in kk.loops
            if p.key in lp.recomputed
        ]
        if loop is None:
            local = "registers (once per program)"
        elif p.key in loop.accumulators:
            local = f"loop-carried accumulator over {loop.var} in loop {loop.number}"
        elif p.key in loop.carried:
            local = f"loop-carried state of the recurrence over {loop.var} in loop {loop.number}"
        else:
            local = f"registers, one tile per iteration of loop {loop.number} over {loop.var}"
        if recomputed_in:
            local += "; recomputed in " + ", ".join(recomputed_in)
        where = (
            "loop-carried"
            if loop is not None and (p.key in loop.accumulators or p.key in loop.carried)
            else "registers"
        )
        if output:
            return Placement(p.key, "output", f"global memory, written by {k.name}; {local}")
        if later:
            names = ", ".join(kernels[j].name for j in later)
            return Placement(p.key, "global", f"written by {k.name}, read by {names}; {local}")
        return Placement(p.key, where, f"{local} in {k.name}")

    def with_traffic(
        self,
        k: Kernel,
        index: int,
        kernel_of: Mapping[str, int],
        evaluated: Mapping[int, set[str]],
        global_names: set[str],
    ) -> Kernel:
        from dataclasses import replace

        ev = evaluated[index]
        reads: list[str] = []
        for key in ev:
            n = self.prog.node(key)
            deps = [a.tensor for a in n.reads]
            if n.survive is not None:
                deps.append(n.survive)
            for t in deps:
                p = self.prog.producer(t)
                if p is None:
                    if t not in reads:
                        reads.append(t)
                elif p.key not in ev and t not in reads:
                    reads.append(t)
        outputs = {t.name for t in self.c.outputs}
        writes = [
            key
            for key in ev
            if kernel_of.get(key) == index and (key in outputs or key in global_names)
        ]
        order = {t.name: i for i, t in enumerate(self.c.tensors)}
        for i, key in enumerate(self.prog.parts):
            order[key] = len(order) + i

        def sort(names: Iterable[str]) -> tuple[str, ...]:
            return tuple(sorted(set(names), key=lambda x: order.get(x, 10**6)))

        loops = []
        for lp in k.loops:
            stores = tuple(
                n
                for n in lp.nodes
                if n in writes and n not in lp.recomputed and n not in lp.accumulators
            )
            loops.append(replace(lp, stores=stores))
        return replace(k, reads=sort(reads), writes=sort(writes), loops=tuple(loops))


def derive_schedule(
    cascade: Cascade,
    dims: Mapping[str, int] | None = None,
    *,
    tiles: Mapping[str, int] | None = None,
    materialize: Sequence[str] = (),
) -> Schedule:
    """The default schedule of ``cascade`` with compile-time ``dims`` and ``tiles`` overrides.

    Raises :class:`EinError` for illegal overrides and for cascades the Triton backend cannot
    compile, pointing at the rank or Einsum involved.
    """
    from einsumcc.schedule.tiles import classify_loops

    schedule = _Deriver(cascade, dims, tiles, materialize).build()
    return classify_loops(schedule)
