"""The numpy oracle: evaluates any valid cascade directly, in float64.

This is the specification every backend is tested against.  It follows the language contract
literally:

* an Einsum's iteration space is its left-hand variables and its reduced variables;
* a ``where`` filter removes iteration points: a reduction skips them, and an output point with
  no surviving iteration point holds the tensor's fill value;
* recurrences (Einsums joined by loop-carried reads of an iterative tensor) are evaluated iterate
  by iterate, in dependency order within each iterate; everything else is vectorised;
* arithmetic is IEEE float64: a NaN that the cascade produces is kept.

Each sub-expression evaluates to a *labelled array*: a numpy array whose axes are named by rank
variables.  Sums of products become one ``np.einsum`` call.

>>> from einsumcc import load
>>> import numpy as np
>>> c = load("rank K = 3\\ninput A[K]\\ninput B[K]\\noutput Z[]\\nZ[] = A[k] * B[k]\\n")
>>> float(evaluate(c, {"A": np.array([1.0, 2, 3]), "B": np.array([4.0, 5, 6])})["Z"])
32.0
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sympy

from einsumcc.diagnostics import EinError
from einsumcc.ir.affine import Affine
from einsumcc.ir.bind import (
    ARITH,
    BINARY,
    COMPARE,
    REDUCE_IDENTITY,
    UNARY,
    Bindings,
    bind,
    eval_constant,
    index_coefficients,
)
from einsumcc.ir.cascade import Cascade, Recurrence
from einsumcc.ir.features import pointwise
from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Compare,
    Condition,
    Const,
    Einsum,
    Expr,
    ExtentRef,
    Init,
    Logic,
    Neg,
    Not,
    ParamRef,
    Reduce,
    Role,
    Select,
    Tensor,
    VarRef,
    children,
    free_variables,
    is_var_symbol,
    walk,
)

Array = np.ndarray

_REDUCE: dict[str, Callable[..., Any]] = {
    "sum": np.sum,
    "prod": np.prod,
    "max": np.max,
    "min": np.min,
}
# Above this many elements a filtered sum of finite products is contracted with a 0/1 mask
# factor instead of being materialised.
_MATERIALISE_LIMIT = 1 << 24


@dataclass(frozen=True)
class _L:
    """A labelled array: ``axes[i]`` names axis ``i`` of ``a``."""

    a: Array
    axes: tuple[str, ...]


def _align(x: _L, axes: tuple[str, ...]) -> Array:
    """``x.a`` transposed and expanded so that it broadcasts against ``axes``."""
    if x.axes == axes:
        return x.a
    perm = [x.axes.index(v) for v in axes if v in x.axes]
    arr = np.transpose(x.a, perm) if perm != list(range(len(perm))) else x.a
    shape = []
    present = [v for v in axes if v in x.axes]
    it = iter(arr.shape)
    for v in axes:
        shape.append(next(it) if v in present else 1)
    return arr.reshape(shape)


def _variables(c: Condition | Expr) -> frozenset[str]:
    return c.variables if isinstance(c, Condition) else free_variables(c)


def _union(*xs: _L) -> tuple[str, ...]:
    out: list[str] = []
    for x in xs:
        out.extend(v for v in x.axes if v not in out)
    return tuple(out)


class _Einsum:
    """Evaluates one Einsum over a range of its variables."""

    def __init__(
        self,
        ev: _Evaluator,
        einsum: Einsum,
        ranges: Mapping[str, tuple[int, int]],
    ) -> None:
        self.ev = ev
        self.e = einsum
        self.ranges = ranges  # var -> (start, length)
        self.lhs = einsum.lhs_variables

    def arange(self, var: str) -> Array:
        start, n = self.ranges[var]
        return np.arange(start, start + n)

    # -------------------------------------------------------- conditions
    def cond_mask(
        self, conds: Sequence[Condition | Expr], scope: frozenset[str] = frozenset()
    ) -> _L:
        """The points where every condition holds: affine ``where`` conditions and (v2)
        conditions of any values (``mask``), evaluated point by point."""
        vals: list[_L] = []
        for c in conds:
            if isinstance(c, Condition):
                lhs = self.affine(c.lhs)
                rhs = self.affine(c.rhs)
                axes_c = _union(lhs, rhs)
                cmp = COMPARE[c.op](_align(lhs, axes_c), _align(rhs, axes_c))
            else:
                val = self.expr(c, scope)
                cmp, axes_c = val.a, val.axes
            vals.append(_L(np.asarray(cmp, dtype=bool), axes_c))
        axes = _union(*vals)
        mask: Array = np.ones((1,) * len(axes), dtype=bool)
        for v in vals:
            mask = mask & _align(v, axes)
        return _L(mask, axes)

    def affine(self, expr: sympy.Expr) -> _L:
        coeffs, const = self.ev.coefficients(expr)
        axes = tuple(sorted(coeffs))
        # exact Python integers where int64 could overflow (a filter may say k < 10**300)
        big = abs(int(const)) > 2**62 or any(abs(int(c)) > 2**31 for c in coeffs.values())
        dtype: Any = object if big else np.int64
        total: Array = np.asarray(int(const) if big else const, dtype=dtype)
        total = total.reshape((1,) * len(axes))
        for i, v in enumerate(axes):
            shape = [1] * len(axes)
            shape[i] = self.ranges[v][1]
            coeff = int(coeffs[v]) if big else coeffs[v]
            total = total + coeff * self.arange(v).astype(dtype).reshape(shape)
        return _L(total, axes)

    # -------------------------------------------------------- expressions
    def expr(self, e: Expr, scope: frozenset[str]) -> _L:
        if isinstance(e, Const):
            return _L(np.asarray(float(e.value)), ())
        if isinstance(e, ParamRef):
            return _L(np.asarray(self.ev.b.params[e.name]), ())
        if isinstance(e, ExtentRef):
            return _L(np.asarray(float(self.ev.b.extents[e.rank])), ())
        if isinstance(e, VarRef):
            return _L(self.arange(e.var).astype(np.float64), (e.var,))
        if isinstance(e, Access):
            return self.access(e)
        if isinstance(e, Neg):
            x = self.expr(e.operand, scope)
            return _L(-x.a, x.axes)
        if isinstance(e, Binary):
            a = self.expr(e.lhs, scope)
            b = self.expr(e.rhs, scope)
            axes = _union(a, b)
            return _L(ARITH[e.op](_align(a, axes), _align(b, axes)), axes)
        if isinstance(e, Compare | Logic | Not | Select):
            return self.condition(e, scope)
        if isinstance(e, Call):
            args = [self.expr(x, scope) for x in e.args]
            axes = _union(*args)
            vals = [_align(x, axes) for x in args]
            fn = UNARY.get(e.fn)
            out = fn(vals[0]) if fn is not None else BINARY[e.fn](vals[0], vals[1])
            return _L(np.asarray(out, dtype=np.float64), axes)
        assert isinstance(e, Reduce)
        return self.reduce(e, scope)

    def condition(self, e: Compare | Logic | Not | Select, scope: frozenset[str]) -> _L:
        """(v2) comparisons, ``and``, ``or``, ``not`` (boolean arrays) and ``select``."""
        if isinstance(e, Not):
            x = self.expr(e.operand, scope)
            return _L(np.logical_not(x.a), x.axes)
        if isinstance(e, Select):
            c, a, b = (self.expr(x, scope) for x in (e.cond, e.then, e.other))
            axes = _union(c, a, b)
            out = np.where(_align(c, axes), _align(a, axes), _align(b, axes))
            return _L(np.asarray(out, dtype=np.float64), axes)
        parts = [self.expr(x, scope) for x in children(e)]
        axes = _union(*parts)
        vals = [_align(x, axes) for x in parts]
        if isinstance(e, Compare):
            return _L(np.asarray(COMPARE[e.op](vals[0], vals[1]), dtype=bool), axes)
        combine = np.logical_and if e.op == "and" else np.logical_or
        out = vals[0]
        for v in vals[1:]:
            out = combine(out, v)
        return _L(np.asarray(out, dtype=bool), axes)

    def conditions(self) -> list[Condition | Expr]:
        """The conjuncts of the Einsum's filter: ``where`` then ``mask``."""
        return [*self.e.where, *self.e.mask]

    def reduce(self, e: Reduce, scope: frozenset[str]) -> _L:
        inner = scope | set(e.variables)
        conds = [
            c
            for c in self.conditions()
            if _variables(c) & set(e.variables) and _variables(c) <= inner | set(self.lhs)
        ]
        if e.op == "sum":
            fast = self.sum_of_products(e, inner, conds)
            if fast is not None:
                return fast
        body = self.expr(e.body, inner)
        axes = _union(body, _L(np.empty(0), e.variables))
        full_shape = [self.ranges[v][1] if v in e.variables else 1 for v in axes]
        arr = _align(body, axes)
        if conds:
            mask = self.cond_mask(conds, inner)
            axes2 = _union(_L(arr, axes), mask)
            arr = np.where(_align(mask, axes2), _align(_L(arr, axes), axes2), REDUCE_IDENTITY[e.op])
            axes = axes2
            full_shape = [self.ranges[v][1] if v in e.variables else 1 for v in axes]
        shape = np.broadcast_shapes(arr.shape, tuple(full_shape))
        arr = np.broadcast_to(arr, shape)
        red = tuple(i for i, v in enumerate(axes) if v in e.variables)
        out = _REDUCE[e.op](arr, axis=red)
        return _L(np.asarray(out), tuple(v for v in axes if v not in e.variables))

    def sum_of_products(
        self, e: Reduce, scope: frozenset[str], conds: list[Condition | Expr]
    ) -> _L | None:
        factors: list[_L] = []
        sign = 1.0
        stack: list[tuple[Expr, bool]] = [(e.body, False)]
        while stack:
            node, inverse = stack.pop()
            if isinstance(node, Binary) and node.op == "*":
                stack += [(node.lhs, inverse), (node.rhs, inverse)]
            elif isinstance(node, Binary) and node.op == "/":
                stack += [(node.lhs, inverse), (node.rhs, not inverse)]
            elif isinstance(node, Neg):
                sign = -sign
                stack.append((node.operand, inverse))
            else:
                x = self.expr(node, scope)
                if inverse:
                    with np.errstate(all="ignore"):
                        x = _L(1.0 / x.a, x.axes)
                factors.append(x)
        if conds:
            big = 1
            for v in _union(*factors, _L(np.empty(0), e.variables)):
                big *= self.ranges[v][1]
            if big <= _MATERIALISE_LIMIT:
                return None
            if not all(np.isfinite(f.a).all() for f in factors):
                return None
            mask = self.cond_mask(conds, scope)
            factors.append(_L(mask.a.astype(np.float64), mask.axes))
        scalar = sign
        for f in [f for f in factors if not f.axes]:
            scalar = scalar * float(f.a)
        factors = [f for f in factors if f.axes]
        axes = _union(*factors)
        if len(axes) > len(string.ascii_letters):
            return None
        letter = {v: string.ascii_letters[i] for i, v in enumerate(axes)}
        out_axes = tuple(v for v in axes if v not in e.variables)
        spec = ",".join("".join(letter[v] for v in f.axes) for f in factors)
        spec += "->" + "".join(letter[v] for v in out_axes)
        with np.errstate(all="ignore"):
            if factors:
                out = np.einsum(spec, *(f.a for f in factors), optimize=len(factors) > 1)
            else:
                out = np.asarray(1.0)
            # Reduced variables that no factor uses still multiply the sum by their extent.
            for v in e.variables:
                if v not in axes:
                    out = out * self.ranges[v][1]
            out = scalar * out
        return _L(np.asarray(out, dtype=np.float64), out_axes)

    # -------------------------------------------------------- accesses
    def access(self, acc: Access) -> _L:
        arr = self.ev.store[acc.tensor]
        tensor = self.ev.cascade.tensor(acc.tensor)
        simple = True
        seen: set[str] = set()
        for ix in acc.indices:
            if isinstance(ix, sympy.Symbol) and is_var_symbol(ix) and str(ix) not in seen:
                seen.add(str(ix))
            elif not ix.free_symbols and ix.is_integer:
                pass
            else:
                simple = False
        if simple:
            key: list[Any] = []
            axes: list[str] = []
            for pos, ix in enumerate(acc.indices):
                if ix.free_symbols:
                    v = str(ix)
                    start, n = self.ranges[v]
                    if start + n > arr.shape[pos]:
                        self.out_of_range(acc, pos, start + n - 1, arr.shape[pos], tensor)
                    key.append(slice(start, start + n))
                    axes.append(v)
                else:
                    i = int(ix)
                    if not 0 <= i < arr.shape[pos]:
                        self.out_of_range(acc, pos, i, arr.shape[pos], tensor)
                    key.append(i)
            return _L(arr[tuple(key)], tuple(axes))
        parts = [self.affine(ix) for ix in acc.indices]
        axes_t = _union(*parts)
        idx = [_align(p, axes_t) for p in parts]
        valid = self.access_valid(acc, axes_t)
        clipped = []
        for pos, ix in enumerate(idx):
            bad = (ix < 0) | (ix >= arr.shape[pos])
            if valid is not None:
                bad = bad & valid
            if bad.any():
                worst = int(ix[np.broadcast_to(bad, ix.shape)].flat[0])
                self.out_of_range(acc, pos, worst, arr.shape[pos], tensor)
            clipped.append(np.clip(ix, 0, arr.shape[pos] - 1))
        out = arr[tuple(clipped)] if clipped else arr
        shape = np.broadcast_shapes(*(c.shape for c in clipped)) if clipped else ()
        return _L(np.broadcast_to(out, shape), axes_t)

    def access_valid(self, acc: Access, axes: tuple[str, ...]) -> Array | None:
        """Points of an access that survive the Einsum's filter (None: no filter applies).

        The filter's conditions that read no tensor count (reading one could recurse)."""
        conds = [
            c
            for c in self.conditions()
            if _variables(c) <= set(axes)
            and (isinstance(c, Condition) or not any(isinstance(n, Access) for n in walk(c)))
        ]
        if not conds:
            return None
        mask = self.cond_mask(conds)
        return _align(mask, axes)

    def out_of_range(self, acc: Access, pos: int, value: int, size: int, tensor: Tensor) -> None:
        raise EinError.at(
            acc.span,
            f"index {acc.indices[pos]} of {acc.tensor} reaches {value}, outside 0..{size - 1} "
            f"(rank {tensor.dims[pos]})",
            self.ev.cascade.source,
            hint="add a where filter that excludes these points, or fix the index",
        )

    # -------------------------------------------------------- the statement
    def run(self) -> None:
        e = self.e
        value = self.expr(e.body, frozenset())
        lhs = tuple(self.lhs)
        out = _align(value, lhs) if lhs else np.asarray(value.a)
        shape = tuple(self.ranges[v][1] for v in lhs)
        out = np.broadcast_to(out, shape)
        tensor = self.ev.cascade.tensor(e.name)
        if e.filtered:
            lhs_set = set(lhs)
            mask = self.cond_mask(self.conditions())
            reduced = tuple(i for i, v in enumerate(mask.axes) if v not in lhs_set)
            survive = _L(np.any(mask.a, axis=reduced), tuple(v for v in mask.axes if v in lhs_set))
            fill = self.fill_at_output(tensor, lhs)
            out = np.where(_align(survive, lhs) if lhs else survive.a, out, fill)
        self.write(tensor, np.asarray(out, dtype=np.float64), lhs)

    def fill_at_output(self, tensor: Tensor, lhs: tuple[str, ...]) -> Array | float:
        """The fill at the points this Einsum writes: one number, or (v2) its values there."""
        if not pointwise(tensor.fill):
            return self.ev.fill(tensor)
        whole = self.ev.fill_array(tensor)
        if not lhs:
            return whole[tuple(0 for _ in whole.shape)] if whole.ndim else whole
        idx = [_align(self.affine(ix), lhs) for ix in self.e.output.indices]
        return np.asarray(whole[tuple(idx)])

    def write(self, tensor: Tensor, values: Array, lhs: tuple[str, ...]) -> None:
        acc = self.e.output
        bare = all(isinstance(ix, sympy.Symbol) for ix in acc.indices)
        if bare and tuple(str(ix) for ix in acc.indices) == lhs:
            whole = all(self.ranges[v][0] == 0 for v in lhs) and tensor.name not in self.ev.store
            if whole and values.shape == self.ev.b.shape(tensor):
                ok = values.flags.c_contiguous and values.flags.writeable
                self.ev.store[tensor.name] = values if ok else np.array(values, order="C")
                return
            self.ev.allocate(tensor)
            key = tuple(slice(s0, s0 + n) for s0, n in (self.ranges[v] for v in lhs))
            self.ev.store[tensor.name][key] = values
            return
        store = self.ev.allocate(tensor)
        parts = [self.affine(ix) for ix in acc.indices]
        if not parts:
            store[...] = values
            return
        idx = [_align(p, lhs) for p in parts]
        store[tuple(idx)] = values


