"""einsumcc: attention algorithms as cascades of extended Einsums.

>>> import einsumcc
>>> c = einsumcc.load("rank K = 2\\ninput A[K]\\noutput Z[]\\nZ[] = sum{k} A[k]\\n")
>>> c.outputs[0].name
'Z'
"""

from __future__ import annotations

from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc.pipeline import load
from einsumcc.reference import evaluate

__version__ = "0.1.0"
__all__ = ["Cascade", "EinError", "__version__", "evaluate", "load"]
