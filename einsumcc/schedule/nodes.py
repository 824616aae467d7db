"""A cascade as a list of *nodes*: the unit the schedule places in loops and kernels.

Two rewrites turn the Einsums of a cascade into nodes; both keep the oracle's semantics.

* **Views are inlined.**  An Einsum that only re-indexes another tensor
  (``BK[e, m1, m0] = K[e, m1*M0 + m0]``) moves no data: every read of ``BK`` becomes a read of
  ``K`` with the composed index.  (The oracle evaluates in float64 whatever the declared dtypes,
  so inlining a view never changes a value.)
* **Every reduction is its own node.**  ``AV[f, p] = sum{m} (SN[m, p] * V[f, m]) / SD[p]`` is
  the reduction ``AV.1[f, p] = sum{m} (SN[m, p] * V[f, m])`` and the map
  ``AV[f, p] = AV.1[f, p] / SD[p]``.  Parts are named after their statement with a suffix
  (``AV.1``); a dot can never occur in a user's name.  When a statement's whole right side is
  a reduction, the reduction is the statement's node.

A statement's ``where`` filter is split the way the oracle applies it: the conditions that
involve a reduction's variables remove points of that reduction (``mask``); the statement's
output keeps its fill where no iteration point survives (``guard`` when every condition is
on left-hand variables, else a ``survive`` node that reduces the conditions with *any*).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy

from einsumcc.diagnostics import Span
from einsumcc.ir.cascade import Cascade, Recurrence
from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Condition,
    Const,
    Einsum,
    Expr,
    Neg,
    Reduce,
    Role,
    children,
    free_variables,
    is_var_symbol,
    iterative_variable,
    var_symbol,
    walk,
    with_children,
)


class NodeKind(enum.Enum):
    MAP = "map"  # a pointwise expression over the node's variables
    REDUCE = "reduce"  # op{reduced} body
    SURVIVE = "survive"  # any{reduced} (all filter conditions hold): 1 or 0


@dataclass(frozen=True)
class Node:
    """One unit of computation.  ``output.tensor`` is the node's key."""

    key: str
    statement: str
    kind: NodeKind
    output: Access
    body: Expr  # MAP: no Reduce inside; REDUCE: the operand; SURVIVE: Const(1)
    variables: tuple[str, ...]  # output variables, in order
    op: str | None = None  # REDUCE: sum max min prod
    reduced: tuple[str, ...] = ()  # REDUCE/SURVIVE: the reduced variables
    mask: tuple[Condition, ...] = ()  # REDUCE/SURVIVE: conditions removing points
    guard: tuple[Condition, ...] = ()  # top node: fill where a condition fails
    survive: str | None = None  # top node: key of its SURVIVE node
    recurrence: str | None = None  # the iterative variable when part of a recurrence
    top: bool = False  # the statement's own node (writes the statement's tensor)
    # top node: (v2) conditions that read tensors, on the output's variables: fill where one
    # fails, decided point by point at run time (never per tile)
    data: tuple[Expr, ...] = ()
    stage: int = 0  # index of the cascade stage (a recurrence's nodes share one)
    span: Span | None = field(default=None, compare=False)

    @property
    def space(self) -> tuple[str, ...]:
        """The iteration space: output variables, then reduced ones."""
        return self.variables + tuple(v for v in self.reduced if v not in self.variables)

    @property
    def reads(self) -> tuple[Access, ...]:
        out = [n for n in walk(self.body) if isinstance(n, Access)]
        for cond in self.data:
            out.extend(n for n in walk(cond) if isinstance(n, Access) and n not in out)
        return tuple(out)

    @property
    def filtered(self) -> bool:
        """Some points hold the fill: a guard, a survive node or a data condition."""
        return bool(self.guard or self.survive is not None or self.data)

    @property
    def iterative_variable(self) -> str | None:
        """``x`` when the node writes ``T[.., x + 1, ..]``."""
        return iterative_variable(self.output)

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.mask + self.guard