class _Evaluator:
    def __init__(self, cascade: Cascade, b: Bindings) -> None:
        self.cascade = cascade
        self.b = b
        self.store: dict[str, Array] = {}
        self._coeffs: dict[sympy.Expr, tuple[dict[str, int], int]] = {}

    def coefficients(self, expr: sympy.Expr) -> tuple[dict[str, int], int]:
        if expr not in self._coeffs:
            self._coeffs[expr] = index_coefficients(expr, self.b.extents)
        return self._coeffs[expr]

    @functools.cache  # noqa: B019 - one evaluator per call of evaluate()
    def fill(self, tensor: Tensor) -> float:
        params = {p.name: p.value for p in self.cascade.params}
        return eval_constant(tensor.fill, self.b.extents, params)

    def ranges(self, e: Einsum, fixed: Mapping[str, int]) -> dict[str, tuple[int, int]]:
        out = {}
        for v in e.variables:
            if v in fixed:
                out[v] = (fixed[v], 1)
            else:
                out[v] = (0, self.b.extents[self.cascade.var_ranks[v]])
        return out

    def point_values(self, value: Expr, variables: tuple[str, ...]) -> Array:
        """(v2) an init or fill value at every point of ``variables`` (axes in that order)."""
        out = Access("_", [Affine.var(v) for v in variables])
        ranges = {v: (0, self.b.extents[self.cascade.var_ranks[v]]) for v in variables}
        x = _Einsum(self, Einsum(out, value), ranges).expr(value, frozenset())
        arr = _align(x, variables) if variables else np.asarray(x.a)
        shape = tuple(ranges[v][1] for v in variables)
        return np.broadcast_to(np.asarray(arr, dtype=np.float64), shape)

    @functools.cache  # noqa: B019 - one evaluator per call of evaluate()
    def fill_array(self, tensor: Tensor) -> Array:
        """(v2) a fill that reads inputs or index variables, at every point of ``tensor``."""
        own = tuple(d.rank.lower() for d in tensor.dims if not d.iterative)
        values = self.point_values(tensor.fill, own)
        pos = tensor.iterative_position
        if pos is not None:
            values = np.expand_dims(values, pos)
        return np.broadcast_to(values, self.b.shape(tensor))

    def allocate(self, tensor: Tensor) -> Array:
        """The storage of ``tensor``, created holding its fill on first use."""
        if tensor.name not in self.store:
            if pointwise(tensor.fill):
                self.store[tensor.name] = np.array(self.fill_array(tensor))
            else:
                self.store[tensor.name] = np.full(self.b.shape(tensor), self.fill(tensor))
        return self.store[tensor.name]

    def init(self, init: Init, params: Mapping[str, Expr]) -> None:
        key = tuple(0 if ix.is_int(0) else slice(None) for ix in init.target.affine_indices)
        if not pointwise(init.value):
            self.store[init.target.tensor][key] = eval_constant(init.value, self.b.extents, params)
            return
        own = tuple(
            next(iter(ix.variables)) for ix in init.target.affine_indices if not ix.is_int(0)
        )
        self.store[init.target.tensor][key] = self.point_values(init.value, own)

    def run(self) -> None:
        params = {p.name: p.value for p in self.cascade.params}
        for t in self.cascade.tensors:
            if t.is_iterative:
                self.allocate(t)
        with np.errstate(all="ignore"):
            for init in self.cascade.inits:
                self.init(init, params)
            self.stages()

    def stages(self) -> None:
        for stage in self.cascade.stages:
            if isinstance(stage, Recurrence):
                x = stage.variable
                for i in range(self.b.extents[stage.rank]):
                    for name in stage.einsums:
                        e = self.cascade.einsum(name)
                        _Einsum(self, e, self.ranges(e, {x: i})).run()
            else:
                e = self.cascade.einsum(stage)
                _Einsum(self, e, self.ranges(e, {})).run()


