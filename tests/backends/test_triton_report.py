"""``einsumcc compile --report [--json]``: the kernels' grids, visited tiles and global-memory
bytes from the schedule's own objects; split-KV decode moves little more than it must."""

from __future__ import annotations

import json
from typing import Any

import pytest

from einsumcc import load
from einsumcc.cli import main
from einsumcc.schedule import derive_schedule, traffic_for
from einsumcc.schedule.summary import summarize
from tests.backends._triton import F16_TOL, compiled, max_err, run_both
from tests.conftest import EXAMPLES
from tests.golden import assert_golden

DECODE = EXAMPLES / "attention_decode.ein"


def report(capsys: Any, *args: str) -> str:
    assert main(["compile", *args, "--report"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert isinstance(out, str)
    return out


def test_json_report_golden(capsys: Any, update_golden: bool) -> None:
    path = str(EXAMPLES / "attention_causal.ein")
    out = report(capsys, path, "--dims", "M=960,P=1000", "--json")
    data = json.loads(out)
    assert set(data["kernels"][0]) >= {"name", "grid", "loops", "hbm_read_bytes"}
    assert "aot" not in data["kernels"][0]
    assert data["hbm_bytes"] == sum(
        k["hbm_read_bytes"] + k["hbm_write_bytes"] for k in data["kernels"]
    )
    assert_golden(out, "triton/attention_causal.report.json", update=update_golden)


def test_text_report_counts_tiles(capsys: Any) -> None:
    out = report(capsys, str(EXAMPLES / "attention_sliding_window.ein"), "--dims", "M=4096,P=4096")
    # query tile i of 128 needs key tiles 2i-4 .. 2i+1 of 64: 2 + 4 + 30 * 6 = 186 of 32 * 64
    assert "loop 1 over M1: 186 of 2,048 (program, tile) pairs visited" in out


def test_report_needs_every_extent(capsys: Any) -> None:
    assert main(["compile", str(EXAMPLES / "attention_causal.ein"), "--report"]) == 1
    _, err = capsys.readouterr()
    assert "--report needs the extent of every rank" in err


@pytest.mark.parametrize("p", [1, 16])
def test_decode_moves_at_most_twice_the_compulsory_bytes(p: int) -> None:
    dims = {"M": 65536, "P": p}
    s = derive_schedule(load(DECODE), dims)
    traffic = traffic_for(s, dims)
    assert traffic is not None
    data = summarize(s, traffic)
    assert len(data["kernels"]) == 2
    assert data["hbm_bytes"] <= 2 * data["compulsory_bytes"]
    # the chunks store only their partial state: max, denominator and numerator (F = 64)
    c = 16
    assert data["kernels"][0]["hbm_write_bytes"] == c * p * (64 + 2) * 4
    # K and V (f16, 64 x 65536 each) are read once
    kv = 2 * 64 * 65536 * 2
    assert kv <= data["kernels"][0]["hbm_read_bytes"] < kv + 64 * 1024


@pytest.mark.parametrize("dims", [{"M": 2048, "P": 1}, {"M": 3072, "P": 5}])
def test_decode_matches_the_oracle(dims: dict[str, int]) -> None:
    k = compiled(str(DECODE), "declared", tuple(sorted(dims.items())))
    assert k.schedule.kernels[0].loops[0].finals == ("RM", "RD", "RNV")
    _, ref, got = run_both(k, dims, seed=9)
    assert max_err(ref, got) <= F16_TOL


def test_aot_figures_in_the_json_report(capsys: Any) -> None:
    path = str(EXAMPLES / "attention_causal.ein")
    data = json.loads(report(capsys, path, "--dims", "M=1024,P=1024", "--json", "--aot", "sm_90"))
    (k,) = data["kernels"]
    aot = k["aot"]
    assert set(aot) >= {"target", "spill_bytes", "wgmma", "shared_bytes", "registers", "compile_s"}
    assert aot["target"] == "sm_90"
    assert aot["spill_bytes"] == 0
    assert aot["wgmma"] > 0
    assert aot["compile_s"] <= 30


def test_batch_programs_are_counted_once_and_weighted() -> None:
    """Programs that differ only in batch-like indices move the same bytes: the count at
    B=3, H=2 is 6 times the count at B=H=1, and B=64, H=12, M=P=65536 answers at once."""
    from einsumcc_triton import compile_schedule

    path = EXAMPLES / "fusemax" / "attention_1pass.ein"

    def traffic(**dims: int) -> Any:
        _, s = compile_schedule(load(path), dims)
        return traffic_for(s, dims)

    one = traffic(B=1, H=1, M=1024, P=300).kernels[0]
    six = traffic(B=3, H=2, M=1024, P=300).kernels[0]
    assert six.programs == 6 * one.programs
    assert [(t.tensor, 6 * t.read, 6 * t.written) for t in one.tensors] == [
        (t.tensor, t.read, t.written) for t in six.tensors
    ]
    big = traffic(B=64, H=12, M=65536, P=65536).kernels[0]
    assert big.programs == 64 * 12 * 512
