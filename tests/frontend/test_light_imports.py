"""Checking a cascade is fast: parse → check → IR → ``expect`` lines import no heavy library.

sympy, networkx and numpy take most of a second to import; ``einsumcc check`` needs none of
them.  The later stages still read sympy expressions and networkx graphs from the IR, built on
first use (checked here too, in the same process, after the imports were inspected).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import EXAMPLES, ROOT

HEAVY = ("sympy", "networkx", "numpy")

SCRIPT = """
import json, sys
from pathlib import Path
from einsumcc.pipeline import load_with_warnings
from einsumcc.analysis.expect import check_expectations

failures = {}
for path in sorted(Path(sys.argv[1]).glob("*.ein")):
    cascade, _ = load_with_warnings(str(path))
    failures[path.name] = [d.message for d in check_expectations(cascade)]
heavy = [m for m in ("sympy", "networkx", "numpy") if m in sys.modules]
print(json.dumps({"heavy": heavy, "failures": failures}))
"""


def test_check_path_imports_no_heavy_library():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(EXAMPLES)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(out.stdout)
    assert result["failures"], "no examples found"
    assert result["heavy"] == []
    assert all(not f for f in result["failures"].values()), result["failures"]


def test_sympy_views_are_built_on_first_use():
    from einsumcc.pipeline import load

    c = load(EXAMPLES / "attention_3pass.ein")
    import sympy

    qk = c.einsum("QK")
    assert all(isinstance(ix, sympy.Expr) for ix in qk.output.indices)
    assert c.graph.number_of_nodes() > 0
    assert all(isinstance(v, sympy.Symbol) for v in c.symbolic_extents.values())