def _as_cascade(cascade: Cascade | str | Path) -> Cascade:
    if isinstance(cascade, Cascade):
        return cascade
    from einsumcc.pipeline import load

    return load(cascade)


def evaluate(
    cascade: Cascade | str | Path,
    inputs: Mapping[str, object],
    dims: Mapping[str, int] | None = None,
    *,
    intermediates: bool = False,
) -> dict[str, Array]:
    """Evaluate ``cascade`` on ``inputs`` (arrays by tensor name) and return its outputs.

    ``dims`` overrides extents.  With ``intermediates=True`` every tensor is returned, iterative
    tensors with all their iterates.  Results are float64 arrays; rank-0 results are 0-d.
    """
    c = _as_cascade(cascade)
    b = bind(c, dims)
    ev = _Evaluator(c, b)
    for t in c.inputs:
        if t.name not in inputs:
            raise EinError.plain(
                f"missing input '{t.name}'",
                hint=f"{c.name} needs " + ", ".join(x.name for x in c.inputs),
            )
        arr = np.asarray(inputs[t.name], dtype=np.float64)
        want = b.shape(t)
        if arr.shape != want:
            shown = ", ".join(f"{d}={b.extents[d.rank]}" for d in t.dims)
            raise EinError.plain(
                f"input '{t.name}' has shape {list(arr.shape)}, expected {list(want)} ({shown})"
            )
        ev.store[t.name] = arr
    unknown = sorted(set(inputs) - {t.name for t in c.inputs})
    if unknown:
        raise EinError.plain(
            f"unknown input '{unknown[0]}'",
            hint="inputs of " + c.name + ": " + ", ".join(t.name for t in c.inputs),
        )
    ev.run()
    keep = [t for t in c.tensors if intermediates or t.role is Role.OUTPUT]
    return {t.name: ev.store[t.name] for t in keep}


