"""``compile --aot sm_XX``: the query tile is the largest whose kernels compile for the target
without a spill and within its shared memory (ptxas decides, not the register budget)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from einsumcc import load
from einsumcc.cli import main
from einsumcc.schedule import traffic_for
from einsumcc.schedule.summary import summarize
from einsumcc_triton import compile_schedule
from einsumcc_triton.tile_search import row_ranks, search_tiles
from einsumcc_triton.tuning import TARGETS
from tests.conftest import EXAMPLES

ONE_PASS = EXAMPLES / "attention_1pass.ein"
WIDE = {"E": 256, "F": 256, "M": 4096, "P": 4096}  # head dimension 256


def _rows(schedule: Any) -> int:
    (k,) = schedule.kernels
    return next(a.block for a in k.axes if a.rank == "P")


def _hbm(schedule: Any, dims: dict[str, int]) -> int:
    t = traffic_for(schedule, dims)
    assert t is not None
    return int(summarize(schedule, t)["hbm_bytes"])


@pytest.mark.parametrize("arch", [90, 80])
def test_wide_heads_get_the_largest_tile_that_compiles_clean(arch: int) -> None:
    c = load(ONE_PASS)
    _, default = compile_schedule(c, WIDE)
    assert _rows(default) == 32  # the register budget's choice for a 256-wide accumulator
    checked, notes = search_tiles(c, WIDE, arch)
    rows = _rows(checked.schedule)
    assert rows >= 64
    (st,) = checked.stats
    assert st.spills == 0
    assert st.shared_bytes <= TARGETS[arch].shared_per_block
    if arch == 90:
        assert st.wgmma > 0  # 64 rows or more: Hopper's warp-group products
    else:
        assert st.mma > 0
    assert f"tiles for sm_{arch} checked by ptxas: P={rows} (schedule default P=32)" in notes[0]
    # fewer, larger query tiles read K and V fewer times
    assert _hbm(checked.schedule, WIDE) <= 0.51 * _hbm(default, WIDE)


def test_a_given_tile_is_checked_not_searched() -> None:
    checked, notes = search_tiles(load(ONE_PASS), WIDE, 90, tiles={"P": 32})
    assert _rows(checked.schedule) == 32
    assert notes == ()
    assert checked.stats[0].spills == 0


def test_default_tiles_that_compile_clean_are_kept(capsys: Any) -> None:
    args = [
        "compile", str(ONE_PASS), "--dims", "M=4096,P=4096", "--report", "--json",
        "--aot", "sm_90",
    ]  # fmt: skip
    assert main(args) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    (k,) = data["kernels"]
    assert k["aot"]["spill_bytes"] == 0
    assert k["aot"]["wgmma"] > 0
    assert "warning" not in err
    _, s = compile_schedule(load(ONE_PASS), {"M": 4096, "P": 4096})
    assert row_ranks(s) == ("P",)
    assert _rows(s) == 128


def test_the_module_written_with_aot_has_the_searched_tiles(tmp_path: Any) -> None:
    out = tmp_path / "wide.py"
    dims = "E=256,F=256,M=4096,P=4096"
    assert main(["compile", str(ONE_PASS), "--dims", dims, "--aot", "sm_90", "-o", str(out)]) == 0
    text = out.read_text()
    assert "BLOCK_P=128" in text or "BLOCK_P=64" in text
