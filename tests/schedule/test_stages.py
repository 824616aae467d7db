"""The stages of the schedule builder one at a time: extents, nesting, fusion, passes, tiles,
kernels and the abstract arithmetic of the empty-tile proof."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from einsumcc import EinError, load
from einsumcc.schedule import intervals as iv
from einsumcc.schedule.build import make_context
from einsumcc.schedule.context import MIN_TILE, REGISTER_BUDGET
from einsumcc.schedule.extents import compile_extents, next_pow2
from einsumcc.schedule.fusion import partition
from einsumcc.schedule.kernels import pass_ranges
from einsumcc.schedule.phases import assign_phases, split_points
from einsumcc.schedule.schedule import AxisRole
from einsumcc.schedule.tiling import assign_roles, footprint
from tests.conftest import EXAMPLES

CASCADES = EXAMPLES.parent / "tests" / "backends" / "cascades"


def test_next_pow2() -> None:
    assert [next_pow2(n) for n in (1, 2, 3, 64, 65)] == [1, 2, 4, 64, 128]


def test_compile_extents_follow_declarations_and_splits() -> None:
    c = load(str(EXAMPLES / "attention_1pass.ein"))
    known = compile_extents(c, {"M": 256})
    assert (known["M"], known["M0"], known["M1"], known["P"]) == (256, 64, 4, None)
    assert compile_extents(c, {"M1": 3})["M"] == 192


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        ({"Q": 3}, "--dims names unknown rank 'Q'"),
        ({"M": 0}, "extents are positive integers"),
        ({"M": 100}, "not a positive integer"),
    ],
)
def test_compile_extents_errors(dims: dict[str, int], message: str) -> None:
    with pytest.raises(EinError, match=message):
        compile_extents(load(str(EXAMPLES / "attention_1pass.ein")), dims)


def test_reductions_over_two_large_ranks_are_nested() -> None:
    ctx = make_context(load(str(CASCADES / "frobenius.ein")), None, None, ())
    assert [n.key for n in ctx.prog.nodes][:2] == ["F2.n1", "F2"]
    assert ctx.prog.parts["F2.n1"] == ("M",)
    groups, notes = partition(ctx)
    assert [(g.grid, g.loop) for g in groups] == [(("m",), "n"), ((), "m")]
    assert len(notes) == 1
    assert notes[0].startswith("kernel k1 starts at F2")


def test_three_pass_attention_is_one_group_of_three_passes() -> None:
    ctx = make_context(load(str(EXAMPLES / "attention_3pass.ein")), None, None, ())
    (group,), notes = partition(ctx)
    assert notes == []
    assert (group.grid, group.loop, group.tiled) == (("p",), "m", frozenset({"p"}))
    phases = assign_phases(ctx, group)
    assert phases.phase == {"QK": 1, "GM": 1, "SN": 2, "SD": 2, "A": 3, "AV": 3}
    assert phases.passes == 3


def test_materialize_cuts_the_group_after_its_pass() -> None:
    ctx = make_context(load(str(EXAMPLES / "attention_3pass.ein")), None, None, ("SN",))
    ((group,), _) = partition(ctx)
    phases = assign_phases(ctx, group)
    group = replace(group, phase=phases.phase, after=phases.after, passes=phases.passes)
    cuts, notes = split_points(ctx, group)
    assert (cuts, notes) == ({2}, [])
    assert [(r.first, r.last) for r in pass_ranges(group, cuts)] == [(1, 2), (3, 3)]


def test_roles_and_register_budget() -> None:
    ctx = make_context(load(str(EXAMPLES / "attention_3pass.ein")), None, None, ())
    ((group,), _) = partition(ctx)
    roles = assign_roles(ctx, group)
    assert roles["p"] == (AxisRole.GRID, 128)
    assert roles["m"][0] is AxisRole.STREAM
    assert roles["e"][0] is AxisRole.WHOLE
    for v, (role, block) in roles.items():
        if role is AxisRole.STREAM and block > MIN_TILE:
            assert footprint(group.nodes, roles, v) <= REGISTER_BUDGET


def test_abstract_arithmetic() -> None:
    old = iv.Iv(-10.0, 10.0, False, "RM")
    inf = iv.const(-math.inf)
    finite = iv.span(-1.0, 1.0)
    assert iv.sub(old, old) == iv.const(0.0)  # RM - RM once RM is finite
    assert iv.sub(inf, old).is_(-math.inf)  # -inf - RM
    assert iv.add(iv.const(0.0), old) == old
    assert iv.mul(iv.const(0.0), finite) == iv.const(0.0)
    assert iv.mul(iv.const(0.0), iv.TOP).nan
    assert iv.div(old, iv.const(1.0)) == old
    assert iv.div(iv.const(1.0), old).nan
    assert iv.mul(iv.const(2.0), iv.const(3.0)) == iv.const(6.0)
    # a finite fill far below the scores underflows to exactly 0 in f32
    assert iv.unary("exp", iv.sub(iv.const(-1e30), old)) == iv.const(0.0)
    assert iv.unary("exp", iv.sub(iv.const(-60.0), old)) != iv.const(0.0)
    # max with a dominated value
    assert iv.extreme("max", iv.span(-math.inf, -1e30, tainted=True), old) == old
    # the runs of a reset proof: tainted unless both hold the same constant
    assert iv.runs(iv.const(0.0), iv.const(0.0)) == iv.const(0.0)
    assert iv.runs(iv.const(0.0), iv.const(1.0)).tainted
    assert not iv.join(iv.const(0.0), iv.const(1.0)).tainted
