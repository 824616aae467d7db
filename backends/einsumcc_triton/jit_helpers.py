"""The module-level ``@triton.jit`` helpers a generated module may call (each emitted only
when a kernel uses it): floor division, EDGE's safe divide, expm1 and tanh without
cancellation, a product reduction, and NaN-propagating max/min reductions."""

from __future__ import annotations

import math

from einsumcc_triton import kernel_ast as ka


def _nan_reduction(op: str, jit: tuple[ka.Expr, ...]) -> ka.FunctionDef:
    """``_ein_nanmax``/``_ein_nanmin``: the reduction along an axis, NaN if any element is NaN
    (as numpy's max and min)."""
    x = ka.name("x")
    return ka.FunctionDef(
        f"_ein_nan{op}",
        (ka.Arg("x"), ka.Arg("axis", ka.attr("tl", "constexpr"))),
        (
            ka.Comment(f"{op} along axis, NaN if any element is NaN (as numpy's {op})"),
            ka.Assign(ka.name("m"), ka.call(f"tl.{op}", x, ka.name("axis"))),
            ka.Assign(
                ka.name("bad"),
                ka.call(
                    "tl.max",
                    ka.call("tl.where", ka.BinaryOp("!=", x, x), ka.Literal(1), ka.Literal(0)),
                    ka.name("axis"),
                ),
            ),
            ka.Return(
                ka.call(
                    "tl.where",
                    ka.BinaryOp(">", ka.name("bad"), ka.Literal(0)),
                    ka.fconst(math.nan),
                    ka.name("m"),
                )
            ),
        ),
        jit,
    )


def helper_defs() -> list[ka.FunctionDef]:
    """The module-level @triton.jit helpers (emitted only when used)."""
    jit = (ka.attr("triton", "jit"),)
    n, d, a, b, x = ka.name("n"), ka.name("d"), ka.name("a"), ka.name("b"), ka.name("x")
    q = ka.name("q")
    return [
        ka.FunctionDef(
            "_ein_floordiv",
            (ka.Arg("n"), ka.Arg("d")),
            (
                ka.Comment("floor(n / d) for d > 0, whichever way // rounds negative numbers"),
                ka.Assign(q, ka.BinaryOp("//", n, d)),
                ka.Return(
                    ka.call(
                        "tl.where",
                        ka.BinaryOp(">", ka.BinaryOp("*", q, d), n),
                        ka.BinaryOp("-", q, ka.Literal(1)),
                        q,
                    )
                ),
            ),
            jit,
        ),
        ka.FunctionDef(
            "_ein_safe_div",
            (ka.Arg("a"), ka.Arg("b")),
            (
                ka.Comment("a / b where b != 0, else 0 (EDGE's divide merge)"),
                ka.Assign(ka.name("nz"), ka.BinaryOp("!=", b, ka.fconst(0.0))),
                ka.Return(
                    ka.call(
                        "tl.where",
                        ka.name("nz"),
                        ka.BinaryOp("/", a, ka.call("tl.where", ka.name("nz"), b, ka.fconst(1.0))),
                        ka.fconst(0.0),
                    )
                ),
            ),
            jit,
        ),
        ka.FunctionDef(
            "_ein_expm1",
            (ka.Arg("x"),),
            (
                ka.Comment("exp(x) - 1 without cancellation (Kahan)"),
                ka.Assign(ka.name("u"), ka.call("tl.exp", x)),
                ka.Assign(ka.name("um1"), ka.BinaryOp("-", ka.name("u"), ka.fconst(1.0))),
                ka.Assign(
                    ka.name("r"),
                    ka.call(
                        "tl.where",
                        ka.BinaryOp("==", ka.name("um1"), ka.fconst(0.0)),
                        x,
                        ka.BinaryOp(
                            "/",
                            ka.BinaryOp("*", ka.name("um1"), x),
                            ka.call("tl.log", ka.name("u")),
                        ),
                    ),
                ),
                ka.Return(
                    ka.call(
                        "tl.where",
                        ka.BinaryOp("==", ka.name("um1"), ka.fconst(-1.0)),
                        ka.fconst(-1.0),
                        ka.name("r"),
                    )
                ),
            ),
            jit,
        ),
        ka.FunctionDef(
            "_ein_tanh",
            (ka.Arg("x"),),
            (
                ka.Comment("tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|)), with the sign of x"),
                ka.Assign(
                    ka.name("e"),
                    ka.call("_ein_expm1", ka.BinaryOp("*", ka.fconst(-2.0), ka.call("tl.abs", x))),
                ),
                ka.Assign(
                    ka.name("t"),
                    ka.BinaryOp(
                        "/",
                        ka.UnaryOp("-", ka.name("e")),
                        ka.BinaryOp("+", ka.fconst(2.0), ka.name("e")),
                    ),
                ),
                ka.Return(
                    ka.call(
                        "tl.where",
                        ka.BinaryOp("<", x, ka.fconst(0.0)),
                        ka.UnaryOp("-", ka.name("t")),
                        ka.name("t"),
                    )
                ),
            ),
            jit,
        ),
        ka.FunctionDef(
            "_ein_mul",
            (ka.Arg("a"), ka.Arg("b")),
            (ka.Return(ka.BinaryOp("*", a, b)),),
            jit,
        ),
        *(_nan_reduction(op, jit) for op in ("max", "min")),
    ]
