"""``expect`` lines: examples double as tests (``einsumcc check`` evaluates them)."""

from __future__ import annotations

import operator

from einsumcc.analysis.passes import analyze_passes
from einsumcc.diagnostics import Diagnostic
from einsumcc.ir.cascade import Cascade

_CMP = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def check_expectations(cascade: Cascade) -> list[Diagnostic]:
    """An error for every ``expect`` line of ``cascade`` that does not hold."""
    failures: list[Diagnostic] = []
    if not cascade.expects:
        return failures
    report = analyze_passes(cascade)
    for x in cascade.expects:
        assert x.fn == "passes"
        rank = report.rank(x.args[0])
        if _CMP[x.op](rank.passes, x.value):
            continue
        hint = None
        if rank.witnesses:
            hint = "; ".join(str(w) for w in rank.witnesses)
        elif rank.passes == 1:
            hint = f"nothing forces a second pass over {rank.rank}"
        failures.append(
            Diagnostic(
                "error",
                f"expectation does not hold: passes({rank.rank}) is {rank.passes}",
                x.span,
                hint,
            )
        )
    return failures
