"""Which rewrite computes each statistic, and its finished value.

:class:`Planner` applies the catalog (:mod:`einsumcc.derive.rewrites`) to every statistic of a
:class:`~einsumcc.derive.symbolic.Symbolic` view: a max becomes a running max, a sum becomes
one or more accumulators (deferred divisions, exp correction factors), a centered second
moment becomes Chan's recurrence, and what no rewrite fits stays a full reduction ("plain").
``finals`` gives each statistic's value in terms of the recurrences' last iterates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import sympy

from einsumcc.derive import rewrites as rw
from einsumcc.derive.symbolic import NotRewritableError, Stat, Symbolic


@dataclass(frozen=True)
class Applied:
    """One rewrite applied: its name, what it rewrote, and its certificates."""

    rewrite: str
    target: str
    detail: str
    certificates: tuple[rw.Certificate, ...] = ()

    def __str__(self) -> str:
        return f"{self.rewrite} ({self.target}): {self.detail}"


@dataclass
class Planner:
    sym: Symbolic
    moments_form: str = "welford"
    maxes: dict[tuple[Any, ...], rw.RunningMax] = field(default_factory=dict)
    accs: dict[tuple[Any, ...], rw.Accumulator] = field(default_factory=dict)
    moments: dict[sympy.Symbol, rw.Moments] = field(default_factory=dict)  # by the M2 stat
    finals: dict[sympy.Symbol, sympy.Expr] = field(default_factory=dict)
    plain: dict[sympy.Symbol, Stat] = field(default_factory=dict)
    applied: list[Applied] = field(default_factory=list)
    why_not: dict[str, str] = field(default_factory=dict)  # origin → why no rewrite applies
    # a finished statistic (by its statement) → the rewrites that stopped others waiting for it
    removes: dict[str, set[str]] = field(default_factory=dict)

    def removed(self, st: Stat, rewrite: str) -> None:
        self.removes.setdefault(st.origin or str(st.symbol), set()).add(rewrite)

    def run(self) -> None:
        stats = list(self.sym.stats.values())
        if self.moments_form == "welford":
            for st in stats:
                self.plan_moments(st)
        for st in stats:
            if st.symbol in self.finals:
                continue
            if st.op in ("max", "min"):
                self.plan_max(st)
            else:
                self.plan_sum(st)

    def note(self, name: str, st: Stat, detail: str, certs: list[rw.Certificate]) -> None:
        target = st.origin or str(st.symbol)
        for a in self.applied:
            if a.rewrite == name and a.target == target:
                return
        self.applied.append(Applied(name, target, detail, tuple(certs)))

    # ------------------------------------------------------------ max
    def running(self, g: Stat, init: sympy.Expr) -> rw.RunningMax:
        key = (g.op, sympy.srepr(g.body), g.variables, g.where, sympy.srepr(init))
        if key not in self.maxes:
            final = sympy.Symbol(f"F{len(self.maxes)}_max", real=True)
            self.maxes[key] = rw.RunningMax(
                g.op, g.body, g.variables, g.where, init, g.origin, final
            )
        return self.maxes[key]

    def plan_max(self, st: Stat) -> None:
        if self.sym.masked(st.body):
            self.plain_stat(st, f"{st.op} of a filtered tensor computed from a statistic")
            return
        if self.sym.blocked(st.body):
            self.plain_stat(st, f"{st.op} of a value that needs a finished statistic")
            return
        init = -sympy.oo if st.op == "max" else sympy.oo
        self.finals[st.symbol] = self.running(st, init).final

    # ------------------------------------------------------------ sums
    def accumulator(
        self,
        body: sympy.Expr,
        exponent: sympy.Expr | None,
        ref: rw.RunningMax | None,
        st: Stat,
        rate: sympy.Expr = 1,
    ) -> rw.Accumulator:
        key = (
            sympy.srepr(body),
            None if exponent is None else sympy.srepr(exponent),
            None if ref is None else ref.final,
            st.variables,
            st.where,
            sympy.srepr(rate),
        )
        if key not in self.accs:
            final = sympy.Symbol(f"F{len(self.accs)}_sum", real=True)
            self.accs[key] = rw.Accumulator(
                body, exponent, ref, st.variables, st.where, st.origin, final, rate
            )
        return self.accs[key]

    def plan_sum(self, st: Stat) -> None:
        found = rw.division_deferral(self.sym, st)
        if found is None:
            self.plain_stat(st, "its body is not linear in the finished statistics it needs")
            return
        splits, cert = found
        final: sympy.Expr = sympy.Integer(0)
        for sp in splits:
            term = self.plan_term(st, sp)
            if term is None:
                return
            final += term
        for sp in splits:
            for s in self.sym.stats_in(sp.coef):
                self.removed(self.sym.stats[s], "division deferral")
        if any(self.sym.blocked(sp.coef) for sp in splits):
            self.note("division deferral", st, "finished factors moved out of the sum", [cert])
        self.finals[st.symbol] = final

    def plan_term(self, st: Stat, sp: rw.SumTerm) -> sympy.Expr | None:
        if self.sym.masked(sp.body) or self.sym.masked(sp.coef):
            try:
                body, conds = self.sym.split_masks(sp.body)
            except NotRewritableError as exc:
                self.plain_stat(st, str(exc))
                return None
            if self.sym.masked(sp.coef) or (sp.mixed is not None and self.sym.masked(sp.mixed)):
                self.plain_stat(st, "a filter outside the summed value")
                return None
            st = dataclasses.replace(
                st, where=(*st.where, *(c for c in conds if c not in st.where))
            )
            sp = dataclasses.replace(sp, body=body)
        if sp.mixed is None:
            if not self.sym.streams(sp.body) and not st.where:
                return sp.coef * sp.body * self.sym.count(st.variables)
            return sp.coef * self.accumulator(sp.body, None, None, st).final
        found = rw.running_max(self.sym, sp.mixed)
        if found is not None:
            s, g, init, rest, certs, rate = found
            ref = self.running(g, init)
            self.removed(g, "running max with exp correction factors")
            if init != -sympy.oo:
                self.note("sink fold", st, f"the sink {init} starts the running max", certs[:1])
            self.note(
                "running max",
                st,
                f"exp(. - max) kept under the running max of {g.origin or g.symbol}, "
                "corrected by exp(R_old - R_new)",
                certs[-2:],
            )
            acc = self.accumulator(sp.body, s, ref, st, rate)
            return sp.coef * sympy.exp(rest) * acc.final
        self.plain_stat(st, "exp of a value that needs a finished statistic other than a max")
        return None

    # ------------------------------------------------------------ moments
    def plan_moments(self, st: Stat) -> None:
        found = rw.moments(self.sym, st)
        if found is None:
            return
        mean, n, q, certs = found
        mean_final = sympy.Symbol(f"F{len(self.moments)}_mean", real=True)
        m2_final = sympy.Symbol(f"F{len(self.moments)}_m2", real=True)
        self.moments[st.symbol] = rw.Moments(
            mean.body, st.variables, n, mean.origin or st.origin, mean_final, m2_final
        )
        self.finals[mean.symbol] = n * mean_final
        self.removed(mean, "moments (Chan/Welford)")
        self.finals[st.symbol] = q * m2_final
        self.note(
            "moments",
            st,
            f"mean and centered second moment of {mean.origin or mean.symbol} in one pass "
            "(Chan/Welford)",
            certs,
        )

    # ------------------------------------------------------------ no rewrite
    def plain_stat(self, st: Stat, why: str) -> None:
        self.plain[st.symbol] = st
        self.finals[st.symbol] = sympy.Symbol(f"P_{st.symbol}", real=True)
        self.why_not[st.origin or str(st.symbol)] = why

    def resolve(self, expr: sympy.Expr) -> sympy.Expr:
        """``expr`` with every statistic replaced by its finished value; ``max(G, c)`` is the
        last iterate of the running max started at the sink ``c``, when there is one."""
        for _ in range(len(self.finals) + 1):
            found = self.sym.stats_in(expr)
            if not found:
                break
            expr = expr.xreplace({s: self.finals[s] for s in found})
        folded = {}
        for (op, body, variables, where, _), rm in self.maxes.items():
            raw = self.maxes.get((op, body, variables, where, sympy.srepr(-sympy.oo)))
            if raw is not None and raw is not rm:
                folded[sympy.Max(raw.final, rm.init)] = rm.final
        return expr.xreplace(folded) if folded else expr
