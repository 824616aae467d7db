from __future__ import annotations

import sympy

from einsumcc import load
from einsumcc.analysis.cost import analyze_cost
from einsumcc.cli import main
from tests.conftest import EXAMPLES


def sym(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True, positive=True)


E, F, M, P, M1 = (sym(n) for n in ["E", "F", "M", "P", "M1"])


def test_one_pass_attention_counts():
    report = analyze_cost(load(EXAMPLES / "attention_1pass.ein"))
    ops = {e.name: dict(e.ops) for e in report.einsums}
    assert ops["BQK"] == {"mac": E * M * P, "mul": E * P}  # scale*Q hoisted out of the m loop
    assert ops["SLNV"] == {"mac": F * M * P}
    assert ops["SLN"] == {"add": M * P, "exp": M * P}
    assert ops["PRM"] == {"add": M1 * P, "exp": M1 * P}
    assert ops["AV"] == {"div": F * P}  # the deferred division: F*P, not M*P
    assert ops["BK"] == {}
    assert report.input_bytes == {"Q": 2 * E * P, "K": 2 * E * M, "V": 2 * F * M}
    assert report.output_bytes == {"AV": 2 * F * P}


def test_three_pass_divides_m_times_p():
    report = analyze_cost(load(EXAMPLES / "attention_3pass.ein"))
    ops = {e.name: dict(e.ops) for e in report.einsums}
    assert ops["A"] == {"div": M * P}
    assert ops["GM"] == {"max": M * P}
    assert report.totals["mac"] == E * M * P + F * M * P


def test_cost_cli_with_dims(capsys):
    assert (
        main(["analyze", "cost", str(EXAMPLES / "attention_3pass.ein"), "--dims", "M=1024,P=512"])
        == 0
    )
    out = capsys.readouterr().out
    assert "QK: mac E*M*P = 33,554,432" in out
    assert "total: 2*E*M + 2*E*P + 2*F*M + 2*F*P = 393,216 bytes" in out
