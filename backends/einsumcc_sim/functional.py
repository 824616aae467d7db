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
from einsumcc.ir.nodes import (
    Access,
    Binary,
    Call,
    Condition,
    Const,
    Expr,
    ExtentRef,
    Neg,
    ParamRef,
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
        tnames = {t.name for t in self.c.tensors}
        for t in self.c.tensors:
            if t.is_iterative:
                self.alloc(t.name, self.fill(t.name))
        for init in self.c.inits:
            value = eval_constant(init.value, self.ext, self.params)
            key = tuple(0 if ix == 0 else slice(None) for ix in init.target.indices)
            self.store[init.target.tensor][key] = value
        self.tnames = tnames

    # ------------------------------------------------------------ storage
    def shape_of(self, tensor: str) -> tuple[int, ...]:
        if tensor in {t.name for t in self.c.tensors}:
            t = self.c.tensor(tensor)
            return tuple(self.ext[d.rank] + (1 if d.iterative else 0) for d in t.dims)
        k = self.p.kernels[tensor]
        return tuple(self.ext[self.c.var_ranks[v]] for v in k.lhs)

    def fill(self, tensor: str) -> float:
        if tensor in {t.name for t in self.c.tensors}:
            return eval_constant(self.c.tensor(tensor).fill, self.ext, self.params)
        return 0.0

    def alloc(self, tensor: str, value: float) -> np.ndarray:
        if tensor not in self.store:
            self.store[tensor] = np.full(self.shape_of(tensor), value, dtype=np.float64)
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
        raise TypeError(f"not a point expression: {e}")

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
        out = self.value(k.body, vals) * np.ones(ii.shape)
        for arr_kind, fi, fj in self.faults:
            if arr_kind == leaf.array:
                out = np.where((ii == fi) & (jj == fj), out + 1.0, out)
        keep = self.cond(k.where, vals, ii.size) if k.where else np.ones(ii.size, dtype=bool)
        target = k.output.tensor
        if target not in self.store:
            init = REDUCE_IDENTITY.get(k.combine or "", self.fill(target))
            self.alloc(target, init)
            if k.where and k.combine is not None:
                self.fill_unsurvived(k)
        dest = self.store[target]
        idx = np.broadcast_to(self.flat_index(k.output, vals, dest.shape), ii.shape)[keep]
        flat = dest.reshape(-1)
        if k.combine is None:
            flat[idx] = out[keep]
        else:
            _AT[k.combine](flat, idx, out[keep])
        if self.p.placement.get(target) == "registers":
            pe = self.where_pe.setdefault(target, np.full((dest.size, 2), -1, dtype=np.int64))
            pe[idx, 0] = ii[keep] if leaf.array == "2d" else -1
            pe[idx, 1] = jj[keep]

    def fill_unsurvived(self, k: PEKernel) -> None:
        """Output points with no surviving iteration point hold the tensor's fill."""
        grids = np.meshgrid(
            *[np.arange(self.ext[self.c.var_ranks[v]]) for v in k.space], indexing="ij"
        )
        vals = {v: g.ravel() for v, g in zip(k.space, grids, strict=True)}
        n = grids[0].size if grids else 1
        mask = self.cond(k.where, vals, n)
        dest = self.store[k.output.tensor]
        idx = self.flat_index(k.output, vals, dest.shape)
        survive = np.zeros(dest.size, dtype=bool)
        survive[idx[mask]] = True
        touched = np.zeros(dest.size, dtype=bool)
        touched[idx] = True
        dest.reshape(-1)[touched & ~survive] = self.fill(k.output.tensor)

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