class ReadKind(enum.Enum):
    DIRECT = "direct"  # the producer's own point (same index at every position)
    CARRIED = "carried"  # T[x] while the recurrence over x computes T[x + 1]
    NEXT = "next"  # T[x + 1], after it was computed in this iterate
    INIT = "init"  # T[0]: the init value
    FINAL = "final"  # T[X]: the last iterate
    GATHER = "gather"  # anything else: another point of the producer


@dataclass(frozen=True)
class NodeProgram:
    """The nodes of a cascade in a dependency order, with the views that were inlined."""

    cascade: Cascade
    nodes: tuple[Node, ...]
    views: tuple[tuple[str, Access], ...]  # view name -> what it reads (in its own variables)
    parts: Mapping[str, tuple[str, ...]]  # synthetic part key -> the ranks of its variables

    def node(self, key: str) -> Node:
        return self._by_key[key]

    def producer(self, tensor: str) -> Node | None:
        return self._by_key.get(tensor)

    @functools.cached_property
    def _by_key(self) -> dict[str, Node]:
        return {n.key: n for n in self.nodes}

    def ranks_of(self, tensor: str) -> tuple[str, ...]:
        """Rank of each position of a tensor (a part's ranks are those of its variables)."""
        if tensor in self.parts:
            return self.parts[tensor]
        return self.cascade.tensor(tensor).ranks

    def read_kind(self, access: Access, reader: Node) -> ReadKind:
        """How ``reader`` reads ``access`` of a tensor computed by a node."""
        producer = self.producer(access.tensor)
        assert producer is not None
        x = producer.iterative_variable
        pos = None
        if x is not None:
            pos = next(i for i, ix in enumerate(producer.output.indices) if ix == var_symbol(x) + 1)
        for i, (mine, theirs) in enumerate(
            zip(producer.output.indices, access.indices, strict=True)
        ):
            if i == pos:
                continue
            if mine != theirs:
                return ReadKind.GATHER
        if pos is None or x is None:
            return ReadKind.DIRECT
        idx = access.indices[pos]
        rank = self.cascade.var_ranks[x]
        if idx == 0:
            return ReadKind.INIT
        if idx == var_symbol(x) + 1 and x in reader.space:
            return ReadKind.NEXT
        if idx == var_symbol(x) and x in reader.space:
            return ReadKind.CARRIED
        if idx == self.cascade.rank(rank).symbol:
            return ReadKind.FINAL
        return ReadKind.GATHER


def is_view(c: Cascade, e: Einsum) -> bool:
    """An Einsum that only re-indexes a non-iterative tensor: ``BK[e, m1, m0] = K[...]``."""
    t = c.tensor(e.name)
    if t.role is not Role.INTERMEDIATE or t.is_iterative or e.where:
        return False
    if not isinstance(e.body, Access):
        return False
    src = c.tensor(e.body.tensor)
    if src.is_iterative:
        return False
    ixs = e.output.indices
    if not all(isinstance(ix, sympy.Symbol) and is_var_symbol(ix) for ix in ixs):
        return False
    if len({str(ix) for ix in ixs}) != len(ixs):
        return False
    # every variable the source read uses must be on the left (no hidden reduction)
    return e.body.variables <= {str(ix) for ix in ixs}


def _substitute(e: Expr, views: Mapping[str, tuple[Access, Access]]) -> Expr:
    """``e`` with every read of a view replaced by the view's source, re-indexed."""
    if isinstance(e, Access):
        if e.tensor in views:
            lhs, src = views[e.tensor]
            subs = dict(zip(lhs.indices, e.indices, strict=True))
            idx = tuple(sympy.expand(ix.xreplace(subs)) for ix in src.indices)
            return Access(src.tensor, idx, e.span)
        return e
    if isinstance(e, Neg):
        return Neg(_substitute(e.operand, views), e.span)
    if isinstance(e, Binary):
        return Binary(e.op, _substitute(e.lhs, views), _substitute(e.rhs, views), e.span)
    if isinstance(e, Call):
        return Call(e.fn, tuple(_substitute(a, views) for a in e.args), e.span)
    if isinstance(e, Reduce):
        return Reduce(e.op, e.variables, _substitute(e.body, views), e.span)
    kids = children(e)
    if kids:  # (v2) conditions
        return with_children(e, tuple(_substitute(k, views) for k in kids))
    return e


