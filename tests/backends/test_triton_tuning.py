"""The launch cost model: per-target choices from registers, shared memory and occupancy,
baked into the launcher, and checked by AOT compilation with a fallback on spills."""

from __future__ import annotations

from typing import Any

from einsumcc import load
from einsumcc.cli import main
from einsumcc_triton import compile_schedule
from einsumcc_triton.tuning import TARGETS, estimate, kernel_shape, ranked
from tests.backends._triton import compiled
from tests.conftest import EXAMPLES

FUSEMAX = EXAMPLES / "fusemax" / "attention_1pass.ein"


def test_shared_memory_limits_differ_per_target() -> None:
    """32 queries x 256 keys: 3 stages fit an H100 block, not an A100 block."""
    _, s = compile_schedule(load(FUSEMAX), {"M0": 256}, tiles={"P": 32})
    (k,) = s.kernels
    shape = kernel_shape(s, k)
    three = {a: estimate(shape, TARGETS[a], 8, 3) for a in (80, 90)}
    assert three[90].fits
    assert not three[80].fits
    for arch in (80, 90):
        best = ranked(s, k, arch)[0]
        assert best.feasible
        assert best.shared_bytes <= TARGETS[arch].shared_per_block


def test_a_wide_tile_is_predicted_to_spill() -> None:
    """128 queries x 256 keys spill with any warps and stages (ptxas agrees: 72 to 2,212 B);
    the refined 128 x 64 tile does not (112-124 registers)."""
    _, wide = compile_schedule(load(FUSEMAX), {"M0": 256}, tiles={"P": 128})
    assert not any(e.feasible for e in ranked(wide, wide.kernels[0], 90))
    _, refined = compile_schedule(load(FUSEMAX))
    best = ranked(refined, refined.kernels[0], 90)[0]
    assert best.feasible
    assert (best.num_warps, best.num_stages) == (8, 3)


def test_the_launcher_picks_the_choice_of_the_device() -> None:
    k = compiled(str(EXAMPLES / "attention_1pass.ein"))
    (info,) = k.kernels
    assert [a for a, _, _ in info.configs] == [90, 80]
    assert "torch.cuda.get_device_capability(device)" in k.source
    assert "num_stages=3 if arch >= 90 else" in k.source
    assert info.config(90) == info.configs[0][1:]
    assert info.config(86) == info.configs[1][1:]  # an sm_86 takes the sm_80 choice
    assert info.config(75) == (info.num_warps, 3)


def test_aot_report_falls_back_and_warns_on_spills(capsys: Any) -> None:
    args = [
        "compile", str(FUSEMAX), "--dims", "M=4096,P=4096,M0=256", "--tile", "P=128",
        "--report", "--json", "--aot", "sm_90",
    ]  # fmt: skip
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "warning: kernel k0 spills" in err
    assert "trying 8 warps" in err or "trying 4 warps" in err
    assert "no launch choice avoids it" in err
    import json

    aot = json.loads(out)["kernels"][0]["aot"]
    assert aot["spill_bytes"] > 0
    assert {"num_warps", "num_stages"} <= set(aot)
