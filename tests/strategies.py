"""Hypothesis strategies: random valid `.ein` programs, built to be well-formed by construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

RANKS = ["I", "J", "K", "L"]
DTYPES = ["f16", "bf16", "f32", "f64"]
FUNCS = ["exp", "tanh", "sigmoid", "relu", "abs"]


@dataclass
class _Ctx:
    ranks: list[str]
    tensors: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> ranks
    params: list[str] = field(default_factory=list)


@st.composite
def _access(draw: st.DrawFn, ctx: _Ctx) -> tuple[str, set[str]]:
    name = draw(st.sampled_from(sorted(ctx.tensors)))
    dims = ctx.tensors[name]
    return f"{name}[{', '.join(d.lower() for d in dims)}]", {d.lower() for d in dims}


@st.composite
def _expr(draw: st.DrawFn, ctx: _Ctx, depth: int) -> tuple[str, set[str]]:
    """An expression text and the rank variables it uses."""
    leaf = depth <= 0 or draw(st.booleans())
    if leaf:
        kind = draw(st.sampled_from(["access", "access", "number", "param", "extent", "var"]))
        if kind == "access" or (kind == "param" and not ctx.params):
            return draw(_access(ctx))
        if kind == "number":
            value = draw(st.sampled_from(["1", "2", "0.5", "3.25", "1e-3", "inf"]))
            return value, set()
        if kind == "param":
            return draw(st.sampled_from(ctx.params)), set()
        r = draw(st.sampled_from(ctx.ranks))
        return (r, set()) if kind == "extent" else (r.lower(), {r.lower()})
    kind = draw(st.sampled_from(["bin", "bin", "neg", "call", "call2", "paren"]))
    if kind == "neg":
        text, used = draw(_expr(ctx, depth - 1))
        return f"-({text})", used
    if kind == "paren":
        text, used = draw(_expr(ctx, depth - 1))
        return f"({text})", used
    if kind == "call":
        text, used = draw(_expr(ctx, depth - 1))
        return f"{draw(st.sampled_from(FUNCS))}({text})", used
    a, ua = draw(_expr(ctx, depth - 1))
    b, ub = draw(_expr(ctx, depth - 1))
    if kind == "call2":
        return f"{draw(st.sampled_from(['max', 'min', 'safe_div']))}({a}, {b})", ua | ub
    op = draw(st.sampled_from(["+", "-", "*", "/"]))
    return f"{a} {op} ({b})", ua | ub


@st.composite
def cascades(draw: st.DrawFn, max_einsums: int = 4) -> str:
    """The text of a random valid cascade."""
    n_ranks = draw(st.integers(2, 4))
    ranks = RANKS[:n_ranks]
    lines = [f"cascade random_{draw(st.integers(0, 99))}"]
    for r in ranks:
        lines.append(f"rank {r} = {draw(st.integers(1, 4))}")
    ctx = _Ctx(ranks)
    for i in range(draw(st.integers(0, 2))):
        value = draw(st.sampled_from(["1 / sqrt(I)", "0.125", "2 * J + 1", "-inf", "exp(1)"]))
        lines.append(f"param s{i} = {value}")
        ctx.params.append(f"s{i}")
    for i in range(draw(st.integers(1, 3))):
        dims = tuple(draw(st.lists(st.sampled_from(ranks), max_size=3, unique=True)))
        name = f"X{i}"
        lines.append(f"input {name}[{', '.join(dims)}] : {draw(st.sampled_from(DTYPES))}")
        ctx.tensors[name] = dims
    n = draw(st.integers(1, max_einsums))
    body: list[str] = []
    for i in range(n):
        out = f"T{i}" if i < n - 1 else "OUT"
        lhs = tuple(draw(st.lists(st.sampled_from(ranks), max_size=3, unique=True)))
        lhs_vars = {r.lower() for r in lhs}
        text, used = draw(_expr(ctx, draw(st.integers(0, 3))))
        free = sorted(used - lhs_vars)
        if free and draw(st.booleans()):
            op = draw(st.sampled_from(["sum", "max", "min", "prod"]))
            text = f"{op}{{{', '.join(free)}}} ({text})"
        where = ""
        if lhs and draw(st.booleans()):
            v = draw(st.sampled_from(sorted(lhs_vars)))
            bound = draw(st.sampled_from(["1", "2", v.upper(), f"{v.upper()} - 1"]))
            where = f" where {v} {draw(st.sampled_from(['<', '<=', '>=', '!=']))} {bound}"
        if draw(st.booleans()):
            fill = draw(st.sampled_from(["0", "-inf", "-1e30", "1.5"]))
            dtype = "f32" if fill != "-1e30" else draw(st.sampled_from(["f32", "f64"]))
            role = "output" if out == "OUT" else "tensor"
            lines.append(f"{role} {out}[{', '.join(lhs)}] : {dtype} = {fill}")
        elif out == "OUT":
            lines.append(f"output OUT[{', '.join(lhs)}] : f32")
        body.append(f"{out}[{', '.join(v.lower() for v in lhs)}] = {text}{where}")
        ctx.tensors[out] = lhs
    if draw(st.booleans()):
        # a recurrence over the first rank, read back at its final iterate
        r = ranks[0]
        v = r.lower()
        src, _ = draw(_access(ctx))
        lines.append("output S[] : f32")
        body.append(f"init R[0] = {draw(st.sampled_from(['0', '-inf', '1']))}")
        body.append(f"R[{v} + 1] = max(R[{v}], sum{{*}} {src})".replace("sum{*} ", ""))
        body.append(f"S[] = R[{r}]")
    order = draw(st.permutations(body))
    return "\n".join(lines + list(order)) + "\n"
