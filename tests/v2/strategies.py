"""Hypothesis strategies for v2 programs: data filters with and/or/not, select, **, tensor-valued
inits and fills, several outputs, integer inputs.  Well-formed by construction."""

from __future__ import annotations

from hypothesis import strategies as st

HEADER = """cascade v2
rank M = 4
rank P = 3
param t = 0.5
input  X[M, P] : f32
input  IDS[M] : i32
input  B[P] : bool
input  S0[P] : f32
"""

# value atoms over (m, p) and over p only
ATOMS_MP = ["X[m, p]", "IDS[m]", "m", "p", "t", "1.5", "2", "M"]
ATOMS_P = ["S0[p]", "B[p]", "p", "t", "3", "P"]


@st.composite
def values(draw: st.DrawFn, atoms: list[str], depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(atoms))
    kind = draw(st.sampled_from(["bin", "neg", "pow", "select", "call"]))
    a = draw(values(atoms, depth - 1))
    b = draw(values(atoms, depth - 1))
    if kind == "bin":
        return f"({a} {draw(st.sampled_from(['+', '-', '*', '/']))} {b})"
    if kind == "neg":
        return f"-{a}"
    if kind == "pow":
        exp = draw(st.sampled_from(["2", "-0.5", "3 ** 0.5", "-1", "(1 / 3)"]))
        return f"{a} ** {exp}" if draw(st.booleans()) else f"({a}) ** {exp}"
    if kind == "select":
        return f"select({draw(conditions(atoms, depth - 1))}, {a}, {b})"
    return f"{draw(st.sampled_from(['abs', 'exp', 'tanh']))}({a})"


@st.composite
def conditions(draw: st.DrawFn, atoms: list[str], depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        return f"{draw(values(atoms, 0))} {op} {draw(values(atoms, 1))}"
    kind = draw(st.sampled_from(["and", "or", "not"]))
    a = draw(conditions(atoms, depth - 1))
    if kind == "not":
        return f"not {a}" if draw(st.booleans()) else f"not ({a})"
    b = draw(conditions(atoms, depth - 1))
    return f"({a} {kind} {b})" if draw(st.booleans()) else f"{a} {kind} {b}"


@st.composite
def v2_programs(draw: st.DrawFn) -> str:
    lines = [HEADER]
    fill = draw(st.sampled_from(["-1", "S0[p] * 2", "select(B[p] != 0, p, -inf)", "0"]))
    lines.append(f"output Y[P] : f32 = {fill}")
    lines.append("output Z[M, P] : f32")
    lines.append("output R[P] : f32")
    op = draw(st.sampled_from(["sum", "max", "min"]))
    cond = draw(conditions(ATOMS_MP))
    if draw(st.booleans()):
        cond = f"m <= p + 1 and {cond}"
    lines.append(f"Y[p] = {op}{{m}} (X[m, p] + {draw(values(ATOMS_MP))}) where {cond}")
    lines.append(f"Z[m, p] = {draw(values(ATOMS_MP))} + Y[p]")
    init = draw(st.sampled_from(["0", "S0[p]", "S0[p] ** 2 - p", "-inf"]))
    lines.append(f"init RR[0, p] = {init}")
    lines.append("RR[m + 1, p] = max(RR[m, p], Z[m, p])")
    lines.append("R[p] = RR[M, p]")
    return "\n".join(lines) + "\n"
