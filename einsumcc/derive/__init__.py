"""The rewrite engine: fewer passes over a rank, with certificates (``einsumcc derive``).

See ``docs/derive.md``.  :func:`derive` returns a frozen :class:`Derivation`.  This module is
light (sympy is imported by :mod:`einsumcc.derive.engine`, on the first derivation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from einsumcc.derive.engine import Derivation
    from einsumcc.ir.cascade import Cascade

__all__ = ["Derivation", "derive"]


def derive(
    cascade: Cascade, rank: str, tile: tuple[str, int] | None = None, moments: str = "welford"
) -> Derivation:
    """:func:`einsumcc.derive.engine.derive`."""
    from einsumcc.derive.engine import derive as run

    return run(cascade, rank, tile, moments)


def __getattr__(name: str) -> Any:
    if name == "Derivation":
        from einsumcc.derive.engine import Derivation

        return Derivation
    raise AttributeError(name)