def random_inputs(
    cascade: Cascade, dims: Mapping[str, int] | None = None, seed: int = 0
) -> dict[str, Array]:
    """Seeded random inputs: standard normal values rounded to each input's dtype.

    Integer inputs take values in ``[0, 8)`` and booleans are fair coin flips.  Inputs are drawn
    in declaration order, so the same seed always gives the same arrays.
    """
    b = bind(cascade, dims)
    rng = np.random.default_rng(seed)
    out: dict[str, Array] = {}
    for t in cascade.inputs:
        shape = b.shape(t)
        if t.dtype.value in {"i32", "i64"}:
            out[t.name] = rng.integers(0, 8, size=shape).astype(np.float64)
        elif t.dtype.value == "bool":
            out[t.name] = rng.integers(0, 2, size=shape).astype(np.float64)
        else:
            x = rng.standard_normal(shape)
            out[t.name] = round_to_dtype(x, t.dtype.value)
    return out


def round_to_dtype(x: Array, dtype: str) -> Array:
    """Round float64 values to what a tensor of ``dtype`` can hold (kept as float64)."""
    if dtype == "f16":
        return x.astype(np.float16).astype(np.float64)
    if dtype == "bf16":
        bits = np.asarray(x, dtype=np.float32).view(np.uint32)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
        return rounded.view(np.float32).astype(np.float64)
    if dtype == "f32":
        return x.astype(np.float32).astype(np.float64)
    return x
