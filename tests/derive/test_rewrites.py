"""Each rewrite of the catalog on its own: its precondition, what it builds, its certificate."""

from __future__ import annotations

import pytest
import sympy

import einsumcc
from einsumcc.derive import rewrites as rw
from einsumcc.derive.symbolic import Symbolic, to_ir
from einsumcc.ir.dump import render_expr

HEAD = "rank M\nrank P\ninput X[M, P] : f32\ninput V[M, P] : f32\noutput Y[P] : f32\n"


def stats_of(text: str, rank: str = "M") -> tuple[Symbolic, dict[str, rw.Stat]]:
    c = einsumcc.load(text)
    sym = Symbolic(c, rank)
    from einsumcc.derive.engine import _scan
    from einsumcc.derive.plan import Planner

    _scan(sym, Planner(sym))
    return sym, {st.origin: st for st in sym.stats.values()}


def test_statistics_and_atoms() -> None:
    sym, stats = stats_of(HEAD + "G[p] = max{m} X[m, p]\nY[p] = sum{m} exp(X[m, p] - G[p])\n")
    assert set(stats) == {"G", "Y"}
    g, y = stats["G"], stats["Y"]
    assert g.op == "max"
    assert y.op == "sum"
    assert g.symbol in y.body.free_symbols  # the sum needs the finished max: inlined
    assert sym.blocked(y.body)
    assert not sym.blocked(g.body)
    assert sym.streams(g.body)


def test_division_deferral_moves_finished_factors_out() -> None:
    text = HEAD + "D[p] = sum{m} X[m, p]\nY[p] = sum{m} (X[m, p] / D[p] * V[m, p])\n"
    sym, stats = stats_of(text)
    found = rw.division_deferral(sym, stats["Y"])
    assert found is not None
    splits, cert = found
    assert cert.holds
    (only,) = splits
    assert only.mixed is None
    assert stats["D"].symbol in only.coef.free_symbols  # 1 / D is out of the sum
    assert not sym.blocked(only.body)


def test_division_deferral_needs_linearity() -> None:
    text = HEAD + "D[p] = sum{m} X[m, p]\nY[p] = sum{m} log(X[m, p] - D[p])\n"
    sym, stats = stats_of(text)
    assert rw.division_deferral(sym, stats["Y"]) is None


def test_linearity_splits_a_polynomial() -> None:
    text = HEAD + "D[p] = sum{m} X[m, p]\nY[p] = sum{m} ((X[m, p] - D[p]) * V[m, p])\n"
    sym, stats = stats_of(text)
    found = rw.division_deferral(sym, stats["Y"])
    assert found is not None
    assert len(found[0]) == 2
    assert found[1].holds


def test_running_max_with_correction() -> None:
    sym, stats = stats_of(HEAD + "G[p] = max{m} X[m, p]\nY[p] = sum{m} exp(X[m, p] - G[p])\n")
    (split,), _ = rw.division_deferral(sym, stats["Y"]) or ((), None)
    assert split.mixed is not None
    found = rw.running_max(sym, split.mixed)
    assert found is not None
    s, g, init, rest, certs, rate = found
    assert rate == 1
    assert g is stats["G"]
    assert init == -sympy.oo
    assert rest == 0
    assert sym.streams(s)
    assert not sym.blocked(s)
    assert len(certs) == 2
    assert all(c.holds for c in certs)
    assert "exp" in certs[1].identity


def test_running_max_needs_a_max() -> None:
    text = HEAD + "G[p] = sum{m} X[m, p]\nY[p] = sum{m} exp(X[m, p] - G[p])\n"
    sym, stats = stats_of(text)
    (split,), _ = rw.division_deferral(sym, stats["Y"]) or ((), None)
    assert rw.running_max(sym, split.mixed) is None


def test_sink_folds_a_constant_into_the_init() -> None:
    text = HEAD + "G[p] = max(max{m} X[m, p], 0)\nY[p] = sum{m} exp(X[m, p] - G[p])\n"
    sym, stats = stats_of(text)
    (split,), _ = rw.division_deferral(sym, stats["Y"]) or ((), None)
    found = rw.running_max(sym, split.mixed)
    assert found is not None
    _, _, init, rest, certs, _ = found
    assert init == 0
    assert rest == 0
    assert certs[0].holds
    assert "max" in certs[0].identity


