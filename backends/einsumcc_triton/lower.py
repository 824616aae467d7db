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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import sympy

from einsumcc.diagnostics import EinError
from einsumcc.ir.bind import eval_constant
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Condition,
    Const,
    DType,
    Expr,
    ExtentRef,
    Neg,
    ParamRef,
    Reduce,
    Role,
    VarRef,
    free_variables,
    is_var_symbol,
    var_symbol,
    walk,
)
from einsumcc.schedule.contraction import Contraction, contraction
from einsumcc.schedule.nodes import Node, NodeKind, Program, ReadKind
from einsumcc.schedule.schedule import AxisRole, Kernel, Loop, Schedule
from einsumcc.schedule.tiles import segments
from einsumcc_triton import kernel_ast as ka

TL_DTYPE = {
    "f16": "float16",
    "bf16": "bfloat16",
    "f32": "float32",
    "f64": "float64",
    "i32": "int32",
    "i64": "int64",
    "bool": "int1",
}
SIG_DTYPE = {
    "f16": "fp16",
    "bf16": "bf16",
    "f32": "fp32",
    "f64": "fp64",
    "i32": "i32",
    "i64": "i64",
    "bool": "i1",
}
TORCH_DTYPE = {
    "f16": "float16",
    "bf16": "bfloat16",
    "f32": "float32",
    "f64": "float64",
    "i32": "int32",
    "i64": "int64",
    "bool": "bool",
}
IDENTITY = {"sum": 0.0, "max": -math.inf, "min": math.inf, "prod": 1.0}

# helper @triton.jit functions a module may need, by name
HELPERS = (
    "_ein_floordiv",
    "_ein_safe_div",
    "_ein_expm1",
    "_ein_tanh",
    "_ein_mul",
    "_ein_nanmax",
    "_ein_nanmin",
)
RESERVED = frozenset({"torch", "triton", "tl", *HELPERS})


@dataclass(frozen=True)
class KernelParam:
    """One argument of a generated kernel and where the launcher takes it from."""

    name: str
    kind: str  # ptr | stride | extent | param | constexpr | interp (running interpreted)
    tensor: str | None = None  # ptr, stride
    dim: int = 0  # stride: which dimension
    rank: str | None = None  # extent, and the rank of a stride's dimension
    value: int | None = None  # constexpr
    dtype: str = ""  # ptr: the element dtype (.ein spelling)


@dataclass(frozen=True)
class KernelInfo:
    name: str
    kernel: str  # the schedule's kernel name (k0, ...)
    params: tuple[KernelParam, ...]
    grid: tuple[tuple[str, int], ...]  # (rank, block) of each grid variable, fastest first
    num_warps: int


@dataclass(frozen=True)
class Lowered:
    module: ka.Module
    kernels: tuple[KernelInfo, ...]
    launcher: str