class _Decomposer:
    def __init__(self, c: Cascade, views: Mapping[str, tuple[Access, Access]]) -> None:
        self.c = c
        self._views = views
        self.nodes: list[Node] = []
        self.parts: dict[str, tuple[str, ...]] = {}

    def views(self, e: Expr) -> Expr:
        return _substitute(e, self._views)

    def statement(self, e: Einsum, body: Expr, recurrence: str | None, stage: int) -> None:
        lhs = e.lhs_variables
        counter = [0]
        where = e.where

        def order(vs: frozenset[str] | set[str]) -> tuple[str, ...]:
            first = [v for v in lhs if v in vs]
            return tuple(first + sorted(v for v in vs if v not in lhs))

        def mask_for(r: Reduce, scope: frozenset[str]) -> tuple[Condition, ...]:
            inner = scope | set(r.variables) | set(lhs)
            return tuple(
                c for c in where if c.variables & set(r.variables) and c.variables <= inner
            )

        def split(x: Expr, scope: frozenset[str]) -> Expr:
            """``x`` with every reduction inside it replaced by a read of its part."""
            if isinstance(x, Reduce):
                inner_scope = scope | set(x.variables)
                new_body = split(x.body, inner_scope)
                counter[0] += 1
                key = f"{e.name}.{counter[0]}"
                outs = order(free_variables(x))
                self.parts[key] = tuple(self.c.var_ranks[v] for v in outs)
                out = Access(key, tuple(var_symbol(v) for v in outs), x.span)
                self.nodes.append(
                    Node(
                        key,
                        e.name,
                        NodeKind.REDUCE,
                        out,
                        new_body,
                        outs,
                        op=x.op,
                        reduced=x.variables,
                        mask=mask_for(x, scope),
                        recurrence=recurrence,
                        stage=stage,
                        span=x.span,
                    )
                )
                return out
            kids = children(x)
            if not kids:
                return x
            new = tuple(split(k, scope) for k in kids)
            if isinstance(x, Neg):
                return Neg(new[0], x.span)
            if isinstance(x, Binary):
                return Binary(x.op, new[0], new[1], x.span)
            return with_children(x, new)

        lhs_set = set(lhs)
        data = tuple(self.views(m) for m in e.mask)
        guard: tuple[Condition, ...] = ()
        survive: str | None = None
        if where:
            if all(c.variables <= lhs_set for c in where):
                guard = where
            else:
                key = f"{e.name}.any"
                cond_vars: set[str] = set()
                for c in where:
                    cond_vars |= c.variables
                outs = order(cond_vars & lhs_set)
                reduced = tuple(sorted(cond_vars - lhs_set))
                self.parts[key] = tuple(self.c.var_ranks[v] for v in outs)
                self.nodes.append(
                    Node(
                        key,
                        e.name,
                        NodeKind.SURVIVE,
                        Access(key, tuple(var_symbol(v) for v in outs)),
                        Const(1),
                        outs,
                        reduced=reduced,
                        mask=where,
                        recurrence=recurrence,
                        stage=stage,
                        span=e.span,
                    )
                )
                survive = key
        if isinstance(body, Reduce):
            # the statement is one reduction: it is the statement's node
            inner = split(body.body, frozenset(body.variables))
            self.nodes.append(
                Node(
                    e.name,
                    e.name,
                    NodeKind.REDUCE,
                    e.output,
                    inner,
                    lhs,
                    op=body.op,
                    reduced=body.variables,
                    mask=mask_for(body, frozenset()),
                    guard=guard,
                    survive=survive,
                    recurrence=recurrence,
                    stage=stage,
                    top=True,
                    span=e.span,
                    data=data,
                )
            )
            return
        new_body = split(body, frozenset())
        self.nodes.append(
            Node(
                e.name,
                e.name,
                NodeKind.MAP,
                e.output,
                new_body,
                lhs,
                guard=guard,
                survive=survive,
                recurrence=recurrence,
                stage=stage,
                top=True,
                span=e.span,
                data=data,
            )
        )


