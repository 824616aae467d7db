"""The proof that a loop may skip the empty tiles of its filtered tensor.

An empty tile holds the fill at every point of the filtered tensor.  Skipping it is exact when,
evaluated abstractly (:mod:`einsumcc.schedule.intervals`, ranges from
:mod:`einsumcc.schedule.bounds`), the tile contributes the identity of every accumulator and
leaves every loop-carried value as it was.  Nothing here looks at the shape of the score: a
bias, a cap, an offset or a separate bias Einsum only change the range of the surviving
scores, and what matters is whether the fill is dominated by it (``exp(fill - m)`` is exactly
0 in f32 once ``fill - m <= -104``; ``-inf`` always).

* **Trailing** empty tiles (after the program's last tile with a point): every row has seen its
  points, so a running max is at least the smallest surviving score; the state is tagged
  ``old`` and must come out unchanged.
* **Leading** empty tiles (before the first): either the tile maps the initial constants to
  themselves, or the *reset* proof holds: the states that empty tiles can leave (the initial
  values joined with what an empty tile makes of them, widened to the f32 range) are forgotten
  by the first tile where the row has a point (every carried value it computes is untainted:
  ``max(junk, score) = score`` when junk ≤ fill < score, ``junk * exp(fill - score) = 0``).
  That is the FlashAttention rescaling at work: a finite fill's leftovers are scaled by 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from einsumcc.ir.nodes import Access, Binary, Call, Const, Expr, ExtentRef, Neg, ParamRef, VarRef
from einsumcc.schedule import intervals as iv
from einsumcc.schedule.bounds import Bounds
from einsumcc.schedule.intervals import Iv
from einsumcc.schedule.nodes import Node, NodeKind, NodeProgram, ReadKind
from einsumcc.schedule.schedule import Kernel, Loop

IDENTITY = {"sum": 0.0, "max": -math.inf, "min": math.inf, "prod": 1.0}
F32_MAX = 3.4028234663852886e38

EMPTY, NONEMPTY = "empty", "nonempty"


class Prover:
    def __init__(
        self,
        prog: NodeProgram,
        kernel: Kernel,
        loop: Loop,
        extents: Mapping[str, int | None],
        filtered: str,
        checked: bool = False,
    ) -> None:
        self.prog = prog
        self.c = prog.cascade
        self.kernel = kernel
        self.loop = loop
        self.extents = extents
        self.filtered = filtered  # the statement (tensor) whose tiles are empty
        self.in_loop = set(loop.nodes)
        f = prog.node(filtered)
        self.fnode = f
        # checked: the kernel proves at run time that every row keeps a point (data filters)
        keep = frozenset(set(f.variables) - self._loop_vars(f))
        self.checked = (filtered, keep) if checked else None
        self.bounds = Bounds(prog, extents, None, self.checked)
        self.fill = self.bounds.fill(f)
        self.score = self.bounds.points(f) if f.kind is not NodeKind.SURVIVE else iv.TOP
        self.rows = self.fill is not None and self.bounds.rows_nonempty(f, set(keep))

    def _loop_vars(self, f: Node) -> set[str]:
        """The filtered node's variables that the loop runs over (the tile's key axes)."""
        v = self.loop.var
        rank = self.kernel.axis(v).rank
        out = {v}
        for x in f.variables:
            if x == v:
                continue
            r = self.c.var_ranks.get(x)
            if r is not None and self.kernel.has_axis(x) and self._same_stream(r, rank):
                out.add(x)
        return out

    def _same_stream(self, r: str, rank: str) -> bool:
        """``r`` is the loop's rank or another part of the same split."""
        if r == rank:
            return True
        for sp in self.c.splits:
            family = {sp.parent, *sp.children}
            if rank in family and r in family:
                return True
        return False

    # ------------------------------------------------------------ proofs
    def identity(self, side: str) -> tuple[bool, str]:
        if self.loop.stores:
            return False, "evaluated (the loop writes " + ", ".join(self.loop.stores) + ")"
        if side == "trailing":
            return self._trailing()
        return self._leading()

    def _trailing(self) -> tuple[bool, str]:
        old = {k: self._old_state(k) for k in self.loop.carried}
        env, why = self.run(EMPTY, old)
        if why:
            return False, why
        for key in self.loop.carried:
            if env[key].old != key:
                return False, f"evaluated ({key} would change there)"
        return True, self._skipped()

    def _leading(self) -> tuple[bool, str]:
        init = {k: self._init(k) for k in self.loop.carried}
        env, why = self.run(EMPTY, init)
        if why:
            return False, why
        if all(env[k] == init[k] and init[k].const for k in self.loop.carried):
            return True, self._skipped()
        return self._reset(init)

    def _reset(self, init: dict[str, Iv]) -> tuple[bool, str]:
        junk = self._junk(init)
        if junk is None:
            return False, f"evaluated ({', '.join(self.loop.carried)} would change there)"
        env, why = self.run(EMPTY, junk)
        if why:
            return False, why
        env, why = self.run(NONEMPTY, junk)
        if why:
            return False, why
        for key in self.loop.carried:
            if env[key].tainted:
                return False, f"evaluated ({key} would keep what they leave)"
        fill = f"{self.fill:g}" if self.fill is not None else "the fill"
        return True, (
            f"skipped (what they leave in {', '.join(self.loop.carried)} is scaled by "
            f"exp({fill} - max) = 0 at the row's first point)"
        )

    def _junk(self, init: dict[str, Iv]) -> dict[str, Iv] | None:
        """The states that leading empty tiles can leave (a fixpoint, widened)."""
        state = dict(init)
        for step in range(6):
            env, why = self.run(EMPTY, state)
            if why:
                return None
            new = {k: iv.runs(state[k], env[k].clean()) for k in state}
            if new == state:
                return state
            if step >= 2:
                new = {k: _widen(state[k], v) for k, v in new.items()}
            state = new
        return None

    def _skipped(self) -> str:
        names = ", ".join(self.loop.carried + self.loop.accumulators) or "nothing"
        return f"skipped (they leave {names} unchanged)"

    def _init(self, key: str) -> Iv:
        inits = self.c.inits_of(key)
        v = self.bounds.constant(inits[0].value) if inits else None
        return iv.const(v) if v is not None else iv.TOP

    def _old_state(self, key: str) -> Iv:
        """The carried value after every row saw its points: a running max over the scores
        is at least the smallest surviving score."""
        n = self.prog.node(key)
        r = self._running_extreme(n)
        if r is not None:
            return Iv(r.lo, r.hi, r.nan, key)
        return Iv(old=key)

    def _running_extreme(self, n: Node) -> Iv | None:
        """``T[x + 1] = max(T[x], Y)`` with ``Y`` the filtered scores (or a max over them, or
        a pointwise function of them): at least the smallest kept score once every row saw
        its points."""
        if not (isinstance(n.body, Call) and n.body.fn in ("max", "min")):
            return None
        others = [
            a
            for a in n.body.args
            if not (
                isinstance(a, Access)
                and a.tensor == n.key
                and self.prog.read_kind(a, n) is ReadKind.CARRIED
            )
        ]
        if len(others) != 1 or not isinstance(others[0], Access) or not self.rows:
            return None
        y = self.prog.producer(others[0].tensor)
        if y is None:
            return None
        x = y.key
        if y.kind is NodeKind.REDUCE:
            if y.op != n.body.fn or y.mask or not isinstance(y.body, Access):
                return None
            x = y.body.tensor
        kept = self._kept(x)
        if kept is None:
            return None
        whole = self.bounds.tensor(x)
        if n.body.fn == "max":
            return Iv(kept.lo, max(kept.hi, whole.hi), False)
        return Iv(min(kept.lo, whole.lo), kept.hi, False)

    def _kept(self, tensor: str) -> Iv | None:
        """The range of ``tensor`` where the loop's filtered tensor keeps its point."""
        g = self.bounds.guarded_source(tensor)
        if g is None or g.key != self.filtered or self.fill is None:
            return None
        kept = Bounds(self.prog, self.extents, {self.filtered: self.score}, self.checked).tensor(
            tensor
        )
        return None if kept.nan else kept

    def _removed(self, tensor: str) -> Iv:
        """The range of ``tensor`` where the loop's filtered tensor holds its fill."""
        fill = iv.const(self.fill) if self.fill is not None else iv.TOP
        return Bounds(self.prog, self.extents, {self.filtered: fill}, self.checked).tensor(tensor)

    # ------------------------------------------------------------ abstract evaluation
    def run(self, mode: str, old: dict[str, Iv]) -> tuple[dict[str, Iv], str]:
        """One tile of the loop body; the reason it is no identity ('' when it is)."""
        env: dict[str, Iv] = {}
        for key in self.loop.nodes:
            n = self.prog.node(key)
            value = self.node(n, mode, env, old)
            if key in self.loop.accumulators:
                ident = 0.0 if n.kind is NodeKind.SURVIVE else IDENTITY.get(n.op or "", 0.0)
                if mode == EMPTY and not (value.is_(ident) or self._absorbed(n, value)):
                    return env, f"evaluated ({key} would change there)"
                if mode == NONEMPTY and value.tainted:
                    return env, f"evaluated ({key} would keep what they leave)"
            env[key] = value
        return env, ""

    def _absorbed(self, n: Node, term: Iv) -> bool:
        """A max (min) accumulator's term never above (below) its final value: a finite fill
        under a max over rows that keep a point."""
        if n.kind is not NodeKind.REDUCE or not term.const:
            return False
        final = self.bounds.tensor(n.key)
        if n.op == "max":
            return term.hi <= final.lo
        if n.op == "min":
            return term.lo >= final.hi
        return False

    def node(self, n: Node, mode: str, env: dict[str, Iv], old: dict[str, Iv]) -> Iv:
        if n.statement == self.filtered and n.kind is NodeKind.SURVIVE:
            return iv.const(0.0) if mode == EMPTY else iv.span(0.0, 1.0)
        if n.key == self.filtered and mode == EMPTY:
            if n.filtered:
                return iv.const(self.fill) if self.fill is not None else iv.TOP
            # a reduction whose own points are all removed contributes its identity
            return iv.const(IDENTITY[n.op or "sum"])
        if n.kind is NodeKind.SURVIVE:
            return iv.span(0.0, 1.0)
        if n.kind is NodeKind.MAP:
            value = self.expr(n.body, n, mode, env, old)
        else:
            value = self.reduce(n, mode, env, old)
        if n.filtered:
            fill = self.bounds.fill(n)
            return iv.join(value, iv.const(fill)) if fill is not None else iv.TOP
        return value

    def reduce(self, n: Node, mode: str, env: dict[str, Iv], old: dict[str, Iv]) -> Iv:
        op = n.op or "sum"
        body = self.expr(n.body, n, mode, env, old)
        if mode == NONEMPTY and op in ("max", "min") and isinstance(n.body, Access) and self.rows:
            # the row has a point in this tile: where the fill never wins, the kept values
            kept = self._dominating(op, n.body.tensor)
            body = kept if kept is not None else body
        if n.mask:
            ident = IDENTITY[op]
            return body if body.is_(ident) else iv.join(body, iv.const(ident))
        return iv.reduce_value(op, body, self.bounds.count(n.reduced))

    def _dominating(self, op: str, tensor: str) -> Iv | None:
        kept = self._kept(tensor)
        if kept is None:
            return None
        removed = self._removed(tensor)
        if removed.nan:
            return None
        if op == "max" and removed.hi <= kept.lo:
            return kept
        if op == "min" and removed.lo >= kept.hi:
            return kept
        return None

    def read(
        self, a: Access, reader: Node, mode: str, env: dict[str, Iv], old: dict[str, Iv]
    ) -> Iv:
        p = self.prog.producer(a.tensor)
        if p is None or p.key not in self.in_loop:
            return self.bounds.tensor(a.tensor)
        kind = self.prog.read_kind(a, reader)
        if kind is ReadKind.CARRIED:
            return old.get(p.key, iv.TOP)
        if kind is ReadKind.INIT:
            return self._init(p.key)
        if p.key in env:
            return env[p.key]
        return iv.TOP

    def expr(self, e: Expr, reader: Node, mode: str, env: dict[str, Iv], old: dict[str, Iv]) -> Iv:
        if isinstance(e, Const | ParamRef | ExtentRef | VarRef):
            return self.bounds.expr(e)
        if isinstance(e, Access):
            return self.read(e, reader, mode, env, old)
        if isinstance(e, Neg):
            return iv.neg(self.expr(e.operand, reader, mode, env, old))
        if isinstance(e, Binary):
            a = self.expr(e.lhs, reader, mode, env, old)
            b = self.expr(e.rhs, reader, mode, env, old)
            return iv.binary(e.op, a, b)
        if isinstance(e, Call):
            args = [self.expr(x, reader, mode, env, old) for x in e.args]
            if len(args) == 1:
                return iv.unary(e.fn, args[0])
            if e.fn in ("max", "min"):
                return iv.extreme(e.fn, args[0], args[1])
        return iv.TOP


def _widen(before: Iv, after: Iv) -> Iv:
    lo = after.lo if after.lo >= before.lo else (-math.inf if after.lo < -F32_MAX else -F32_MAX)
    hi = after.hi if after.hi <= before.hi else (math.inf if after.hi > F32_MAX else F32_MAX)
    return Iv(lo, hi, after.nan, "", after.tainted)