class UnsupportedError(Exception):
    """A construct the lowering cannot express (reported with the node's position)."""

    def __init__(self, node: Node | None, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


@dataclass(frozen=True)
class Val:
    """A labelled tile: Triton code, its register axes (canonical order) and its dtype."""

    code: ka.Expr
    axes: tuple[str, ...]
    dtype: str  # f16 bf16 f32 f64 i32 i1 (a mask); "lit" for a Python float literal


def _n(x: str) -> ka.Name:
    return ka.Name(x)


def _tl(*names: str) -> ka.Expr:
    return ka.attr("tl", *names)


def _call(fn: str, *args: ka.Expr, **kwargs: ka.Expr) -> ka.Call:
    return ka.call(fn, *args, **kwargs)


def _nan_reduction(op: str, jit: tuple[ka.Expr, ...]) -> ka.FunctionDef:
    """``_ein_nanmax``/``_ein_nanmin``: the reduction along an axis, NaN if any element is NaN
    (as numpy's max and min)."""
    x = _n("x")
    return ka.FunctionDef(
        f"_ein_nan{op}",
        (ka.Param("x"), ka.Param("axis", _tl("constexpr"))),
        (
            ka.Comment(f"{op} along axis, NaN if any element is NaN (as numpy's {op})"),
            ka.Assign(_n("m"), _call(f"tl.{op}", x, _n("axis"))),
            ka.Assign(
                _n("bad"),
                _call(
                    "tl.max",
                    _call("tl.where", _bin("!=", x, x), ka.Const(1), ka.Const(0)),
                    _n("axis"),
                ),
            ),
            ka.Return(_call("tl.where", _bin(">", _n("bad"), ka.Const(0)), _f(math.nan), _n("m"))),
        ),
        jit,
    )


def _bin(op: str, a: ka.Expr, b: ka.Expr) -> ka.Expr:
    return ka.BinOp(op, a, b)


def _f(v: float) -> ka.Const:
    return ka.Const(float(v))


@dataclass
class _Segment:
    """Where code is being emitted: program level, or a loop body of some kind."""

    loop: Loop | None = None
    partial: bool = True  # partial tiles: classified conditions and bounds are masked
    cache: dict[object, Val] = field(default_factory=dict)


class Lowering:
    def __init__(self, cascade: Cascade, schedule: Schedule) -> None:
        assert schedule.program is not None
        self.c = cascade
        self.s = schedule
        self.prog: Program = schedule.program
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
            emitter = _KernelEmitter(self, k, fn_name)
            fn, info = emitter.build()
            kernels.append(fn)
            infos.append(info)
        from einsumcc_triton.launch_code import build_launcher

        launcher = build_launcher(self, tuple(infos), launcher_name)
        helpers = [h for h in _helper_defs() if h.name in self.helpers]
        body: list[ka.Stmt] = [*helpers, *kernels, launcher]
        module = ka.Module("", ("torch", "triton", "triton.language as tl"), tuple(body))
        return Lowered(module, tuple(infos), launcher_name)


def _helper_defs() -> list[ka.FunctionDef]:
    """The module-level @triton.jit helpers (emitted only when used)."""
    jit = (ka.attr("triton", "jit"),)
    n, d, a, b, x = _n("n"), _n("d"), _n("a"), _n("b"), _n("x")
    q = _n("q")
    return [
        ka.FunctionDef(
            "_ein_floordiv",
            (ka.Param("n"), ka.Param("d")),
            (
                ka.Comment("floor(n / d) for d > 0, whichever way // rounds negative numbers"),
                ka.Assign(q, _bin("//", n, d)),
                ka.Return(
                    _call("tl.where", _bin(">", _bin("*", q, d), n), _bin("-", q, ka.Const(1)), q)
                ),
            ),
            jit,
        ),
        ka.FunctionDef(
            "_ein_safe_div",
            (ka.Param("a"), ka.Param("b")),
            (
                ka.Comment("a / b where b != 0, else 0 (EDGE's divide merge)"),
                ka.Assign(_n("nz"), _bin("!=", b, _f(0.0))),
                ka.Return(
                    _call(
                        "tl.where",
                        _n("nz"),
                        _bin("/", a, _call("tl.where", _n("nz"), b, _f(1.0))),
                        _f(0.0),
                    )
                ),
            ),
            jit,
        ),
        ka.FunctionDef(
            "_ein_expm1",
            (ka.Param("x"),),
            (
                ka.Comment("exp(x) - 1 without cancellation (Kahan)"),
                ka.Assign(_n("u"), _call("tl.exp", x)),
                ka.Assign(_n("um1"), _bin("-", _n("u"), _f(1.0))),
                ka.Assign(
                    _n("r"),
                    _call(
                        "tl.where",
                        _bin("==", _n("um1"), _f(0.0)),
                        x,
                        _bin("/", _bin("*", _n("um1"), x), _call("tl.log", _n("u"))),
                    ),
                ),
                ka.Return(_call("tl.where", _bin("==", _n("um1"), _f(-1.0)), _f(-1.0), _n("r"))),
            ),
            jit,
        ),
        ka.FunctionDef(
            "_ein_tanh",
            (ka.Param("x"),),
            (
                ka.Comment("tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|)), with the sign of x"),
                ka.Assign(_n("e"), _call("_ein_expm1", _bin("*", _f(-2.0), _call("tl.abs", x)))),
                ka.Assign(
                    _n("t"), _bin("/", ka.UnaryOp("-", _n("e")), _bin("+", _f(2.0), _n("e")))
                ),
                ka.Return(
                    _call("tl.where", _bin("<", x, _f(0.0)), ka.UnaryOp("-", _n("t")), _n("t"))
                ),
            ),
            jit,
        ),
        ka.FunctionDef(
            "_ein_mul",
            (ka.Param("a"), ka.Param("b")),
            (ka.Return(_bin("*", a, b)),),
            jit,
        ),
        *(_nan_reduction(op, jit) for op in ("max", "min")),
    ]


class _KernelEmitter:
    def __init__(self, low: Lowering, k: Kernel, fn_name: str) -> None:
        self.low = low
        self.c = low.c
        self.prog = low.prog
        self.k = k
        self.fn_name = fn_name
        self.names = low.namer.child()
        self.stack: list[list[ka.Stmt]] = [[]]
        self.params: dict[object, KernelParam] = {}
        self.order = [a.var for a in k.axes if a.lanes]
        self.lanes: dict[str, ka.Expr] = {}  # lane axis -> its 1-D index tile
        self.scalars: dict[str, ka.Expr] = {}  # scalar variable -> its value
        self.valid: dict[str, ka.Expr] = {}  # lane axis -> its validity mask (always needed)
        self.block: dict[str, ka.Expr] = {}  # lane axis -> BLOCK constexpr name
        self.program_syms: dict[str, ka.Expr] = {}  # lo.p, hi.p, idx.b
        self.env: dict[str, Val] = {}  # node values visible now
        self.state: dict[str, str] = {}  # carried recurrence state / accumulator variable names
        self.hoisted: dict[object, Val] = {}
        self.evaluated = set(k.nodes)
        for lp in k.loops:
            self.evaluated |= set(lp.nodes)
        self.loop_var: str | None = None
        self.seg = _Segment()

    # ------------------------------------------------------------ emission helpers
    @property
    def out(self) -> list[ka.Stmt]:
        return self.stack[-1]

    def emit(self, s: ka.Stmt) -> None:
        self.out.append(s)

    def assign(self, hint: str, value: ka.Expr) -> ka.Name:
        name = self.names.fresh(hint)
        self.emit(ka.Assign(_n(name), value))
        return _n(name)

    def param(self, key: object, hint: str, spec: KernelParam) -> ka.Name:
        if key not in self.params:
            name = self.names.fresh(hint)
            self.params[key] = KernelParam(
                name, spec.kind, spec.tensor, spec.dim, spec.rank, spec.value, spec.dtype
            )
        return _n(self.params[key].name)

    def extent(self, rank: str) -> ka.Expr:
        """A rank's extent in kernel code: a constexpr, or an int argument."""
        n = self.low.known(rank)
        if n is not None:
            return self.param(
                ("extent", rank), rank, KernelParam("", "constexpr", rank=rank, value=n)
            )
        return self.param(("extent", rank), rank, KernelParam("", "extent", rank=rank))

    def blocksize(self, var: str) -> ka.Expr:
        a = self.k.axis(var)
        return self.param(
            ("block", var),
            f"BLOCK_{a.rank}",
            KernelParam("", "constexpr", rank=a.rank, value=a.block),
        )

    def tensor_ptr(self, name: str) -> ka.Name:
        return self.param(
            ("ptr", name),
            f"{name}_ptr",
            KernelParam("", "ptr", tensor=name, dtype=self.low.tensor_dtype(name)),
        )

    def stride(self, name: str, dim: int) -> ka.Name:
        rank, _ = self.low.tensor_dims(name)[dim]
        return self.param(
            ("stride", name, dim),
            f"stride_{name}_{rank.lower()}",
            KernelParam("", "stride", tensor=name, dim=dim, rank=rank),
        )

    def error(self, node: Node | None, message: str) -> UnsupportedError:
        return UnsupportedError(node, message)

    # ------------------------------------------------------------ the kernel
    def build(self) -> tuple[ka.FunctionDef, KernelInfo]:
        self.setup_grid()
        self.setup_whole()
        self.seg = _Segment(None, True)
        for key in self.k.before:
            self.program_node(key)
        for lp in self.k.loops:
            self.emit_loop(lp)
        params = self.ordered_params()
        fn = ka.FunctionDef(
            self.fn_name,
            tuple(
                ka.Param(p.name, _tl("constexpr") if p.kind in ("constexpr", "interp") else None)
                for p in params
            ),
            tuple(self.stack[0]),
            (ka.attr("triton", "jit"),),
            comment=self.describe(),
        )
        grid = tuple((self.k.axis(v).rank, self.k.axis(v).block) for v in self.k.grid)
        return fn, KernelInfo(self.fn_name, self.k.name, params, grid, self.k.num_warps)

    def ordered_params(self) -> tuple[KernelParam, ...]:
        rank = {"ptr": 0, "stride": 1, "extent": 2, "param": 3, "constexpr": 4, "interp": 5}
        items = list(self.params.values())
        return tuple(sorted(items, key=lambda p: rank[p.kind]))

    def describe(self) -> str:
        lines = [
            f"kernel {self.k.name}: one program per "
            + (
                " x ".join(
                    f"{self.k.axis(v).block}-tile of {self.k.axis(v).rank}"
                    if self.k.axis(v).lanes
                    else f"index of {self.k.axis(v).rank}"
                    for v in self.k.grid
                )
                or "launch (a single program)"
            )
        ]
        for lp in self.k.loops:
            lines.append(
                f"loop {lp.number} over {lp.var}: "
                + ", ".join(lp.nodes)
                + (f" (recomputed: {', '.join(lp.recomputed)})" if lp.recomputed else "")
            )
        return "\n".join(lines)

    def setup_grid(self) -> None:
        self.grid_index: dict[str, ka.Expr] = {}
        if not self.k.grid:
            return
        rest: ka.Expr = self.assign("pid", _call("tl.program_id", ka.Const(0)))
        for i, v in enumerate(self.k.grid):
            a = self.k.axis(v)
            last = i == len(self.k.grid) - 1
            ext = self.extent(a.rank)
            if a.lanes:
                count: ka.Expr = _call("tl.cdiv", ext, self.blocksize(v))
            else:
                count = ext
            if last:
                idx = self.assign(f"{v}_tile" if a.lanes else v, rest)
            else:
                idx = self.assign(f"{v}_tile" if a.lanes else v, _bin("%", rest, count))
                rest = self.assign("rest", _bin("//", rest, count))
            self.grid_index[v] = idx
            if a.lanes:
                start = self.assign(f"{v}_start", _bin("*", idx, self.blocksize(v)))
                self.lanes[v] = self.assign(
                    f"offs_{v}",
                    _bin("+", start, _call("tl.arange", ka.Const(0), self.blocksize(v))),
                )
                self.program_syms[f"lo.{v}"] = start
                self.program_syms[f"hi.{v}"] = _bin(
                    "-", _call("tl.minimum", _bin("+", start, self.blocksize(v)), ext), ka.Const(1)
                )
                n = a.extent
                if n is None or n % a.block:
                    self.valid[v] = self.assign(f"{v}_ok", _bin("<", self.lanes[v], ext))
            else:
                self.scalars[v] = idx
                self.program_syms[f"idx.{v}"] = idx

    def setup_whole(self) -> None:
        for a in self.k.axes:
            if a.role is not AxisRole.WHOLE:
                continue
            if not a.lanes:
                self.scalars[a.var] = ka.Const(0)
                continue
            self.lanes[a.var] = self.assign(
                f"offs_{a.var}", _call("tl.arange", ka.Const(0), self.blocksize(a.var))
            )
            if a.extent is not None and a.extent < a.block:
                self.valid[a.var] = self.assign(
                    f"{a.var}_ok", _bin("<", self.lanes[a.var], self.extent(a.rank))
                )

    # ------------------------------------------------------------ values
    def expand(self, v: Val, axes: tuple[str, ...]) -> ka.Expr:
        if not v.axes or v.axes == axes:
            return v.code
        assert all(a in axes for a in v.axes), (v.axes, axes)
        return ka.Subscript(
            v.code, tuple(ka.Slice() if a in v.axes else ka.Const(None) for a in axes)
        )

    def union(self, *axes: tuple[str, ...]) -> tuple[str, ...]:
        present = {a for ax in axes for a in ax}
        return tuple(a for a in self.order if a in present)

    def compute(self, v: Val) -> Val:
        """``v`` in the compute dtype (fp32, or fp64 when the cascade has f64 tensors)."""
        if v.dtype in (self.low.compute, "lit"):
            return v
        return Val(
            ka.Call(ka.Attribute(v.code, "to"), (_tl(TL_DTYPE[self.low.compute]),)),
            v.axes,
            self.low.compute,
        )

    def binop(self, op: str, a: Val, b: Val) -> Val:
        a, b = self.compute(a), self.compute(b)
        axes = self.union(a.axes, b.axes)
        dtype = self.low.compute if "lit" not in (a.dtype, b.dtype) or a.dtype != b.dtype else "lit"
        return Val(_bin(op, self.expand(a, axes), self.expand(b, axes)), axes, dtype)

    def where(self, cond: Val, a: Val, b: Val) -> Val:
        a, b = self.compute(a), self.compute(b)
        axes = self.union(cond.axes, a.axes, b.axes)
        code = _call(
            "tl.where", self.expand(cond, axes), self.expand(a, axes), self.expand(b, axes)
        )
        return Val(code, axes, self.low.compute)

    def name_val(self, hint: str, v: Val) -> Val:
        if isinstance(v.code, ka.Name | ka.Const):
            return v
        return Val(self.assign(hint, v.code), v.axes, v.dtype)

    def shape(self, axes: tuple[str, ...]) -> ka.Expr:
        return ka.List(tuple(self.blocksize(a) for a in axes))

    def broadcast(self, v: Val, axes: tuple[str, ...]) -> Val:
        """``v`` with exactly ``axes`` (a loop-carried value must keep its shape)."""
        if v.axes == axes:
            return v
        code = self.expand(v, axes)
        if not axes:
            return Val(code, axes, v.dtype)
        return Val(_call("tl.broadcast_to", code, self.shape(axes)), axes, v.dtype)

    def full(self, axes: tuple[str, ...], value: float, dtype: str) -> ka.Expr:
        return _call(
            "tl.full",
            self.shape(axes) if axes else ka.List(()),
            _f(value) if dtype != "i32" else ka.Const(int(value)),
            _tl(TL_DTYPE[dtype]),
        )

    # ------------------------------------------------------------ indices
    def var_val(self, var: str) -> Val:
        if var in self.lanes:
            return Val(self.lanes[var], (var,), "i32")
        if var in self.scalars:
            return Val(self.scalars[var], (), "i32")
        raise self.error(None, f"rank variable {var} has no value in kernel {self.k.name}")

    def extent_code(self, sym: sympy.Symbol) -> ka.Expr:
        return self.extent(str(sym))

    def terms(self, expr: sympy.Expr) -> list[tuple[int, list[ka.Expr], str | None]]:
        """An affine index as terms ``coeff * extents... * var`` (var None: a constant)."""
        out: list[tuple[int, list[ka.Expr], str | None]] = []
        for term, coeff in sympy.expand(expr).as_coefficients_dict().items():
            if not coeff.is_Integer:
                raise self.error(None, f"index {expr} has a fractional coefficient")
            factors = sympy.Mul.make_args(term)
            vars_ = [f for f in factors if is_var_symbol(f)]
            if len(vars_) > 1 or any(not (f.is_Symbol or f == 1) for f in factors):
                raise self.error(None, f"index {expr} is not affine")
            extents = [self.extent_code(f) for f in factors if f.is_Symbol and not is_var_symbol(f)]
            out.append((int(coeff), extents, str(vars_[0]) if vars_ else None))
        return out

    def render_terms(
        self,
        terms: list[tuple[int, list[ka.Expr], str | None]],
        axes: tuple[str, ...],
        wide: bool = False,
    ) -> ka.Expr | None:
        """The sum of ``terms`` as a block over ``axes`` (any order); ``wide``: scalar
        variables are widened to int64 (per-program and per-iteration offsets)."""
        out: ka.Expr | None = None
        for coeff, extents, var in sorted(terms, key=lambda t: t[0] < 0):
            parts: list[ka.Expr] = []
            if var is not None:
                v = self.var_val(var)
                if v.axes:
                    parts.append(self.expand_to(v, axes))
                elif wide and not isinstance(v.code, ka.Const):
                    parts.append(_call("tl.cast", v.code, _tl("int64")))
                else:
                    parts.append(v.code)
            parts += extents
            if abs(coeff) != 1 or not parts:
                parts.insert(0, ka.Const(abs(coeff)))
            code = parts[0]
            for f in parts[1:]:
                code = _bin("*", code, f)
            if out is None:
                out = code if coeff > 0 else ka.UnaryOp("-", code)
            else:
                out = _bin("+" if coeff > 0 else "-", out, code)
        return out

    def split_terms(
        self, expr: sympy.Expr
    ) -> tuple[
        list[tuple[int, list[ka.Expr], str | None]], list[tuple[int, list[ka.Expr], str | None]]
    ]:
        """(terms that are the same for every lane, terms that vary along lane axes)."""
        scalar: list[tuple[int, list[ka.Expr], str | None]] = []
        lanes: list[tuple[int, list[ka.Expr], str | None]] = []
        for t in self.terms(expr):
            (lanes if t[2] is not None and t[2] in self.lanes else scalar).append(t)
        return scalar, lanes

    def index_axes(self, expr: sympy.Expr) -> tuple[str, ...]:
        return self.union(
            tuple(str(s) for s in expr.free_symbols if is_var_symbol(s) and str(s) in self.lanes)
        )

    def index_val(self, expr: sympy.Expr) -> Val:
        axes = self.index_axes(expr)
        code = self.render_terms(self.terms(expr), axes)
        return Val(code if code is not None else ka.Const(0), axes, "i32")

    def cond_val(self, c: Condition) -> Val:
        lhs = self.index_val(c.lhs)
        rhs = self.index_val(c.rhs)
        axes = self.union(lhs.axes, rhs.axes)
        return Val(_bin(c.op, self.expand(lhs, axes), self.expand(rhs, axes)), axes, "i1")

    def conj(self, parts: Iterable[Val]) -> Val | None:
        out: Val | None = None
        for p in parts:
            if out is None:
                out = p
                continue
            axes = self.union(out.axes, p.axes)
            out = Val(_bin("&", self.expand(out, axes), self.expand(p, axes)), axes, "i1")
        return out

    # ------------------------------------------------------------ masks
    def lane_valid(self, var: str) -> Val | None:
        """Validity of a lane axis here: padding of a block, the last tile of a stream."""
        if var == self.loop_var and self.k.axis(var).role is AxisRole.STREAM:
            code = self.stream_valid if self.seg.partial else None
            return Val(code, (var,), "i1") if code is not None else None
        code = self.valid.get(var)
        return Val(code, (var,), "i1") if code is not None else None

    def active(self, node: Node, conds: Iterable[Condition]) -> list[Condition]:
        lp = self.seg.loop
        if lp is None or self.seg.partial:
            return list(conds)
        classified = {(s.node, s.condition) for s in lp.tiles.classified}
        return [c for c in conds if (node.key, c) not in classified]

    def in_range(self, expr: sympy.Expr, rank: str, iterative: bool) -> bool:
        """The index is within ``[0, extent)`` for every point of its variables."""
        lo: sympy.Expr = sympy.Integer(0)
        hi: sympy.Expr = sympy.Integer(0)
        expr = sympy.expand(expr)
        for sym in expr.free_symbols:
            if not is_var_symbol(sym):
                continue
            coeff = expr.coeff(sym, 1)
            top = self.c.rank(self.c.var_ranks[str(sym)]).symbol - 1
            if coeff.is_nonnegative:
                hi, lo = hi + coeff * top, lo
            elif coeff.is_nonpositive:
                lo = lo + coeff * top
            else:
                return False
        const = expr.xreplace({s: 0 for s in expr.free_symbols if is_var_symbol(s)})
        lo, hi = lo + const, hi + const
        dim = self.c.rank(rank).symbol + (1 if iterative else 0)
        ok_lo = self.low.concrete(lo).is_nonnegative
        ok_hi = self.low.concrete(dim - 1 - hi).is_nonnegative
        return bool(ok_lo) and bool(ok_hi)

    # ------------------------------------------------------------ loads and stores
    def pointer(
        self, tensor: str, indices: tuple[sympy.Expr, ...], axes: tuple[str, ...]
    ) -> ka.Expr:
        """``tensor``'s base pointer plus the offsets of ``indices``, a block over ``axes``.
        Per-program and per-iteration offsets are 64-bit, lane offsets 32-bit."""
        ptr: ka.Expr = self.tensor_ptr(tensor)
        scalar: ka.Expr | None = None
        lanes: ka.Expr | None = None
        for pos, ix in enumerate(indices):
            st, lt = self.split_terms(ix)
            stride = self.stride(tensor, pos)
            s_code = self.render_terms(st, axes, wide=True)
            if s_code is not None and not (isinstance(s_code, ka.Const) and s_code.value == 0):
                term = _bin("*", s_code, stride)
                scalar = term if scalar is None else _bin("+", scalar, term)
            l_code = self.render_terms(lt, axes)
            if l_code is not None:
                term = _bin("*", l_code, stride)
                lanes = term if lanes is None else _bin("+", lanes, term)
        if scalar is not None:
            ptr = _bin("+", ptr, scalar)
        if lanes is not None:
            ptr = _bin("+", ptr, lanes)
        return ptr

    def expand_to(self, v: Val, axes: tuple[str, ...]) -> ka.Expr:
        """Like :meth:`expand`, but ``axes`` may be in a non-canonical order (a load's)."""
        if not v.axes or v.axes == axes:
            return v.code
        if tuple(a for a in axes if a in v.axes) != v.axes:
            if len(v.axes) != 2 or len(axes) != 2:
                raise self.error(None, f"cannot reorder axes {v.axes} to {axes}")
            return _call("tl.trans", v.code)
        return ka.Subscript(
            v.code, tuple(ka.Slice() if a in v.axes else ka.Const(None) for a in axes)
        )

    def access_mask(
        self, tensor: str, indices: tuple[sympy.Expr, ...], axes: tuple[str, ...]
    ) -> ka.Expr | None:
        parts: list[ka.Expr] = []
        for v in axes:
            lv = self.lane_valid(v)
            if lv is not None:
                parts.append(self.expand_to(lv, axes))
        dims = self.low.tensor_dims(tensor)
        for pos, ix in enumerate(indices):
            rank, iterative = dims[pos]
            if self.in_range(ix, rank, iterative):
                continue
            code = self.render_terms(self.terms(ix), axes) or ka.Const(0)
            bound: ka.Expr = self.extent(rank)
            if iterative:
                bound = _bin("+", bound, ka.Const(1))
            parts.append(_bin("&", _bin(">=", code, ka.Const(0)), _bin("<", code, bound)))
        if not parts:
            return None
        out = parts[0]
        for p in parts[1:]:
            out = _bin("&", out, p)
        return out

    def load(self, acc: Access, axes: tuple[str, ...] | None = None) -> Val:
        lane_vars = [
            str(s)
            for ix in acc.indices
            for s in ix.free_symbols
            if is_var_symbol(s) and str(s) in self.lanes
        ]
        if axes is None:
            axes = self.union(tuple(lane_vars))
        key = (acc.tensor, acc.indices, axes)
        loopy = self.loop_var is not None and any(
            str(s) == self.loop_var for ix in acc.indices for s in ix.free_symbols
        )
        if not loopy and key in self.hoisted:
            return self.hoisted[key]
        if loopy and key in self.seg.cache:
            return self.seg.cache[key]
        ptr = self.pointer(acc.tensor, acc.indices, axes)
        mask = self.access_mask(acc.tensor, acc.indices, axes)
        dtype = self.low.tensor_dtype(acc.tensor)
        kwargs: dict[str, ka.Expr] = {}
        if mask is not None:
            kwargs["mask"] = mask
            kwargs["other"] = ka.Const(0) if dtype in ("i32", "i64", "bool") else _f(0.0)
        code = self.assign(acc.tensor.replace(".", "_"), _call("tl.load", ptr, **kwargs))
        v = Val(code, axes, "i32" if dtype in ("i64", "bool") else dtype)
        if dtype == "bool":
            v = Val(code, axes, "i1")
        if loopy:
            self.seg.cache[key] = v
        else:
            self.hoisted[key] = v
        return v

    def store(self, tensor: str, indices: tuple[sympy.Expr, ...], value: Val) -> None:
        axes = self.union(
            tuple(
                str(s)
                for ix in indices
                for s in ix.free_symbols
                if is_var_symbol(s) and str(s) in self.lanes
            )
        )
        ptr = self.pointer(tensor, indices, axes)
        mask = self.access_mask(tensor, indices, axes)
        present = {str(s) for ix in indices for s in ix.free_symbols}
        # a tensor without some grid variable is the same in every program along it: the
        # first program writes it
        only: ka.Expr | None = None
        for v in self.k.grid:
            if v not in present:
                cond = _bin("==", self.grid_index[v], ka.Const(0))
                only = cond if only is None else _bin("&", only, cond)
        dtype = self.low.tensor_dtype(tensor)
        val = self.compute(value)
        code = self.expand(self.broadcast(val, axes) if val.axes != axes and axes else val, axes)
        if dtype == "bool":
            code = _bin("!=", code, _f(0.0))
        elif dtype != self.low.compute:
            code = ka.Call(ka.Attribute(code, "to"), (_tl(TL_DTYPE[dtype]),))
        kwargs = {"mask": mask} if mask is not None else {}
        stmt = ka.ExprStmt(_call("tl.store", ptr, code, **kwargs))
        self.emit(ka.If(only, (stmt,)) if only is not None else stmt)

    # ------------------------------------------------------------ expressions
    def fold(self, e: Expr) -> float | None:
        if any(isinstance(n, Access | VarRef) for n in _walk(e)):
            return None
        return self.low.constant(e)

    def expr(self, e: Expr, reader: Node) -> Val:
        value = self.fold(e)
        if value is not None:
            return Val(_f(value), (), "lit")
        if isinstance(e, Const):
            return Val(_f(float(e.value)), (), "lit")
        if isinstance(e, ParamRef | ExtentRef):
            return self.runtime_scalar(e)
        if isinstance(e, VarRef):
            v = self.var_val(e.var)
            if not v.axes:
                return Val(
                    _call("tl.cast", v.code, _tl(TL_DTYPE[self.low.compute])), (), self.low.compute
                )
            return Val(
                ka.Call(ka.Attribute(v.code, "to"), (_tl(TL_DTYPE[self.low.compute]),)),
                v.axes,
                self.low.compute,
            )
        if isinstance(e, Access):
            return self.read(e, reader)
        if isinstance(e, Neg):
            x = self.compute(self.expr(e.operand, reader))
            return Val(ka.UnaryOp("-", x.code), x.axes, x.dtype)
        if isinstance(e, Binary):
            return self.binop(e.op, self.expr(e.lhs, reader), self.expr(e.rhs, reader))
        if isinstance(e, Call):
            return self.call(e, reader)
        assert isinstance(e, Reduce)
        raise self.error(reader, "a reduction inside an expression was not split out")

    def runtime_scalar(self, e: ParamRef | ExtentRef) -> Val:
        """A param or extent used as a value that is only known at run time: an fp argument
        the launcher computes."""
        if isinstance(e, ParamRef):
            name = self.param(("param", e.name), e.name, KernelParam("", "param", tensor=e.name))
        else:
            name = self.param(
                ("value", e.rank), f"{e.rank}_value", KernelParam("", "param", rank=e.rank)
            )
        return Val(name, (), self.low.compute)

    def call(self, e: Call, reader: Node) -> Val:
        args = [self.compute(self.expr(a, reader)) for a in e.args]
        axes = self.union(*(a.axes for a in args))
        codes = [self.expand(a, axes) for a in args]
        nan = {"propagate_nan": _tl("PropagateNan", "ALL")}
        fn = e.fn
        if fn in ("exp", "log", "sqrt", "rsqrt", "sigmoid", "abs"):
            code: ka.Expr = _call(f"tl.{fn}", *codes)
        elif fn == "tanh":
            self.low.helpers |= {"_ein_tanh", "_ein_expm1"}
            code = _call("_ein_tanh", *codes)
        elif fn == "relu":
            code = _call("tl.maximum", codes[0], _f(0.0), **nan)
        elif fn in ("max", "min"):
            code = _call("tl.maximum" if fn == "max" else "tl.minimum", codes[0], codes[1], **nan)
        elif fn == "safe_div":
            self.low.helpers.add("_ein_safe_div")
            code = _call("_ein_safe_div", codes[0], codes[1])
        else:
            raise self.error(reader, f"function {fn}() has no Triton lowering")
        return Val(code, axes, self.low.compute)

    def read(self, acc: Access, reader: Node) -> Val:
        p = self.prog.producer(acc.tensor)
        if p is None or p.key not in self.local_keys():
            return self.load(acc)
        kind = self.prog.read_kind(acc, reader)
        if kind is ReadKind.INIT:
            return self.init_value(p)
        if kind is ReadKind.CARRIED:
            name = self.state[p.key]
            return Val(_n(name), self.state_axes(p), self.low.compute)
        if p.key not in self.env:
            raise self.error(reader, f"{acc.tensor} is read before it is computed")
        return self.env[p.key]

    def local_keys(self) -> set[str]:
        return self.evaluated

    def init_value(self, p: Node) -> Val:
        inits = self.c.inits_of(p.key)
        if not inits:
            raise self.error(p, f"{p.key} has no init")
        return self.expr(inits[0].value, p)

    def state_axes(self, p: Node) -> tuple[str, ...]:
        return self.union(tuple(v for v in p.variables if v in self.lanes and v != self.loop_var))

    # ------------------------------------------------------------ nodes
    def fill_of(self, n: Node) -> Val:
        t = self.c.tensor(n.key)
        return self.expr(t.fill, n)

    def apply_fill(self, n: Node, v: Val) -> Val:
        conds = [self.cond_val(c) for c in self.active(n, n.guard)]
        mask = self.conj(conds)
        if n.survive is not None:
            if n.survive in self.local_keys():
                s = self.env[n.survive]
            else:
                sv = self.prog.node(n.survive)
                s = self.load(sv.output)
            alive = Val(_bin(">", s.code, ka.Const(0)), s.axes, "i1")
            mask = alive if mask is None else self.conj([mask, alive])
        if mask is None:
            return v
        return self.where(mask, v, self.fill_of(n))

    def node_value(
        self, n: Node
    ) -> tuple[Val | None, tuple[ka.Expr, ka.Expr, dict[str, ka.Expr]] | None]:
        """The node's value here: per-tile value, or the partial result an accumulator adds."""
        if n.kind is NodeKind.MAP:
            return self.apply_fill(n, self.expr(n.body, n)), None
        if n.kind is NodeKind.SURVIVE:
            return self.survive(n), None
        v, dot = self.reduce(n)
        accumulates = self.loop_var is not None and self.loop_var in n.reduced
        if not accumulates and n.top:
            v = self.apply_fill(n, v)
        return v, dot

    def survive(self, n: Node) -> Val:
        parts = [self.cond_val(c) for c in self.active(n, n.mask)]
        reduced_lanes = [v for v in n.reduced if v in self.lanes]
        for v in reduced_lanes:
            lv = self.lane_valid(v)
            if lv is not None:
                parts.append(lv)
        mask = self.conj(parts)
        axes = self.union(tuple(v for v in n.space if v in self.lanes))
        if mask is None:
            ind = (
                Val(self.full(axes, 1, "i32"), axes, "i32") if axes else Val(ka.Const(1), (), "i32")
            )
        else:
            code = (
                _call("tl.where", self.expand(mask, axes), ka.Const(1), ka.Const(0))
                if axes
                else _call("tl.where", mask.code, ka.Const(1), ka.Const(0))
            )
            if mask.axes != axes and axes:
                code = _call("tl.broadcast_to", code, self.shape(axes))
            ind = Val(code, axes, "i32")
        for v in sorted(reduced_lanes, key=lambda a: -ind.axes.index(a)):
            i = ind.axes.index(v)
            ind = Val(
                _call("tl.max", ind.code, ka.Const(i)), tuple(a for a in ind.axes if a != v), "i32"
            )
        return self.name_val(n.key.replace(".", "_"), ind)

    def reduce(self, n: Node) -> tuple[Val, tuple[ka.Expr, ka.Expr, dict[str, ka.Expr]] | None]:
        lane_blocks = {v: self.k.axis(v).block for v in self.lanes}
        con = contraction(n, lane_blocks)
        if con is not None:
            return self.dot(n, con)
        body = self.compute(self.expr(n.body, n))
        reduced_lanes = [v for v in n.reduced if v in self.lanes]
        op = n.op or "sum"
        parts = [self.cond_val(c) for c in self.active(n, n.mask)]
        for v in reduced_lanes:
            lv = self.lane_valid(v)
            if lv is not None:
                parts.append(lv)
        axes = self.union(body.axes, tuple(reduced_lanes))
        if body.axes != axes:
            body = Val(
                _call("tl.broadcast_to", self.expand(body, axes), self.shape(axes)),
                axes,
                body.dtype,
            )
        mask = self.conj(parts)
        if mask is not None:
            body = self.where(mask, body, Val(_f(IDENTITY[op]), (), "lit"))
        # scalar reduced variables that the loop does not carry (extent-1 whole ranks) are a
        # single point; the loop variable is accumulated by the caller
        val = body
        nan_free = self.nan_free(n.body, n)
        for v in sorted(reduced_lanes, key=lambda a: -val.axes.index(a)):
            i = ka.Const(val.axes.index(v))
            if op == "sum":
                code: ka.Expr = _call("tl.sum", val.code, i)
            elif op in ("max", "min"):
                if nan_free:
                    code = _call(f"tl.{op}", val.code, i)
                else:
                    helper = "_ein_nanmax" if op == "max" else "_ein_nanmin"
                    self.low.helpers.add(helper)
                    code = _call(helper, val.code, i)
            else:
                self.low.helpers.add("_ein_mul")
                code = _call("tl.reduce", val.code, i, _n("_ein_mul"))
            val = Val(code, tuple(a for a in val.axes if a != v), val.dtype)
        return self.name_val(n.key.replace(".", "_"), val), None

    def nan_free(self, e: Expr, reader: Node) -> bool:
        """``e`` cannot be NaN (for finite inputs): max/min reductions need no NaN check."""
        return _nan_class(self, e, reader) != "nan"

    def operand(self, e: Expr, order: tuple[str, str], reader: Node) -> Val:
        if isinstance(e, Access):
            p = self.prog.producer(e.tensor)
            if p is None or p.key not in self.local_keys():
                return self.load(e, order)
        v = self.expr(e, reader)
        if v.axes == order:
            return v
        assert set(v.axes) == set(order), (v.axes, order)
        return Val(_call("tl.trans", v.code), order, v.dtype)

    def dot(
        self, n: Node, con: Contraction
    ) -> tuple[Val, tuple[ka.Expr, ka.Expr, dict[str, ka.Expr]] | None]:
        """``con`` as a tl.dot of a (r, k) and a (k, c) tile, r before c in the canonical
        order; returns (value, None), or (None, operands) when an accumulator can take
        ``tl.dot(a, b, acc)`` directly."""
        r, c = (
            (con.i, con.j) if self.order.index(con.i) < self.order.index(con.j) else (con.j, con.i)
        )
        k = con.k
        x_expr, y_expr = (con.a, con.b) if r in free_variables(con.a) else (con.b, con.a)
        x = self.operand(x_expr, (r, k), n)
        y = self.operand(y_expr, (k, c), n)
        # zero the contracted lanes that are not points (padding, partial tiles) and the
        # points a filter removes, in the operand that holds the condition's axes
        masks_x: list[Val] = []
        masks_y: list[Val] = []
        kv = self.lane_valid(k)
        loaded_x = isinstance(x_expr, Access) and _is_load(self, x_expr)
        loaded_y = isinstance(y_expr, Access) and _is_load(self, y_expr)
        if kv is not None:
            if not loaded_x:
                masks_x.append(kv)
            if not loaded_y:
                masks_y.append(kv)
        for cond in self.active(n, n.mask):
            cv = self.cond_val(cond)
            (masks_x if set(cv.axes) <= set(x.axes) else masks_y).append(cv)
        mx = self.conj(masks_x)
        my = self.conj(masks_y)
        if mx is not None:
            x = Val(_call("tl.where", self.expand_to(mx, x.axes), x.code, _f(0.0)), x.axes, x.dtype)
        if my is not None:
            y = Val(_call("tl.where", self.expand_to(my, y.axes), y.code, _f(0.0)), y.axes, y.dtype)
        half = ("f16", "bf16")
        kwargs: dict[str, ka.Expr] = {}
        if x.dtype in half and y.dtype == x.dtype:
            pass
        elif x.dtype in half and y.dtype not in half and not loaded_y:
            y = Val(ka.Call(ka.Attribute(y.code, "to"), (_tl(TL_DTYPE[x.dtype]),)), y.axes, x.dtype)
        elif y.dtype in half and x.dtype not in half and not loaded_x:
            x = Val(ka.Call(ka.Attribute(x.code, "to"), (_tl(TL_DTYPE[y.dtype]),)), x.axes, y.dtype)
        else:
            x, y = self.compute(x), self.compute(y)
            if self.low.compute == "f32":
                kwargs["input_precision"] = ka.Const("tf32x3")
        x = self.name_val(f"{n.key}_a".replace(".", "_"), x)
        y = self.name_val(f"{n.key}_b".replace(".", "_"), y)
        if x.dtype == "bf16" and y.dtype == "bf16":
            # Triton 3.9's interpreter multiplies bf16 tiles wrongly (it reads their bits):
            # interpreted runs upcast them, compiled ones keep bf16 tensor cores
            x, y = self.name_val(f"{n.key}_a", x), self.name_val(f"{n.key}_b", y)
            flag = self.param(("interp",), "INTERPRETED", KernelParam("", "interp"))
            up = [
                ka.Assign(v.code, ka.Call(ka.Attribute(v.code, "to"), (_tl("float32"),)))
                for v in (x, y)
            ]
            self.emit(ka.If(flag, tuple(up)))
        plain = not con.outer and con.sign == 1.0
        accumulates = self.loop_var is not None and self.loop_var in n.reduced
        if plain and accumulates:
            return Val(ka.Const(None), (r, c), self.low.compute), (x.code, y.code, kwargs)
        val = Val(_call("tl.dot", x.code, y.code, **kwargs), (r, c), self.low.compute)
        for f in con.outer:
            fv = self.expr(f.expr, n)
            val = self.binop("/" if f.inverse else "*", val, fv)
        if con.sign != 1.0:
            val = Val(ka.UnaryOp("-", val.code), val.axes, val.dtype)
        return self.name_val(n.key.replace(".", "_"), val), None

    def program_node(self, key: str) -> None:
        n = self.prog.node(key)
        v, _ = self.node_value(n)
        assert v is not None
        self.env[key] = self.name_val(key.replace(".", "_"), v)
        if key in self.k.writes:
            self.store(n.output.tensor, n.output.indices, self.env[key])

    # ------------------------------------------------------------ loops
    def emit_loop(self, lp: Loop) -> None:
        ax = self.k.axis(lp.var)
        self.loop_var = lp.var
        self.emit(ka.Comment(f"loop {lp.number}: pass {lp.number} over {ax.rank}"))
        self.hoist(lp)
        # accumulators and recurrence states
        for key in lp.accumulators:
            n = self.prog.node(key)
            axes = self.union(tuple(v for v in n.variables if v in self.lanes))
            if n.kind is NodeKind.SURVIVE:
                zero = self.full(axes, 0, "i32")
            else:
                zero = self.full(axes, IDENTITY[n.op or "sum"], self.low.compute)
            self.state[key] = self.names.fresh(f"acc_{key}".replace(".", "_"))
            self.emit(ka.Assign(_n(self.state[key]), zero))
        for key in lp.carried:
            n = self.prog.node(key)
            axes = self.state_axes(n)
            init = self.compute(self.init_value(n))
            if init.dtype == "lit" and isinstance(init.code, ka.Const):
                assert isinstance(init.code.value, float)
                code: ka.Expr = self.full(axes, init.code.value, self.low.compute)
            else:
                code = self.broadcast(init, axes).code
            self.state[key] = self.names.fresh(f"{key}_cur")
            self.emit(ka.Assign(_n(self.state[key]), code))
            if key in self.k.writes and key not in lp.recomputed:
                x = var_symbol(lp.var)
                idx = tuple(
                    ix.xreplace({x: -1}) if x in ix.free_symbols else ix for ix in n.output.indices
                )
                self.seg = _Segment(None, True)
                self.store(
                    key,
                    tuple(sympy.expand(i) for i in idx),
                    Val(_n(self.state[key]), axes, self.low.compute),
                )
        segs = segments(self.k, lp, self.low.extents)
        var_name = self.names.fresh(lp.var if ax.role is AxisRole.ITERATE else f"{lp.var}_tile")
        start, full_lo, full_hi, end = (
            self.sym(e) for e in (segs.start, segs.full_lo, segs.full_hi, segs.end)
        )
        needs_partial = bool(lp.tiles.classified) or lp.tiles.boundary
        if not needs_partial:
            self.emit(
                ka.For(var_name, start, end, self.body(lp, var_name, partial=True, full=True))
            )
        else:
            if lp.tiles.proof:
                self.emit(ka.Comment(lp.tiles.proof))
            lo = (
                full_lo
                if isinstance(full_lo, ka.Const)
                else self.assign(f"{lp.var}_full_lo", full_lo)
            )
            hi = self.assign(f"{lp.var}_full_hi", full_hi)
            if not _same(segs.start, segs.full_lo):
                self.emit(ka.Comment("partial tiles (masked)"))
                self.emit(ka.For(var_name, start, lo, self.body(lp, var_name, partial=True)))
            self.emit(ka.Comment("full tiles (no mask code)"))
            self.emit(ka.For(var_name, lo, hi, self.body(lp, var_name, partial=False)))
            if not _same(segs.full_hi, segs.end):
                self.emit(ka.Comment("partial tiles (masked)"))
                self.emit(ka.For(var_name, hi, end, self.body(lp, var_name, partial=True)))
        self.loop_var = None
        self.seg = _Segment(None, True)
        # results of the loop
        for key in lp.accumulators:
            n = self.prog.node(key)
            axes = self.union(tuple(v for v in n.variables if v in self.lanes))
            v = Val(
                _n(self.state[key]), axes, "i32" if n.kind is NodeKind.SURVIVE else self.low.compute
            )
            if n.top and n.kind is NodeKind.REDUCE:
                v = self.name_val(key, self.apply_fill(n, v))
            self.env[key] = v
            if key in self.k.writes and key not in lp.recomputed:
                self.store(n.output.tensor, n.output.indices, v)
        for key in lp.carried:
            n = self.prog.node(key)
            self.env[key] = Val(_n(self.state[key]), self.state_axes(n), self.low.compute)
        for key in lp.after:
            self.program_node(key)

    def hoist(self, lp: Loop) -> None:
        """Load the tiles a loop reads that do not depend on the loop variable, once."""
        x = var_symbol(lp.var)
        for key in lp.nodes:
            n = self.prog.node(key)
            for acc in n.reads:
                p = self.prog.producer(acc.tensor)
                if p is not None and p.key in self.local_keys():
                    continue
                if any(x in ix.free_symbols for ix in acc.indices):
                    continue
                con = contraction(n, {v: self.k.axis(v).block for v in self.lanes})
                if con is not None and acc in (con.a, con.b):
                    lanes_a = {
                        str(s)
                        for ix in acc.indices
                        for s in ix.free_symbols
                        if str(s) in self.lanes
                    }
                    r, c = (
                        (con.i, con.j)
                        if self.order.index(con.i) < self.order.index(con.j)
                        else (con.j, con.i)
                    )
                    order = (r, con.k) if r in lanes_a else (con.k, c)
                    self.load(acc, order)
                else:
                    self.load(acc)

    def body(
        self, lp: Loop, var_name: str, partial: bool, full: bool = False
    ) -> tuple[ka.Stmt, ...]:
        self.stack.append([])
        self.seg = _Segment(lp, partial and not full)
        if full:
            self.seg.partial = bool(lp.tiles.classified) or lp.tiles.boundary
        saved_env = dict(self.env)
        ax = self.k.axis(lp.var)
        self.stream_valid: ka.Expr | None = None
        if ax.role is AxisRole.STREAM:
            offs = self.assign(
                f"offs_{lp.var}",
                _bin(
                    "+",
                    _bin("*", _n(var_name), self.blocksize(lp.var)),
                    _call("tl.arange", ka.Const(0), self.blocksize(lp.var)),
                ),
            )
            self.lanes[lp.var] = offs
            if lp.tiles.boundary and self.seg.partial:
                self.stream_valid = self.assign(
                    f"{lp.var}_ok", _bin("<", offs, self.extent(ax.rank))
                )
        else:
            self.scalars[lp.var] = _n(var_name)
        nexts: dict[str, Val] = {}
        for key in lp.nodes:
            n = self.prog.node(key)
            v, dot = self.node_value(n)
            if key in lp.accumulators:
                self.accumulate(n, v, dot)
                continue
            assert v is not None
            v = self.name_val(key.replace(".", "_"), v)
            self.env[key] = v
            if key in lp.carried:
                nexts[key] = v
            if key in lp.stores:
                self.store(n.output.tensor, n.output.indices, v)
        for key, v in nexts.items():
            axes = self.state_axes(self.prog.node(key))
            self.emit(ka.Assign(_n(self.state[key]), self.broadcast(self.compute(v), axes).code))
        self.env = saved_env
        if ax.role is AxisRole.STREAM:
            self.lanes.pop(lp.var, None)
        else:
            self.scalars.pop(lp.var, None)
        return tuple(self.stack.pop())

    def accumulate(
        self, n: Node, v: Val | None, dot: tuple[ka.Expr, ka.Expr, dict[str, ka.Expr]] | None
    ) -> None:
        name = _n(self.state[n.key])
        axes = self.union(tuple(x for x in n.variables if x in self.lanes))
        if dot is not None:
            a, b, kwargs = dot
            self.emit(ka.Assign(name, _call("tl.dot", a, b, name, **kwargs)))
            return
        assert v is not None
        acc = Val(name, axes, "i32" if n.kind is NodeKind.SURVIVE else self.low.compute)
        part = v if n.kind is NodeKind.SURVIVE else self.compute(v)
        op = "max" if n.kind is NodeKind.SURVIVE else (n.op or "sum")
        full_axes = self.union(acc.axes, part.axes)
        ea, ep = self.expand(acc, full_axes), self.expand(part, full_axes)
        if op == "sum":
            code: ka.Expr = _bin("+", ea, ep)
        elif op == "prod":
            code = _bin("*", ea, ep)
        else:
            fn = "tl.maximum" if op == "max" else "tl.minimum"
            kw = {} if n.kind is NodeKind.SURVIVE else {"propagate_nan": _tl("PropagateNan", "ALL")}
            code = _call(fn, ea, ep, **kw)
        if full_axes != acc.axes:
            code = _call("tl.broadcast_to", code, self.shape(acc.axes))
        self.emit(ka.Assign(name, code))

    # ------------------------------------------------------------ sympy -> code
    def sym(self, e: sympy.Expr) -> ka.Expr:
        if e.is_Integer:
            return ka.Const(int(e))
        if e.is_Symbol:
            name = str(e)
            if name in self.program_syms:
                return self.program_syms[name]
            return self.extent(name)
        if isinstance(e, sympy.Add):
            terms = list(e.args)
            out = self.sym(terms[0])
            for t in terms[1:]:
                coeff, rest = t.as_coeff_Mul()
                if coeff.is_negative:
                    out = _bin("-", out, self.sym(-t))
                else:
                    out = _bin("+", out, self.sym(t))
            return out
        if isinstance(e, sympy.Mul):
            coeff, rest = e.as_coeff_Mul()
            if coeff.is_Rational and not coeff.is_Integer:
                raise self.error(None, f"loop bound {e} is not an integer expression")
            if coeff == -1:
                return ka.UnaryOp("-", self.sym(rest))
            factors = [self.sym(f) for f in sympy.Mul.make_args(rest)]
            out = factors[0]
            for f in factors[1:]:
                out = _bin("*", out, f)
            if coeff != 1:
                out = _bin("*", ka.Const(int(coeff)), out)
            return out
        if isinstance(e, sympy.floor | sympy.ceiling):
            num, den = e.args[0].as_numer_denom()
            self.low.helpers.add("_ein_floordiv")
            if isinstance(e, sympy.floor):
                return _call("_ein_floordiv", self.sym(num), self.sym(den))
            return ka.UnaryOp("-", _call("_ein_floordiv", self.sym(-num), self.sym(den)))
        if isinstance(e, sympy.Max | sympy.Min):
            fn = "tl.maximum" if isinstance(e, sympy.Max) else "tl.minimum"
            args = [self.sym(a) for a in e.args]
            out = args[0]
            for a in args[1:]:
                out = _call(fn, out, a)
            return out
        raise self.error(None, f"cannot render loop bound {e}")


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


def _walk(e: Expr) -> Iterable[Expr]:
    return walk(e)


def _is_load(em: _KernelEmitter, e: Access) -> bool:
    p = em.prog.producer(e.tensor)
    return p is None or p.key not in em.local_keys()


def _nan_class(em: _KernelEmitter, e: Expr, reader: Node) -> str:
    """fin (finite), inf (maybe infinite, never NaN) or nan, assuming finite inputs."""
    if isinstance(e, Const):
        v = float(e.value)
        return "nan" if math.isnan(v) else ("inf" if math.isinf(v) else "fin")
    if isinstance(e, ParamRef | ExtentRef | VarRef):
        v2 = em.low.constant(e) if not isinstance(e, VarRef) else 0.0
        if v2 is None:
            return "nan"
        return "nan" if math.isnan(v2) else ("inf" if math.isinf(v2) else "fin")
    if isinstance(e, Access):
        p = em.prog.producer(e.tensor)
        if p is None:
            return "fin" if em.c.tensor(e.tensor).role is Role.INPUT else "nan"
        if p.key not in em.local_keys():
            return "nan"
        return _node_class(em, p)
    if isinstance(e, Neg):
        return _nan_class(em, e.operand, reader)
    if isinstance(e, Binary):
        a, b = _nan_class(em, e.lhs, reader), _nan_class(em, e.rhs, reader)
        if "nan" in (a, b):
            return "nan"
        if e.op in "+-":
            return "fin" if a == b == "fin" else ("inf" if "fin" in (a, b) else "nan")
        if e.op == "*":
            return "fin" if a == b == "fin" else "nan"
        return "nan"
    if isinstance(e, Call):
        cls = [_nan_class(em, x, reader) for x in e.args]
        if "nan" in cls:
            return "nan"
        if e.fn in ("max", "min", "abs", "relu"):
            return "fin" if all(c == "fin" for c in cls) else "inf"
        if e.fn in ("tanh", "sigmoid"):
            return "fin"
        if e.fn == "exp":
            return "inf"
        return "nan"
    return "nan"


def _node_class(em: _KernelEmitter, n: Node) -> str:
    if n.kind is NodeKind.SURVIVE:
        return "fin"
    if n.iterative_variable is not None:
        return "nan"
    body = _nan_class(em, n.body, n)
    if n.kind is NodeKind.REDUCE and n.op == "sum" and body != "fin":
        body = "nan"
    if n.top and (n.guard or n.survive):
        fill = em.low.constant(em.c.tensor(n.key).fill)
        if fill is None or math.isnan(fill):
            return "nan"
        if math.isinf(fill) and body == "fin":
            return "inf"
    return body


def lower_module(cascade: Cascade, schedule: Schedule) -> Lowered:
    """The kernel AST of a cascade under a schedule.  Raises :class:`EinError` (with the
    position of the Einsum involved) for a construct the Triton backend cannot express."""
    try:
        return Lowering(cascade, schedule).lower()
    except UnsupportedError as exc:
        span = exc.node.span if exc.node is not None else None
        raise EinError.at(
            span,
            f"the Triton backend cannot compile this: {exc.message}",
            cascade.source,
            hint="einsumcc run --target oracle evaluates any valid cascade",
        ) from None