def _free_parts(nodes: tuple[Node, ...]) -> tuple[Node, ...]:
    """Parts of a recurrence's statements that read nothing the recurrence computes (a
    reduction of inputs, say) need no sequential iteration: they leave the recurrence."""
    out = list(nodes)
    for stage in {n.stage for n in nodes if n.recurrence is not None}:
        members = [i for i, n in enumerate(out) if n.stage == stage]
        keys = {out[i].key for i in members}
        tied = {out[i].key for i in members if out[i].top}
        changed = True
        while changed:
            changed = False
            for i in members:
                n = out[i]
                if n.key in tied:
                    continue
                if any(a.tensor in tied for a in n.reads) or (n.survive in tied):
                    tied.add(n.key)
                    changed = True
        for i in members:
            if out[i].key in keys - tied:
                out[i] = dataclasses.replace(out[i], recurrence=None, stage=-1 - i)
    return tuple(out)


def _check_supported(c: Cascade, e: Einsum) -> None:
    """The v2 constructs the schedule cannot place yet are errors at their Einsum (never a
    silently different result)."""
    from einsumcc.diagnostics import EinError
    from einsumcc.ir.nodes import Compare, Logic, Not, Select

    what = None
    lhs = set(e.lhs_variables)
    if any(not free_variables(m) <= lhs for m in e.mask):
        what = "a filter that reads tensors on a reduced variable"
    conditions = {id(c) for x in walk(e.body) if isinstance(x, Select) for c in walk(x.cond)}
    for x in walk(e.body):
        if isinstance(x, Compare | Logic | Not) and id(x) not in conditions:
            what = "a comparison used as a value"
        elif isinstance(x, Binary) and x.op == "**" and not _constant_power(c, x.rhs):
            what = "the power operator ** with an exponent other than a constant integer or +-1/2"
    if what is not None:
        raise EinError.at(
            e.span,
            f"the Triton backend cannot compile {e.name} yet: {what} is not supported",
            c.source,
            hint="einsumcc run --target oracle evaluates any valid cascade",
        )


def _constant_power(c: Cascade, e: Expr) -> bool:
    from einsumcc.ir.bind import eval_constant

    try:
        v = eval_constant(e, {}, {p.name: p.value for p in c.params})
    except (KeyError, RecursionError, ZeroDivisionError):
        return False
    return abs(v) == 0.5 or (float(v).is_integer() and abs(v) <= 8)


def prepare(c: Cascade) -> NodeProgram:
    """Inline views and split reductions out: the cascade as nodes, in a dependency order."""
    views: dict[str, tuple[Access, Access]] = {}
    for e in c.einsums:
        if is_view(c, e):
            assert isinstance(e.body, Access)
            src = _substitute(e.body, views)
            assert isinstance(src, Access)
            views[e.name] = (e.output, src)
    for e in c.einsums:
        _check_supported(c, e)
    d = _Decomposer(c, views)
    for index, stage in enumerate(c.stages):
        names = stage.einsums if isinstance(stage, Recurrence) else (stage,)
        x = stage.variable if isinstance(stage, Recurrence) else None
        for name in names:
            if name in views:
                continue
            e = c.einsum(name)
            d.statement(e, _substitute(e.body, views), x, index)
    return NodeProgram(
        c,
        _free_parts(tuple(d.nodes)),
        tuple((name, src) for name, (_, src) in views.items()),
        d.parts,
    )
