"""The reproduction's data side: models, lengths, FLAT's inputs, the artifact CSV format."""

from __future__ import annotations

import pytest

from einsumcc import EinError
from einsumcc_fusemax.results import (
    DESIGNS,
    Row,
    compare,
    design,
    read_csv,
    reference_dir,
    render_csv,
    summarize,
)
from einsumcc_fusemax.workload import flat_config, load_models, parse_seq, seq_label

REF = reference_dir()
needs_reference = pytest.mark.skipif(REF is None, reason="../shared/reference is not present")


def test_builtin_models_are_the_papers():
    models = {m.name: m for m in load_models()}
    assert list(models) == ["BERT", "TrXL", "T5", "XLM"]
    assert models["BERT"].dims(1024) == {"B": 64, "H": 12, "E": 64, "F": 64, "M": 1024, "P": 1024}
    assert (models["XLM"].heads, models["XLM"].head_dim) == (16, 128)


def test_user_model_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text("[Tiny]\nd_model = 256\nheads = 4\nhead_dim = 64\nffn = 1024\nbatch = 8\n")
    (tiny,) = load_models(str(path))
    assert tiny.dims(4096)["B"] == 8
    path.write_text("[Tiny]\nd_model = 256\nheads = 4\nhead_dim = -1\nffn = 1024\n")
    with pytest.raises(EinError, match="head_dim = -1 is not a positive integer"):
        load_models(str(path))
    with pytest.raises(EinError, match="unknown model 'GPT'"):
        load_models("GPT")


def test_sequence_lengths():
    assert parse_seq("1K, 4096,1M") == (1024, 4096, 1 << 20)
    assert [seq_label(s) for s in parse_seq(None)] == ["1K", "4K", "16K", "64K", "256K", "1M"]
    with pytest.raises(EinError):
        parse_seq("lots")


def test_flat_configurations():
    c = flat_config("BERT", 1 << 18)
    assert (c.qk_stationarity, c.granularity, c.rows) == ("weight", "row", 1024)
    assert not c.onchip("QK")
    assert c.onchip("AV")
    assert flat_config("XLM", 1024).onchip("V")
    with pytest.raises(EinError, match="no searched dataflow"):
        flat_config("BERT", 3000)


def test_design_names():
    assert design("fusemax").key == "binding"
    assert design("binding").name == "fusemax"
    assert [d.key for d in DESIGNS] == ["unfused", "flat", "cascade", "arch", "binding"]


def test_csv_roundtrip(tmp_path):
    d = design("flat")
    rows = [
        Row(
            "BERT",
            1024,
            1308622848.0,
            0.0134,
            2.48e12,
            0.125,
            1.0,
            (("QK", 0.0625), ("AV", 0.0625)),
        )
    ]
    path = tmp_path / "attn-flat.csv"
    path.write_text(render_csv(d, rows))
    assert read_csv(path) == rows
    assert path.read_text().splitlines()[1].startswith("BERT,1K,1308622848,0.0134,")


@needs_reference
@pytest.mark.parametrize("d", DESIGNS, ids=lambda d: d.key)
def test_artifact_files_are_reproduced_byte_for_byte_by_the_writer(d):
    assert REF is not None
    path = REF / f"attn-{d.key}.csv"
    assert render_csv(d, read_csv(path)) == path.read_text()


@needs_reference
def test_summary_of_the_artifact_is_the_papers():
    assert REF is not None
    rows = {d.key: read_csv(REF / f"attn-{d.key}.csv") for d in DESIGNS}
    s = summarize(rows)
    assert s["speedup_over_flat"] == pytest.approx(6.72, abs=0.01)
    assert s["speedup_over_unfused"] == pytest.approx(10.05, abs=0.01)
    assert s["energy_vs_flat"] == pytest.approx(0.787, abs=0.001)
    assert s["energy_vs_unfused"] == pytest.approx(0.767, abs=0.001)


def test_compare_flags_rows_outside_the_bounds():
    d = design("fusemax")
    ref = [Row("BERT", 1024, 100.0, 1.0, 10.0, 0.9, 1.0)]
    ours = [Row("BERT", 1024, 104.0, 1.06, 10.5, 0.93, 1.0)]
    devs = {x.metric: x for x in compare(d, ours, ref)}
    assert devs["traffic"].ok
    assert not devs["latency"].ok
    assert devs["energy"].ok
    assert not devs["util_2d"].ok