def test_sink_from_an_input_is_not_an_init() -> None:
    text = (
        HEAD.replace("output", "input S[P] : f32\noutput")
        + "G[p] = max(max{m} X[m, p], S[p])\nY[p] = sum{m} exp(X[m, p] - G[p])\n"
    )
    sym, stats = stats_of(text)
    (split,), _ = rw.division_deferral(sym, stats["Y"]) or ((), None)
    found = rw.running_max(sym, split.mixed)
    assert found is not None
    _, g, init, rest, _, _ = found
    assert init == -sympy.oo  # v1 inits are constants: the running max ends at G
    assert g.symbol in rest.free_symbols


def test_moments_detects_a_centered_second_moment() -> None:
    text = (
        "rank D\nrank N\ninput X[D, N] : f32\noutput Y[N] : f32\n"
        "MU[n] = sum{d} X[d, n] / D\nY[n] = sum{d} ((X[d, n] - MU[n]) * (X[d, n] - MU[n])) / D\n"
    )
    sym, stats = stats_of(text, "D")
    found = rw.moments(sym, stats["Y"])
    assert found is not None
    mean, n, q, certs = found
    assert mean is stats["MU"]
    assert str(n) == "D"
    assert q == 1
    assert all(c.holds for c in certs)
    assert "n_a" in certs[1].identity


def test_moments_precondition() -> None:
    cubed = (
        "rank D\nrank N\ninput X[D, N] : f32\noutput Y[N] : f32\n"
        "MU[n] = sum{d} X[d, n] / D\n"
        "Y[n] = sum{d} ((X[d, n] - MU[n]) * (X[d, n] - MU[n]) * (X[d, n] - MU[n]))\n"
    )
    sym, stats = stats_of(cubed, "D")
    assert rw.moments(sym, stats["Y"]) is None
    filtered = cubed.replace("* (X[d, n] - MU[n]))\n", ")   where d < 5\n")
    sym, stats = stats_of(filtered, "D")
    assert rw.moments(sym, stats["Y"]) is None


def test_chan_identity_is_proved() -> None:
    assert rw._chan_identity().holds


def test_prove_rejects_a_false_identity() -> None:
    a, b = sympy.symbols("a b", real=True)
    assert not rw.prove(sympy.exp(a) * sympy.exp(b), sympy.exp(a - b)).holds
    assert rw.prove(sympy.exp(a - b) * sympy.exp(b), sympy.exp(a)).holds


def test_sympy_back_to_the_ir() -> None:
    m = sympy.Symbol("m", integer=True, nonnegative=True)
    d = sympy.Symbol("D", integer=True, positive=True)
    x = sympy.Symbol("x", real=True)
    from einsumcc.ir.nodes import ParamRef

    expr = (x - 2) ** 2 / (m + 1) / sympy.sqrt(d) + sympy.exp(-x) - sympy.Rational(1, 3)
    text = render_expr(to_ir(expr, {x: ParamRef("x")}))
    c = einsumcc.load(f"rank D = 4\nrank M = 3\nparam x = 0.5\noutput Y[M] : f64\nY[m] = {text}\n")
    got = einsumcc.evaluate(c)["Y"]
    want = [float(expr.subs({x: 0.5, d: 4, m: k})) for k in range(3)]
    assert list(got) == pytest.approx(want, rel=1e-12)


def test_running_max_with_a_temperature() -> None:
    text = (
        HEAD.replace("output", "param T = 0.5\noutput")
        + "G[p] = max{m} X[m, p]\nY[p] = sum{m} exp((X[m, p] - G[p]) / T)\n"
    )
    sym, stats = stats_of(text)
    (split,), _ = rw.division_deferral(sym, stats["Y"]) or ((), None)
    found = rw.running_max(sym, split.mixed)
    assert found is not None
    *_, certs, rate = found
    assert rate != 1
    assert len(rate.free_symbols) == 1  # 1 / T
    assert all(c.holds for c in certs)
