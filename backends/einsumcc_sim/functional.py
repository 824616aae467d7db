"""Functional mode: real values moved through the mapped dataflow, op by op.

The exact engine runs the program; for every op it hands over the op's firing cycles
(``fire[i, j, s]``).  Each PE evaluates its kernel's point program on the operands it holds at
that cycle and combines the result into the output:

* an operand streamed from the left (top) edge is on PE ``(i, j)``'s link at cycle
  ``injection + j`` (``+ i``); the PE must fire exactly then, or it would read a neighbour's
  value: a misaligned dataflow is an error, not a silent pass;
* an operand in registers must have been left at that PE (or arrive through the link from the
  same column): every register-resident value remembers the PE that produced it;
* buffer and DRAM operands are read from the tensors.

``faults`` corrupts one PE's operation (its result is off by one), which the oracle comparison
must see.

The v2 forms (spec §10) run the same way: a kernel's data conditions (``mask``, the boolean
results of its ``E.mask`` kernel) drop points like its affine ``where``; comparisons, ``and``,
``or``, ``not``, ``select`` and ``**`` are evaluated point by point; an output point that no
point of a filtered Einsum reaches holds the fill, which may vary by point (a tensor-valued
fill); tensor-valued inits are the first iterate, written again by their ``T.init`` kernel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import sympy

from einsumcc.diagnostics import EinError
from einsumcc.ir.bind import (
    ARITH,
    BINARY,
    COMPARE,
    REDUCE_IDENTITY,
    UNARY,
    eval_constant,
    index_coefficients,
)
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.features import pointwise
from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Compare,
    Condition,
    Const,
    Expr,
    ExtentRef,
    Init,
    Logic,
    Neg,
    Not,
    ParamRef,
    Select,
    VarRef,
    var_symbol,
)
from einsumcc_sim.arch import Arch
from einsumcc_sim.engine import Engine
from einsumcc_sim.kernel import PEKernel
from einsumcc_sim.mapping import Mapping as SimMapping
from einsumcc_sim.program import Leaf, SimProgram, lower
from einsumcc_sim.template import ExactTemplate, OpShape

_AT = {"sum": np.add.at, "prod": np.multiply.at, "max": np.maximum.at, "min": np.minimum.at}


class DataflowError(AssertionError):
    """The mapped dataflow does not deliver an operand where and when a PE needs it."""


class _Functional:
    def __init__(
        self,
        prog: SimProgram,
        inputs: Mapping[str, np.ndarray],
        faults: Iterable[tuple[str, int, int]],
    ) -> None:
        self.p = prog
        self.c: Cascade = prog.cascade
        self.ext = dict(prog.bindings.extents)
        self.params = {p.name: p.value for p in self.c.params}
        self.store: dict[str, np.ndarray] = {
            k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()
        }
        self.where_pe: dict[str, np.ndarray] = {}  # register tensors: producing PE (array, i, j)
        self.faults = set(faults)
        self.checked_links = 0
        self.tnames = {t.name for t in self.c.tensors}
        self.fills: dict[str, float | np.ndarray] = {}
        # filtered results: the output points some iteration point has reached so far
        self.survived: dict[str, np.ndarray] = {}
        for t in self.c.tensors:
            if t.is_iterative:
                self.alloc(t.name, self.fill(t.name))
        for init in self.c.inits:
            self.init(init)

    def init(self, init: Init) -> None:
        """The first iterate: a number, or (v2) values read from the inputs point by point."""
        key = tuple(0 if ix.is_int(0) else slice(None) for ix in init.target.affine_indices)
        if not pointwise(init.value):
            self.store[init.target.tensor][key] = eval_constant(init.value, self.ext, self.params)
            return
        own = [next(iter(ix.variables)) for ix in init.target.affine_indices if not ix.is_int(0)]
        self.store[init.target.tensor][key] = self.at_points(init.value, own)

    def at_points(self, e: Expr, variables: list[str]) -> np.ndarray:
        """``e`` at every point of ``variables`` (axes in that order)."""
        shape = tuple(self.ext[self.c.var_ranks[v]] for v in variables)
        grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
        vals = {v: g.ravel() for v, g in zip(variables, grids, strict=True)}
        n = int(np.prod(shape)) if shape else 1
        with np.errstate(all="ignore"):
            got = np.broadcast_to(np.asarray(self.value(e, vals), dtype=np.float64), (n,))
        return got.reshape(shape)

    # ------------------------------------------------------------ storage
    def shape_of(self, tensor: str) -> tuple[int, ...]:
        if tensor in {t.name for t in self.c.tensors}:
            t = self.c.tensor(tensor)
            return tuple(self.ext[d.rank] + (1 if d.iterative else 0) for d in t.dims)
        k = self.p.kernels[tensor]
        return tuple(self.ext[self.c.var_ranks[v]] for v in k.lhs)

    def fill(self, tensor: str) -> float | np.ndarray:
        """A tensor's fill: a number, or (v2) its values at every point of the tensor."""
        if tensor not in self.fills:
            self.fills[tensor] = self.fill_of(tensor)
        return self.fills[tensor]

    def fill_of(self, tensor: str) -> float | np.ndarray:
        if tensor not in self.tnames:
            return 0.0
        t = self.c.tensor(tensor)
        if not pointwise(t.fill):
            return eval_constant(t.fill, self.ext, self.params)
        values = self.at_points(t.fill, [d.rank.lower() for d in t.dims if not d.iterative])
        pos = t.iterative_position
        if pos is not None:
            values = np.expand_dims(values, pos)
        return np.broadcast_to(values, self.shape_of(tensor))

    def fill_at(self, tensor: str, idx: np.ndarray) -> float | np.ndarray:
        """The fill at flat positions ``idx`` of ``tensor``."""
        fill = self.fill(tensor)
        return fill if isinstance(fill, float) else fill.reshape(-1)[idx]

    def alloc(self, tensor: str, value: float | np.ndarray) -> np.ndarray:
        if tensor not in self.store:
            full = np.broadcast_to(np.asarray(value, dtype=np.float64), self.shape_of(tensor))
            self.store[tensor] = np.array(full)
        return self.store[tensor]

    def flat_index(
        self, acc: Access, vals: Mapping[str, np.ndarray], shape: tuple[int, ...]
    ) -> np.ndarray:
        idx = np.zeros(1, dtype=np.int64)
        for pos, ix in enumerate(acc.indices):
            coeffs, const = index_coefficients(ix, self.ext)
            v = np.full(1, const, dtype=np.int64)
            for var, cf in coeffs.items():
                v = v + cf * vals[var]
            idx = idx * shape[pos] + v
        return idx

    # ------------------------------------------------------------ values
    def resolve(self, acc: Access) -> Access:
        """A read through an alias, rewritten as a read of its source."""
        k = self.p.kernels.get(acc.tensor)
        while k is not None and k.alias and isinstance(k.body, Access):
            subs = {var_symbol(v): ix for v, ix in zip(k.lhs, acc.indices, strict=False)}
            acc = Access(k.body.tensor, tuple(sympy.expand(i.subs(subs)) for i in k.body.indices))
            k = self.p.kernels.get(acc.tensor)
        return acc

    def value(self, e: Expr, vals: Mapping[str, np.ndarray]) -> np.ndarray:
        if isinstance(e, Const):
            return np.asarray(float(e.value))
        if isinstance(e, ParamRef):
            return np.asarray(eval_constant(self.params[e.name], self.ext, self.params))
        if isinstance(e, ExtentRef):
            return np.asarray(float(self.ext[e.rank]))
        if isinstance(e, VarRef):
            return vals[e.var].astype(np.float64)
        if isinstance(e, Access):
            acc = self.resolve(e)
            arr = self.store[acc.tensor]
            got: np.ndarray = arr.ravel()[self.flat_index(acc, vals, arr.shape)]
            return got
        if isinstance(e, Neg):
            return -self.value(e.operand, vals)
        if isinstance(e, Binary):
            return np.asarray(ARITH[e.op](self.value(e.lhs, vals), self.value(e.rhs, vals)))
        if isinstance(e, Call):
            args = [self.value(a, vals) for a in e.args]
            fn = UNARY.get(e.fn)
            res: np.ndarray = np.asarray(
                fn(args[0]) if fn is not None else BINARY[e.fn](args[0], args[1])
            )
            return res
        if isinstance(e, Compare | Logic | Not | Select):
            return np.asarray(self.condition(e, vals))
        raise TypeError(f"not a point expression: {e}")

    def condition(self, e: Compare | Logic | Not | Select, vals: Mapping[str, np.ndarray]) -> Any:
        """(v2) comparisons, ``and``, ``or``, ``not`` (booleans) and ``select``."""
        if isinstance(e, Compare):
            return COMPARE[e.op](self.value(e.lhs, vals), self.value(e.rhs, vals))
        if isinstance(e, Not):
            return np.logical_not(self.truth(e.operand, vals))
        if isinstance(e, Select):
            then, other = self.value(e.then, vals), self.value(e.other, vals)
            return np.where(self.truth(e.cond, vals), then, other)
        join = np.logical_and if e.op == "and" else np.logical_or
        out = self.truth(e.parts[0], vals)
        for part in e.parts[1:]:
            out = join(out, self.truth(part, vals))
        return out

    def truth(self, e: Expr, vals: Mapping[str, np.ndarray]) -> np.ndarray:
        """A condition's value as booleans (a mask kernel's result is stored as 0 or 1)."""
        truth: np.ndarray = np.asarray(self.value(e, vals)) != 0
        return truth

    def cond(
        self, conds: tuple[Condition, ...], vals: Mapping[str, np.ndarray], n: int
    ) -> np.ndarray:
        mask = np.ones(n, dtype=bool)
        for cnd in conds:
            sides = []
            for side in (cnd.lhs, cnd.rhs):
                coeffs, const = index_coefficients(side, self.ext)
                v = np.full(n, const, dtype=np.int64)
                for var, cf in coeffs.items():
                    v = v + cf * vals[var]
                sides.append(v)
            mask &= COMPARE[cnd.op](sides[0], sides[1])
        return mask

    # ------------------------------------------------------------ one op
    def op(self, leaf: Leaf, ranges: Mapping[str, tuple[int, int]], shape: OpShape, t: Any) -> None:
        assert isinstance(t, ExactTemplate)
        fire = t.fire[: shape.u_r, : shape.u_c, :]
        for k, m in zip(leaf.kernels, leaf.maps, strict=True):
            self.kernel_op(leaf, k, m, ranges, shape, fire)

    def kernel_op(
        self,
        leaf: Leaf,
        k: PEKernel,
        m: Any,
        ranges: Mapping[str, tuple[int, int]],
        s: OpShape,
        fire: np.ndarray,
    ) -> None:
        if any(v in (m.rows, m.cols) for v in m.stream):
            raise EinError.plain(
                f"functional mode: {k.name} maps a rank both spatially and in its stream",
                hint="simulate it without --functional, or map the rank to one of them",
            )
        loc = {v: ranges.get(v, (0, self.ext[self.c.var_ranks[v]])) for v in k.space}
        steps = 1
        for v in m.stream:
            steps *= loc[v][1]
        grid = np.meshgrid(np.arange(s.u_r), np.arange(s.u_c), np.arange(steps), indexing="ij")
        ii, jj, ss = (g.ravel() for g in grid)
        vals: dict[str, np.ndarray] = {}
        rem = ss.copy()
        for v in reversed(m.stream):
            lo, n = loc[v]
            vals[v] = lo + rem % n
            rem //= n
        for v in k.space:
            if v == m.rows:
                vals[v] = loc[v][0] + ii
            elif v == m.cols:
                vals[v] = loc[v][0] + jj
            elif v not in vals:
                vals[v] = np.full(ii.shape, loc[v][0], dtype=np.int64)
        self.check_links(leaf, k, m, s, fire, ii, jj, ss)
        self.check_registers(leaf, k, vals, ii, jj)
        with np.errstate(all="ignore"):  # IEEE results, as the oracle's (NaN kept)
            out = self.value(k.body, vals) * np.ones(ii.shape)
        for arr_kind, fi, fj in self.faults:
            if arr_kind == leaf.array:
                out = np.where((ii == fi) & (jj == fj), out + 1.0, out)
        keep = self.cond(k.where, vals, ii.size) if k.where else np.ones(ii.size, dtype=bool)
        for m_expr in k.mask:
            keep &= np.broadcast_to(self.truth(m_expr, vals), ii.shape)
        self.write(leaf, k, vals, out, keep, ii, jj)

    def write(
        self,
        leaf: Leaf,
        k: PEKernel,
        vals: Mapping[str, np.ndarray],
        out: np.ndarray,
        keep: np.ndarray,
        ii: np.ndarray,
        jj: np.ndarray,
    ) -> None:
        """Combine the kept points into the output; a filtered Einsum's output points that
        no point has reached yet hold the fill (a reduction helper's: the identity)."""
        target = k.output.tensor
        if target not in self.store:
            self.alloc(target, REDUCE_IDENTITY[k.combine] if k.combine else self.fill(target))
        dest = self.store[target]
        every = np.broadcast_to(self.flat_index(k.output, vals, dest.shape), ii.shape)
        idx = every[keep]
        flat = dest.reshape(-1)
        if k.combine is None:
            flat[idx] = out[keep]
        else:
            filtered = bool(k.where or k.mask)
            if filtered:  # a point reached for the first time starts from the identity
                seen = self.survived.setdefault(target, np.zeros(dest.size, dtype=bool))
                flat[idx[~seen[idx]]] = REDUCE_IDENTITY[k.combine]
                seen[idx] = True
            _AT[k.combine](flat, idx, out[keep])
            if filtered and not k.is_helper:
                empty = np.unique(every[~seen[every]])
                flat[empty] = self.fill_at(target, empty)
        if k.combine is None and not k.is_helper:
            self.fill_nested(k, vals, every)
        if self.p.placement.get(target) == "registers" and not k.init:
            pe = self.where_pe.setdefault(target, np.full((dest.size, 2), -1, dtype=np.int64))
            pe[idx, 0] = ii[keep] if leaf.array == "2d" else -1
            pe[idx, 1] = jj[keep]

    def fill_nested(self, k: PEKernel, vals: Mapping[str, np.ndarray], every: np.ndarray) -> None:
        """An Einsum whose filter reads the variables of a nested reduction (``Y[p] = sum{m}
        A[m, p] + B[p] where m > p``): its output points where no point of the reduction
        survives hold the fill, as in the oracle."""
        e = self.c.einsum(k.origin)
        mk = self.p.kernels.get(f"{k.origin}.mask")
        parts: list[Condition | Access] = [*e.where]
        if mk is not None:
            parts.append(mk.output)
        free = set().union(*(c.variables for c in parts)) - set(k.space)
        if not free:
            return
        idx, first = np.unique(every.ravel(), return_index=True)
        extra = sorted(free)
        shape = [len(idx), *(self.ext[self.c.var_ranks[v]] for v in extra)]
        grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
        at = {v: np.broadcast_to(vals[v], every.shape).ravel()[first][grids[0].ravel()]
              for v in k.space}  # fmt: skip
        at.update({v: g.ravel() for v, g in zip(extra, grids[1:], strict=True)})
        n = grids[0].size
        where = tuple(c for c in parts if isinstance(c, Condition))
        keep = self.cond(where, at, n) if where else np.ones(n, dtype=bool)
        for a in parts:
            if isinstance(a, Access):
                keep &= np.broadcast_to(self.truth(a, at), (n,))
        survive = keep.reshape(len(idx), -1).any(axis=1)
        dest = self.store[k.output.tensor].reshape(-1)
        dest[idx[~survive]] = self.fill_at(k.output.tensor, idx[~survive])

    def check_links(
        self,
        leaf: Leaf,
        k: PEKernel,
        m: Any,
        s: OpShape,
        fire: np.ndarray,
        ii: np.ndarray,
        jj: np.ndarray,
        ss: np.ndarray,
    ) -> None:
        at = fire[ii, jj, np.minimum(ss, fire.shape[2] - 1)]
        if s.left:
            arrival = s.L + s.a * ii + ss * s.K + jj  # injected at row i, one column per cycle
            if not np.array_equal(at, arrival):
                raise DataflowError(
                    f"{k.name}: a PE fires when its left operand is not on its link"
                )
            self.checked_links += at.size
        if s.top:
            arrival = s.L + s.b * jj + ss * s.K + ii
            if not np.array_equal(at, arrival):
                raise DataflowError(f"{k.name}: a PE fires when its top operand is not on its link")
            self.checked_links += at.size

    def check_registers(
        self,
        leaf: Leaf,
        k: PEKernel,
        vals: Mapping[str, np.ndarray],
        ii: np.ndarray,
        jj: np.ndarray,
    ) -> None:
        for op in leaf.operands:
            if op.kernel != k.name or op.place != "registers" or op.producer is None:
                continue
            pe = self.where_pe.get(op.tensor)
            if pe is None:
                continue
            acc = self.resolve(op.access)
            idx = self.flat_index(acc, vals, self.store[acc.tensor].shape)
            held = pe[idx]
            ok = held[:, 1] == jj
            if op.kind == "inplace" and leaf.array == "2d":
                ok &= held[:, 0] == ii
            if not np.all(ok | (held[:, 1] < 0)):
                raise DataflowError(
                    f"{k.name} reads {op.tensor} from registers of a PE that does not hold it"
                )

    def finish(self) -> dict[str, np.ndarray]:
        out = {}
        for t in self.c.outputs:
            k = self.p.kernels.get(t.name)
            if k is not None and k.alias and isinstance(k.body, Access):
                grids = np.meshgrid(
                    *[np.arange(self.ext[self.c.var_ranks[v]]) for v in k.lhs], indexing="ij"
                )
                vals = {v: g.ravel() for v, g in zip(k.lhs, grids, strict=True)}
                val = self.value(k.body, vals) if k.lhs else self.value(k.body, {})
                self.store[t.name] = np.asarray(val, dtype=np.float64).reshape(
                    self.shape_of(t.name)
                )
            out[t.name] = self.store[t.name]
        return out


def run_functional(
    cascade: Cascade,
    arch: Arch,
    mapping: SimMapping,
    dims: Mapping[str, int],
    inputs: Mapping[str, np.ndarray],
    faults: Iterable[tuple[str, int, int]] = (),
) -> dict[str, np.ndarray]:
    """The cascade's outputs computed by the PEs of the mapped dataflow (small dims)."""
    prog = lower(cascade, arch, mapping, dims, "default")
    f = _Functional(prog, inputs, faults)
    eng = Engine(prog, exact_mode=True)
    eng.on_op = f.op
    eng.run()
    return f.finish()
