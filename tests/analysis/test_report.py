"""`einsumcc analyze passes`: text report, taxonomy table and JSON (goldens)."""

from __future__ import annotations

import json

from einsumcc.cli import main
from tests.conftest import EXAMPLES
from tests.golden import assert_golden


def _run(capsys, monkeypatch, *argv: str) -> str:
    monkeypatch.chdir(EXAMPLES.parent)
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_text_report(capsys, monkeypatch, update_golden):
    out = _run(
        capsys,
        monkeypatch,
        "analyze",
        "passes",
        "examples/attention_3pass.ein",
        "--dims",
        "M=4096,P=4096",
    )
    assert "M: 3 passes" in out
    assert_golden(out, "analysis/attention_3pass.passes.txt", update=update_golden)


def test_taxonomy_over_several_files(capsys, monkeypatch, update_golden):
    files = [
        "examples/attention_3pass.ein",
        "examples/attention_2pass.ein",
        "examples/attention_1pass.ein",
        "examples/paper/cascade1.ein",
        "examples/paper/cascade2.ein",
        "examples/paper/cascade3.ein",
    ]
    out = _run(capsys, monkeypatch, "analyze", "passes", *files)
    table = out[out.index("file ") :]
    assert_golden(table, "analysis/taxonomy.txt", update=update_golden)


def test_json_one_file(capsys, monkeypatch, update_golden):
    out = _run(
        capsys,
        monkeypatch,
        "analyze",
        "passes",
        "examples/attention_3pass.ein",
        "--json",
        "--dims",
        "M=1024,P=1024",
    )
    obj = json.loads(out)
    assert obj["cascade"] == "attention_3pass"
    assert obj["passes"]["M"] == 3
    assert obj["einsums"]["QK"]["M"] == 1
    assert obj["einsums"]["AV"]["M"] == 3
    assert [
        (w["reducer"]["einsum"], w["consumer"]["einsum"], w["tensor"]) for w in obj["witnesses"]
    ] == [("GM", "SN", "QK"), ("SD", "A", "SN")]
    assert obj["footprint"]["M"]["per_point"] == {"expr": "M", "value": 1024}
    assert_golden(out, "analysis/attention_3pass.passes.json", update=update_golden)


def test_json_several_files_is_a_list(capsys, monkeypatch):
    out = _run(
        capsys,
        monkeypatch,
        "analyze",
        "passes",
        "examples/attention_1pass.ein",
        "examples/softmax.ein",
        "--json",
        "--rank",
        "M",
    )
    objs = json.loads(out)
    assert [o["passes"] for o in objs] == [{"M": 1}, {"M": 3}]
    assert objs[0]["footprint"]["M"]["per_point"]["expr"] == "F + 2"


def test_unknown_rank_is_an_error(capsys, monkeypatch):
    monkeypatch.chdir(EXAMPLES.parent)
    assert main(["analyze", "passes", "examples/softmax.ein", "--rank", "Q"]) == 1
    assert "softmax has no such rank" in capsys.readouterr().err


def test_single_rank_report_matches_the_json_of_rank(capsys, monkeypatch):
    from einsumcc.analysis.passes import PassReport, analyze_passes
    from einsumcc.pipeline import load

    out = _run(
        capsys,
        monkeypatch,
        "analyze",
        "passes",
        "examples/attention_3pass.ein",
        "--json",
        "--rank",
        "M",
    )
    report = analyze_passes(load(EXAMPLES / "attention_3pass.ein"), "M").rank("M")
    assert isinstance(report, PassReport)
    assert report.count == 3
    assert report.per_einsum["QK"] == 1
    assert report.per_einsum["AV"] == 3
    assert len(report.witnesses) == 2
    assert report.footprint.kind == "live_fiber"
    assert repr(report) == "<PassReport attention_3pass M: 3 passes>"
    assert json.loads(json.dumps(report.to_dict(), sort_keys=True)) == json.loads(out)
