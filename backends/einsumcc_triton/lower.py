"""Lowering: (Cascade, Schedule) -> kernel AST.

Every value in a kernel is a *labelled tile*: a Triton block whose axes are rank variables,
in the kernel's canonical axis order (grid axes, then the streamed axis, then whole ones);
scalars (batch indices, the iterate of a recurrence) have no axis.  Pointwise operations
align their operands by inserting ``None`` axes; a reduction over a register axis is
``tl.sum`` / ``tl.max`` along it; a contraction of two 2-D tiles over one axis is ``tl.dot``;
any other contraction multiplies with broadcasting and reduces.  A reduction over the loop
variable is a loop-carried accumulator; a recurrence carries its current iterate.

Loads and stores use the strides of the tensors passed in, so any torch view works.  Index
arithmetic that varies per program or per iteration is done in 64 bits; lane offsets in 32.
A load is masked when one of its lanes can lie outside the tensor (padding of a block, the
last tile of a rank, an index that is not provably in range); mask code for a filter is
emitted only in the loop segments where the schedule classified tiles as partial.

This module holds what the whole module's lowering knows (extents, params, the compute
dtype, the helpers used); each kernel is lowered by the parts gathered in
:class:`~einsumcc_triton.scope.KernelScope`: the tile plan and kernel assembly (``kernel``),
labelled tiles (``values``), index code (``indexing``), masks (``masks``), loads and stores
(``memory``), expressions (``expressions``), node values (``node_values``) and loops
(``loops``).
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy

from einsumcc.diagnostics import EinError
from einsumcc.ir.bind import eval_constant
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import DType, Expr
from einsumcc.schedule.nodes import NodeProgram
from einsumcc.schedule.schedule import Schedule
from einsumcc_triton import kernel_ast as ka
from einsumcc_triton.jit_helpers import helper_defs
from einsumcc_triton.kernel_info import (
    IDENTITY,
    RESERVED,
    SIG_DTYPE,
    TL_DTYPE,
    TORCH_DTYPE,
    KernelInfo,
    KernelParam,
    Lowered,
    UnsupportedError,
)
from einsumcc_triton.scope import KernelScope

__all__ = [
    "IDENTITY",
    "SIG_DTYPE",
    "TL_DTYPE",
    "TORCH_DTYPE",
    "KernelInfo",
    "KernelParam",
    "Lowered",
    "Lowering",
    "UnsupportedError",
    "lower_module",
]


class Lowering:
    def __init__(self, cascade: Cascade, schedule: Schedule, count_tiles: bool = False) -> None:
        assert schedule.program is not None
        self.c = cascade
        # test mode: every loop iteration adds 1 to its slot of a counter buffer
        self.count_tiles = count_tiles
        self.tile_slots = {
            (k.name, lp.number): i
            for i, (k, lp) in enumerate((k, lp) for k in schedule.kernels for lp in k.loops)
        }
        self.s = schedule
        self.prog: NodeProgram = schedule.program
        self.extents = schedule.extent_of
        self.namer = ka.Namer(RESERVED)
        self.helpers: set[str] = set()
        self.compute = "f64" if any(t.dtype is DType.F64 for t in cascade.tensors) else "f32"
        self.params = {p.name: p.value for p in cascade.params}
        self.kernel_of: dict[str, str] = {}
        for k in schedule.kernels:
            for key in k.nodes:
                self.kernel_of.setdefault(key, k.name)
        # extents as expressions of other extents (M1 -> M / M0), for proofs
        defs: dict[sympy.Symbol, sympy.Expr] = {}
        for r in cascade.ranks:
            if self.extents.get(r.name) is not None:
                defs[r.symbol] = sympy.Integer(self.extents[r.name] or 0)
            elif r.extent is not None:
                defs[r.symbol] = r.extent
        for sp in cascade.splits:
            parent = cascade.rank(sp.parent).symbol
            if parent not in defs:
                prod: sympy.Expr = sympy.Integer(1)
                for ch in sp.children:
                    prod = prod * cascade.rank(ch).symbol
                defs[parent] = prod
        self.extent_exprs = _resolve(defs)

    # ------------------------------------------------------------ facts
    def known(self, rank: str) -> int | None:
        return self.extents.get(rank)

    def constant(self, e: Expr) -> float | None:
        known = {k: v for k, v in self.extents.items() if v is not None}
        try:
            return eval_constant(e, known, self.params)
        except (KeyError, RecursionError):
            return None

    def concrete(self, e: sympy.Expr) -> sympy.Expr:
        """``e`` with every extent replaced by its value or defining expression."""
        return sympy.simplify(e.xreplace(self.extent_exprs))

    def tensor_dims(self, name: str) -> tuple[tuple[str, bool], ...]:
        """(rank, iterative) of each position of a global tensor (a part: its variables)."""
        if name in self.prog.parts:
            return tuple((r, False) for r in self.prog.parts[name])
        return tuple((d.rank, d.iterative) for d in self.c.tensor(name).dims)

    def tensor_dtype(self, name: str) -> str:
        if name in self.prog.parts:
            return "f32"
        return self.c.tensor(name).dtype.value

    # ------------------------------------------------------------ module
    def lower(self) -> Lowered:
        kernels: list[ka.FunctionDef] = []
        infos: list[KernelInfo] = []
        base = self.namer.fresh(self.c.name)
        launcher_name = base
        for k in self.s.kernels:
            fn_name = self.namer.fresh(f"{base}_{k.name}")
            fn, info = KernelScope(self, k, fn_name).builder.build()
            kernels.append(fn)
            infos.append(info)
        from einsumcc_triton.launch_code import build_launcher

        launcher = build_launcher(self, tuple(infos), launcher_name)
        helpers = [h for h in helper_defs() if h.name in self.helpers]
        body: list[ka.Stmt] = [*helpers, *kernels, launcher]
        module = ka.Module("", ("torch", "triton", "triton.language as tl"), tuple(body))
        return Lowered(module, tuple(infos), launcher_name)


def _resolve(defs: Mapping[sympy.Symbol, sympy.Expr]) -> dict[sympy.Symbol, sympy.Expr]:
    """Each extent in terms of free extents only (a definition that would cycle is dropped)."""
    out: dict[sympy.Symbol, sympy.Expr] = {}

    def visit(sym: sympy.Symbol, seen: frozenset[sympy.Symbol]) -> sympy.Expr:
        if sym in out:
            return out[sym]
        d = defs.get(sym)
        if d is None or sym in seen or any(s in seen | {sym} for s in d.free_symbols if s == sym):
            return sym
        subs = {}
        for s in d.free_symbols:
            if s in seen or s == sym:
                return sym
            subs[s] = visit(s, seen | {sym})
        value = sympy.simplify(d.xreplace(subs))
        if sym in value.free_symbols:
            return sym
        out[sym] = value
        return value

    for sym in defs:
        visit(sym, frozenset())
    return {k: v for k, v in out.items() if v != k}


def _same(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Structurally equal bounds (a loop between bounds not shown equal is kept: it may
    run zero times, which costs nothing)."""
    return bool(a == b or sympy.expand(a - b) == 0)


def lower_module(cascade: Cascade, schedule: Schedule, count_tiles: bool = False) -> Lowered:
    """The kernel AST of a cascade under a schedule.  Raises :class:`EinError` (with the
    position of the Einsum involved) for a construct the Triton backend cannot express."""
    try:
        return Lowering(cascade, schedule, count_tiles).lower()
    except UnsupportedError as exc:
        span = exc.node.span if exc.node is not None else None
        raise EinError.at(
            span,
            f"the Triton backend cannot compile this: {exc.message}",
            cascade.source,
            hint="einsumcc run --target oracle evaluates any valid cascade",
        ) from None
