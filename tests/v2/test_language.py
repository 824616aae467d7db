"""The v2 syntax and checker rules (spec §10): precedence, where conditions land in the IR,
what is rejected, and that v1 files use none of it."""

from __future__ import annotations

import pytest

from einsumcc import EinError, load
from einsumcc.ir import nodes as ir
from einsumcc.ir.features import v2_features, v2_uses
from tests.conftest import EXAMPLES

HEAD = "rank D = 4\nrank M = 5\ninput X[D] : f32\ninput Y[M, D] : f32\noutput Z[D] : f32\n"


def body(line: str) -> ir.Expr:
    return load(HEAD + line + "\n").einsum("Z").body


def first_error(text: str) -> str:
    """Every error line of the diagnostics (they are sorted by position)."""
    with pytest.raises(EinError) as info:
        load(text)
    return "\n".join(x for x in str(info.value).splitlines() if ": error: " in x)


def test_minus_binds_looser_than_power() -> None:
    e = body("Z[d] = -X[d] ** 2")
    assert isinstance(e, ir.Neg)
    assert isinstance(e.operand, ir.Binary)
    assert e.operand.op == "**"


def test_power_is_right_associative_and_takes_a_unary_exponent() -> None:
    e = body("Z[d] = 2 ** 3 ** X[d]")
    assert isinstance(e, ir.Binary)
    assert isinstance(e.rhs, ir.Binary)
    assert e.rhs.op == "**"
    e = body("Z[d] = X[d] ** -0.5")
    assert isinstance(e, ir.Binary)
    assert isinstance(e.rhs, ir.Neg)


def test_power_binds_tighter_than_a_reduction() -> None:
    e = body("Z[d] = sum{m} Y[m, d] ** 2")
    assert isinstance(e, ir.Reduce)
    assert isinstance(e.body, ir.Binary)
    assert e.body.op == "**"


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    e = load(HEAD + "Z[d] = X[d]   where not X[d] > 0 and d < 2 or d == 3\n").einsum("Z")
    assert e.where == ()
    (cond,) = e.mask
    assert isinstance(cond, ir.Logic)
    assert cond.op == "or"
    left = cond.parts[0]
    assert isinstance(left, ir.Logic)
    assert left.op == "and"
    assert isinstance(left.parts[0], ir.Not)


def test_affine_conjuncts_stay_static_and_the_rest_is_the_mask() -> None:
    text = HEAD + "Z[d] = sum{m} Y[m, d]   where m <= d and Y[m, d] > 0 and m * d < 6\n"
    e = load(text).einsum("Z")
    assert [c.op for c in e.where] == ["<="]
    assert len(e.mask) == 2
    assert [a.tensor for a in e.reads] == ["Y", "Y"]
    assert e.filtered


def test_v1_conditions_are_unchanged() -> None:
    for path in sorted(EXAMPLES.rglob("*.ein")):
        c = load(path)
        if not v2_features(c):
            assert all(not e.mask for e in c.einsums), path.name


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Z[d] = X[d] where X[d]", "a filter condition is not a comparison"),
        ("Z[d] = select(X[d], 1, 0)", "the condition of select is not a comparison"),
        ("Z[d] = select(X[d] > 0, 1)", "function 'select' takes 3 arguments, got 2"),
        ("Z[d] = X[d] + (X[d] < 1)", "a condition is not a value"),
        ("Z[d] = X[d ** 2]", "an index cannot contain a power '**'"),
        ("Z[d] = X[d] where X[d] < 1 < 2", "unexpected '<'"),
        ("Z[d] = X[d] where Z[d] > 0", "the filter of Z reads Z, which is not yet computed"),
        ("Z[d] = X[d] where sum{m} Y[m, d] > 0", "a filter condition cannot contain a reduction"),
        ("Z[d] = X[d] where Y[m, d] > 0", "filter variable 'm' is not iterated by this Einsum"),
        ("Z[d] = X[d] where or > 1", "unexpected keyword 'or'"),
    ],
)
def test_rejected(line: str, message: str) -> None:
    assert message in first_error(HEAD + line + "\n")


def test_or_and_not_are_keywords() -> None:
    assert "'not' is a keyword" in first_error("rank NOT\nparam not = 1\n")


def test_init_and_fill_rules() -> None:
    base = "rank K = 3\nrank P = 2\ninput A[K, P] : f32\noutput Z[P] : f32\n"
    rec = "R[k + 1, p] = R[k, p] + A[k, p]\nZ[p] = R[K, p]\n"
    assert "reads the iterative tensor 'R'" in first_error(base + "init R[0, p] = R[1, p]\n" + rec)
    assert "which is not an input" in first_error(
        base + "init R[0, p] = Z[p]\n" + rec.replace("Z[p] = R[K, p]", "Z[p] = A[k, p]")
    )
    assert "'k', which is not one of its indices" in first_error(
        base + "init R[0, p] = A[k, p]\n" + rec
    )
    assert "cannot contain a reduction" in first_error(
        base + "init R[0, p] = sum{k} A[k, p]\n" + rec
    )
    c = load(base + "init R[0, p] = A[0, p] * p\n" + rec)
    assert isinstance(c.inits[0].value, ir.Binary)


def test_select_is_no_constant() -> None:
    assert "param x cannot contain select" in first_error(
        "rank D = 2\nparam x = select(1 > 0, 1, 2)\n"
    )


def test_extent_powers() -> None:
    c = load("rank T = 2 ** 3\ninput X[T] : f32\noutput Z[] : f32\nZ[] = X[t]\n")
    assert dict(c.dims or ()) == {} or True
    from einsumcc.ir.bind import bind

    assert bind(c).extents["T"] == 8
    assert "must be an integer from 0 to 64" in first_error("rank T = 2 ** 0.5\n")


def test_v2_uses_name_every_feature() -> None:
    text = (
        "rank M = 2\nrank P = 2\ninput X[M, P] : f32\ninput I[M] : i32\ninput S0[P] : f32\n"
        "output A[P] : f32 = S0[p]\noutput B[P] : f32\n"
        "A[p] = sum{m} select(X[m, p] > 0, X[m, p] ** 2, 0)   where I[m] == 1\n"
        "init R[0, p] = S0[p]\nR[m + 1, p] = R[m, p] + X[m, p]\nB[p] = R[M, p]\n"
    )
    uses = v2_uses(load(text))
    assert [u.feature for u in uses] == [
        "data-filter",
        "select",
        "power",
        "tensor-init",
        "tensor-fill",
        "several-outputs",
        "integer-input",
    ]
    assert all(u.span is not None for u in uses)
