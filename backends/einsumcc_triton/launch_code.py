"""The generated launcher: the one host function of a module.

It takes the cascade's inputs as torch tensors in declaration order (each in the rank order
its declaration gives), checks their dtypes, devices and shapes, reads every extent that is
not a compile-time constant from the shapes, allocates the outputs (and any scratch tensor
that a later kernel reads), launches the kernels in order and returns the outputs: the tensor
itself for one output, a tuple in declaration order for several.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy

from einsumcc.diagnostics import EinError
from einsumcc.ir.nodes import Binary, Call, Const, Expr, ExtentRef, Neg, ParamRef
from einsumcc_triton import kernel_ast as ka

if TYPE_CHECKING:
    from einsumcc_triton.kernel_info import KernelInfo
    from einsumcc_triton.lower import Lowering

# keyword arguments of a Triton launch: never used as kernel parameter names
LAUNCH_KEYWORDS = frozenset(
    {
        "grid",
        "warmup",
        "num_warps",
        "num_stages",
        "num_ctas",
        "maxnreg",
        "enable_fp_fusion",
        "launch_cooperative_grid",
        "launch_pdl",
        "stream",
        "device",
        "debug",
    }
)


def _n(x: str) -> ka.PyName:
    return ka.PyName(x)


def _s(x: str) -> ka.Literal:
    return ka.Literal(x)


def _cat(*parts: ka.Expr) -> ka.Expr:
    merged: list[ka.Expr] = []
    for p in parts:
        last = merged[-1] if merged else None
        if (
            isinstance(p, ka.Literal)
            and isinstance(p.value, str)
            and isinstance(last, ka.Literal)
            and isinstance(last.value, str)
        ):
            merged[-1] = ka.Literal(last.value + p.value)
        else:
            merged.append(p)
    out = merged[0]
    for p in merged[1:]:
        out = ka.BinaryOp("+", out, p)
    return out


def _str(x: ka.Expr) -> ka.Expr:
    return ka.call("str", x)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


class _Launcher:
    def __init__(self, low: Lowering, infos: tuple[KernelInfo, ...], name: str) -> None:
        self.low = low
        self.c = low.c
        self.infos = infos
        self.name = name
        self.names = low.namer.child()
        self.body: list[ka.Stmt] = []
        self.args: dict[str, str] = {}  # input tensor -> parameter name
        self.extent: dict[str, ka.Expr] = {}  # rank -> python expression
        self.tensors: dict[str, str] = {}  # any tensor -> local variable

    def emit(self, s: ka.Stmt) -> None:
        self.body.append(s)

    def fail(self, exc: str, *message: ka.Expr) -> ka.Raise:
        return ka.Raise(ka.call(exc, _cat(_s(f"{self.c.name}: "), *message)))

    # ------------------------------------------------------------ inputs
    def build(self) -> ka.FunctionDef:
        from einsumcc_triton.kernel_info import TORCH_DTYPE

        inputs = self.c.inputs
        for t in inputs:
            self.args[t.name] = self.names.fresh(t.name)
            self.tensors[t.name] = self.args[t.name]
        self.emit(ka.Comment("check the inputs"))
        for t in inputs:
            x = _n(self.args[t.name])
            dims = ", ".join(str(d) for d in t.dims)
            ndim = _plural(len(t.dims), "dimension")
            self.emit(
                ka.If(
                    ka.UnaryOp("not", ka.call("isinstance", x, ka.attr("torch", "Tensor"))),
                    (
                        self.fail(
                            "TypeError",
                            _s(f"{t.name} must be a torch.Tensor, got "),
                            _str(ka.call("type", x)),
                        ),
                    ),
                )
            )
            self.emit(
                ka.If(
                    ka.BinaryOp("!=", ka.call(ka.Attribute(x, "dim")), ka.Literal(len(t.dims))),
                    (
                        self.fail(
                            "ValueError",
                            _s(f"{t.name}[{dims}] has {ndim}, got shape "),
                            _str(ka.call("tuple", ka.Attribute(x, "shape"))),
                        ),
                    ),
                )
            )
            want = ka.attr("torch", TORCH_DTYPE[t.dtype.value])
            torch_name = f"torch.{TORCH_DTYPE[t.dtype.value]}"
            self.emit(
                ka.If(
                    ka.BinaryOp("!=", ka.Attribute(x, "dtype"), want),
                    (
                        self.fail(
                            "TypeError",
                            _s(f"{t.name} is declared {t.dtype.value} ({torch_name}), got "),
                            _str(ka.Attribute(x, "dtype")),
                        ),
                    ),
                )
            )
        device = self.names.fresh("device")
        if inputs:
            first = _n(self.args[inputs[0].name])
            self.emit(ka.Assign(_n(device), ka.Attribute(first, "device")))
            for t in inputs[1:]:
                x = _n(self.args[t.name])
                self.emit(
                    ka.If(
                        ka.BinaryOp("!=", ka.Attribute(x, "device"), _n(device)),
                        (
                            self.fail(
                                "ValueError",
                                _s(f"{t.name} is on "),
                                _str(ka.Attribute(x, "device")),
                                _s(f", {inputs[0].name} on "),
                                _str(_n(device)),
                            ),
                        ),
                    )
                )
        else:
            self.emit(
                ka.Assign(
                    _n(device),
                    ka.call(
                        "torch.device",
                        ka.IfExp(ka.call("torch.cuda.is_available"), _s("cuda"), _s("cpu")),
                    ),
                )
            )
        self.device = _n(device)
        self.arch = self.target_arch()
        self.extents()
        self.allocate()
        self.launch()
        outs = [_n(self.tensors[t.name]) for t in self.c.outputs]
        self.emit(ka.Return(outs[0] if len(outs) == 1 else ka.Tuple(tuple(outs))))
        params = tuple(ka.Arg(self.args[t.name]) for t in inputs)
        return ka.FunctionDef(self.name, params, tuple(self.body), comment=self.signature_comment())

    def signature_comment(self) -> str:
        ins = ", ".join(
            f"{t.name}[{', '.join(map(str, t.dims))}] : {t.dtype.value}" for t in self.c.inputs
        )
        outs = ", ".join(
            f"{t.name}[{', '.join(map(str, t.dims))}] : {t.dtype.value}" for t in self.c.outputs
        )
        n = len(self.infos)
        return f"{self.name}({ins}) -> {outs}\nRuns {n} kernel launch{'es' if n != 1 else ''}."

    # ------------------------------------------------------------ extents
    def extents(self) -> None:
        self.emit(ka.Comment("extents: compile-time constants, or read from the shapes"))
        self.extent = _ExtentCode(self).build()

    # ------------------------------------------------------------ tensors
    def shape_of(self, name: str) -> ka.Expr:
        dims = self.low.tensor_dims(name)
        items: list[ka.Expr] = []
        for rank, iterative in dims:
            e = self.extent[rank]
            items.append(ka.BinaryOp("+", e, ka.Literal(1)) if iterative else e)
        return ka.Tuple(tuple(items))

    def allocate(self) -> None:
        from einsumcc_triton.kernel_info import TORCH_DTYPE

        self.emit(ka.Comment("outputs"))
        for t in self.c.outputs:
            var = self.names.fresh(t.name)
            self.tensors[t.name] = var
            self.emit(
                ka.Assign(
                    _n(var),
                    ka.call(
                        "torch.empty",
                        self.shape_of(t.name),
                        dtype=ka.attr("torch", TORCH_DTYPE[t.dtype.value]),
                        device=self.device,
                    ),
                )
            )
        scratch = [p.tensor for p in self.low.s.placements if p.where == "global"]
        if scratch:
            self.emit(ka.Comment("scratch tensors that a later kernel reads"))
        for name in scratch:
            var = self.names.fresh(name.replace(".", "_"))
            self.tensors[name] = var
            dtype = self.low.tensor_dtype(name)
            self.emit(
                ka.Assign(
                    _n(var),
                    ka.call(
                        "torch.empty",
                        self.shape_of(name),
                        dtype=ka.attr("torch", TORCH_DTYPE[dtype]),
                        device=self.device,
                    ),
                )
            )

    # ------------------------------------------------------------ launches
    def param_value(self, name: str) -> ka.Expr:
        p = next(p for p in self.c.params if p.name == name)
        return self.value(p.value)

    def value(self, e: Expr) -> ka.Expr:
        """A constant expression evaluated in Python (float64) at launch time."""
        if isinstance(e, Const):
            return ka.Literal(float(e.value))
        if isinstance(e, ExtentRef):
            return ka.call("float", self.extent[e.rank])
        if isinstance(e, ParamRef):
            return self.param_value(e.name)
        if isinstance(e, Neg):
            return ka.UnaryOp("-", self.value(e.operand))
        if isinstance(e, Binary):
            return ka.BinaryOp(e.op, self.value(e.lhs), self.value(e.rhs))
        if isinstance(e, Call):
            args = [self.value(a) for a in e.args]
            if e.fn in ("max", "min"):
                return ka.call(e.fn, *args)
            if e.fn == "abs":
                return ka.call("abs", args[0])
            if e.fn == "relu":
                return ka.call("max", args[0], ka.Literal(0.0))
            if e.fn == "sqrt":
                return ka.BinaryOp("**", args[0], ka.Literal(0.5))
            if e.fn == "rsqrt":
                return ka.BinaryOp("**", args[0], ka.Literal(-0.5))
            if e.fn == "safe_div":
                return ka.IfExp(
                    ka.BinaryOp("!=", args[1], ka.Literal(0.0)),
                    ka.BinaryOp("/", args[0], args[1]),
                    ka.Literal(0.0),
                )
            t = ka.call("torch.tensor", args[0], dtype=ka.attr("torch", "float64"))
            fn = {"exp": "exp", "log": "log", "tanh": "tanh", "sigmoid": "sigmoid"}[e.fn]
            return ka.call(ka.Attribute(ka.call(ka.Attribute(t, fn)), "item"))
        raise EinError.plain("a parameter cannot be computed at launch time")

    def target_arch(self) -> ka.PyName:
        """``arch = 90`` on an sm_90 device (0 off CUDA): picks each kernel's launch choice."""
        arch = self.names.fresh("arch")
        cap = self.names.fresh("capability")
        self.emit(ka.Assign(_n(arch), ka.Literal(0)))
        self.emit(
            ka.If(
                ka.BinaryOp("==", ka.Attribute(self.device, "type"), _s("cuda")),
                (
                    ka.Assign(_n(cap), ka.call("torch.cuda.get_device_capability", self.device)),
                    ka.Assign(
                        _n(arch),
                        ka.BinaryOp(
                            "+",
                            ka.BinaryOp(
                                "*", ka.Subscript(_n(cap), (ka.Literal(0),)), ka.Literal(10)
                            ),
                            ka.Subscript(_n(cap), (ka.Literal(1),)),
                        ),
                    ),
                ),
            )
        )
        return _n(arch)

    def launch_choice(self, info: KernelInfo) -> tuple[ka.Expr, ka.Expr]:
        """``num_warps`` and ``num_stages`` of the newest target the device has (the cost
        model's choices, einsumcc_triton.tuning), else the schedule's warps and 3 stages."""
        warps: ka.Expr = ka.Literal(info.num_warps)
        stages: ka.Expr = ka.Literal(3)
        for arch, w, st in reversed(info.configs):  # oldest first, so the newest is outermost
            test = ka.BinaryOp(">=", self.arch, ka.Literal(arch))
            warps = ka.IfExp(test, ka.Literal(w), warps)
            stages = ka.IfExp(test, ka.Literal(st), stages)
        return warps, stages

    def launch(self) -> None:
        counts = None
        if self.low.count_tiles:
            counts = _n(self.names.fresh("ein_tiles"))
            zeros = ka.call(
                "torch.zeros",
                ka.Literal(max(1, len(self.low.tile_slots))),
                dtype=ka.attr("torch", "int32"),
                device=self.device,
            )
            self.emit(ka.Assign(counts, zeros))
        for info in self.infos:
            self.emit(ka.Comment(f"kernel {info.kernel}"))
            count: ka.Expr | None = None
            for rank, block in info.grid:
                n = self.extent[rank]
                term: ka.Expr = ka.call("triton.cdiv", n, ka.Literal(block)) if block > 1 else n
                count = term if count is None else ka.BinaryOp("*", count, term)
            grid = ka.Tuple((count if count is not None else ka.Literal(1),))
            kwargs: list[tuple[str, ka.Expr]] = []
            for p in info.params:
                if p.kind == "ptr":
                    assert p.tensor is not None
                    value: ka.Expr = _n(self.tensors[p.tensor])
                elif p.kind == "stride":
                    assert p.tensor is not None
                    value = ka.call(
                        ka.Attribute(_n(self.tensors[p.tensor]), "stride"), ka.Literal(p.dim)
                    )
                elif p.kind == "extent":
                    assert p.rank is not None
                    value = self.extent[p.rank]
                elif p.kind == "param":
                    if p.rank is not None:
                        value = ka.call("float", self.extent[p.rank])
                    else:
                        assert p.tensor is not None
                        value = self.param_value(p.tensor)
                elif p.kind == "interp":
                    value = ka.call("bool", ka.attr("triton", "knobs", "runtime", "interpret"))
                elif p.kind == "tiles":
                    assert counts is not None
                    value = counts
                else:
                    assert p.value is not None
                    value = ka.Literal(p.value)
                kwargs.append((p.name, value))
            warps, stages = self.launch_choice(info)
            kwargs += [("num_warps", warps), ("num_stages", stages)]
            launch = ka.FuncCall(ka.Subscript(_n(info.name), (grid,)), (), tuple(kwargs))
            self.emit(ka.ExprStmt(launch))
        if counts is not None:
            self.emit(ka.Assign(ka.Attribute(_n(self.name), "tile_counts"), counts))


class _ExtentCode:
    """The launcher's extents: compile-time constants, read from the inputs' shapes, or
    derived from others (an expression, a split); with the checks that the inputs' shapes
    agree and that derived extents are whole numbers."""

    def __init__(self, launcher: _Launcher) -> None:
        self.c = launcher.c
        self.low = launcher.low
        self.args = launcher.args
        self.names = launcher.names
        self.emit = launcher.emit
        self.fail = launcher.fail

    def build(self) -> dict[str, ka.Expr]:
        """Every rank's extent as code (rank -> expression), after the checks are emitted."""
        resolved, source = self.shape_extents()
        self.derive_extents(resolved)
        self.require_extents(resolved)
        self.check_shapes(resolved, source)
        return resolved

    def shape_extents(self) -> tuple[dict[str, ka.Expr], dict[str, tuple[str, int]]]:
        """Compile-time extents, then the others read from the first input dimension of each
        rank: (rank -> code, rank -> (input, dimension) it was read from)."""
        c = self.c
        known = self.low.extents
        resolved: dict[str, ka.Expr] = {}
        source: dict[str, tuple[str, int]] = {}
        for r in c.ranks:
            n = known.get(r.name)
            if n is not None:
                resolved[r.name] = ka.Literal(n)
        for t in c.inputs:
            for i, d in enumerate(t.dims):
                if d.rank in resolved:
                    continue
                shape = ka.Subscript(ka.Attribute(_n(self.args[t.name]), "shape"), (ka.Literal(i),))
                value: ka.Expr = ka.BinaryOp("-", shape, ka.Literal(1)) if d.iterative else shape
                var = self.names.fresh(d.rank)
                self.emit(ka.Assign(_n(var), value))
                resolved[d.rank] = _n(var)
                source[d.rank] = (t.name, i)
        return resolved, source

    def derive_extents(self, resolved: dict[str, ka.Expr]) -> None:
        """Extents given by an expression or a split of ranks already resolved."""
        c = self.c
        changed = True
        while changed:
            changed = False
            for r in c.ranks:
                if r.name in resolved or r.extent is None:
                    continue
                syms = {str(s) for s in r.extent.free_symbols}
                if syms <= set(resolved):
                    resolved[r.name] = self.derived(r.name, r.extent, resolved)
                    changed = True
            for sp in c.splits:
                parts = [ch for ch in sp.children if ch not in resolved]
                if sp.parent not in resolved and not parts:
                    prod: sympy.Expr = sympy.Integer(1)
                    for ch in sp.children:
                        prod = prod * c.rank(ch).symbol
                    resolved[sp.parent] = self.derived(sp.parent, prod, resolved)
                    changed = True
                elif sp.parent in resolved and len(parts) == 1:
                    prod = sympy.Integer(1)
                    for ch in sp.children:
                        if ch != parts[0]:
                            prod = prod * c.rank(ch).symbol
                    resolved[parts[0]] = self.derived(
                        parts[0], c.rank(sp.parent).symbol / prod, resolved
                    )
                    changed = True

    def require_extents(self, resolved: dict[str, ka.Expr]) -> None:
        c = self.c
        used = {d.rank for t in c.tensors for d in t.dims}
        missing = [r.name for r in c.ranks if r.name not in resolved and r.name in used]
        if missing:
            raise EinError.at(
                c.rank(missing[0]).span,
                f"rank {missing[0]} is the extent of no input dimension and has no value",
                c.source,
                hint=f"give it at compile time: --dims {missing[0]}=N",
            )

    def check_shapes(
        self, resolved: dict[str, ka.Expr], source: dict[str, tuple[str, int]]
    ) -> None:
        """Every input dimension must agree with its rank's extent, every split must hold."""
        c = self.c
        # every input dimension must agree
        for t in c.inputs:
            x = _n(self.args[t.name])
            for i, d in enumerate(t.dims):
                if source.get(d.rank) == (t.name, i):
                    continue
                want: ka.Expr = resolved[d.rank]
                if d.iterative:
                    want = ka.BinaryOp("+", want, ka.Literal(1))
                shape = ka.Subscript(ka.Attribute(x, "shape"), (ka.Literal(i),))
                where = f" (from {source[d.rank][0]})" if d.rank in source else ""
                self.emit(
                    ka.If(
                        ka.BinaryOp("!=", shape, want),
                        (
                            self.fail(
                                "ValueError",
                                _s(f"dimension {i} of {t.name}[{', '.join(map(str, t.dims))}] is "),
                                _str(shape),
                                _s(f", but {d} = "),
                                _str(want),
                                *([_s(where)] if where else []),
                            ),
                        ),
                    )
                )
        for sp in c.splits:
            if all(ch in resolved for ch in sp.children) and sp.parent in resolved:
                prod_code: ka.Expr = resolved[sp.children[0]]
                for ch in sp.children[1:]:
                    prod_code = ka.BinaryOp("*", prod_code, resolved[ch])
                if all(isinstance(resolved[x], ka.Literal) for x in (sp.parent, *sp.children)):
                    continue
                self.emit(
                    ka.If(
                        ka.BinaryOp("!=", resolved[sp.parent], prod_code),
                        (
                            self.fail(
                                "ValueError",
                                _s(
                                    f"split {sp.parent} -> {', '.join(sp.children)} does not "
                                    f"hold: {sp.parent} = "
                                ),
                                _str(resolved[sp.parent]),
                                _s(f" is not {' * '.join(sp.children)} = "),
                                _str(prod_code),
                            ),
                        ),
                    )
                )

    def derived(self, rank: str, expr: sympy.Expr, resolved: dict[str, ka.Expr]) -> ka.Expr:
        """An extent computed from others; an inexact division is an error."""
        num, den = sympy.fraction(sympy.together(expr))
        num_code = self.sym(num, resolved)
        var = self.names.fresh(rank)
        if den == 1:
            self.emit(ka.Assign(_n(var), num_code))
            return _n(var)
        den_code = self.sym(den, resolved)
        self.emit(
            ka.If(
                ka.BinaryOp("!=", ka.BinaryOp("%", num_code, den_code), ka.Literal(0)),
                (
                    self.fail(
                        "ValueError",
                        _s(f"{rank} = {expr} must be a whole number, but {num} = "),
                        _str(num_code),
                        _s(f" is not a multiple of {den} = "),
                        _str(den_code),
                    ),
                ),
            )
        )
        self.emit(ka.Assign(_n(var), ka.BinaryOp("//", num_code, den_code)))
        return _n(var)

    def sym(self, e: sympy.Expr, resolved: dict[str, ka.Expr]) -> ka.Expr:
        if e.is_Integer:
            return ka.Literal(int(e))
        if e.is_Symbol:
            return resolved[str(e)]
        if isinstance(e, sympy.Add):
            args = [self.sym(a, resolved) for a in e.args]
            out = args[0]
            for a in args[1:]:
                out = ka.BinaryOp("+", out, a)
            return out
        if isinstance(e, sympy.Mul):
            args = [self.sym(a, resolved) for a in e.args]
            out = args[0]
            for a in args[1:]:
                out = ka.BinaryOp("*", out, a)
            return out
        if isinstance(e, sympy.Pow) and e.exp.is_Integer and e.exp > 0:
            return ka.BinaryOp("**", self.sym(e.base, resolved), ka.Literal(int(e.exp)))
        raise EinError.plain(f"extent expression {e} cannot be computed at run time")


def build_launcher(low: Lowering, infos: tuple[KernelInfo, ...], name: str) -> ka.FunctionDef:
    return _Launcher(low, infos, name).build()
