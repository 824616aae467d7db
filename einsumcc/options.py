"""Command-line values shared by the core's commands and the backends' (``--dims M=1024``).

>>> parse_dims(["M=1024,P=512", "E=64"])
{'M': 1024, 'P': 512, 'E': 64}
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from einsumcc.diagnostics import EinError


def parse_assignments(
    values: Sequence[str] | None, option: str, example: str, value: str = "POSITIVE_INTEGER"
) -> dict[str, int]:
    """``["M=1024,P=512", "E=64"]`` → ``{"M": 1024, "P": 512, "E": 64}`` for ``option``."""
    out: dict[str, int] = {}
    for text in values or ():
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, number = item.partition("=")
            name = name.strip()
            try:
                n = int(number.strip().replace("_", ""))
            except ValueError:
                n = -1
            if not sep or not name.isidentifier() or n <= 0:
                raise EinError.plain(
                    f"{option}: expected RANK={value}, got '{item}'",
                    hint=f"for example {option} {example}",
                )
            out[name] = n
    return out


def parse_dims(values: Sequence[str] | None) -> dict[str, int]:
    """The extents given with ``--dims``."""
    return parse_assignments(values, "--dims", "M=1024,P=512")


def add_dims(p: argparse.ArgumentParser) -> None:
    """The ``--dims`` option, as every command that takes extents spells it."""
    p.add_argument(
        "--dims",
        action="append",
        metavar="R=N,...",
        help="rank extents, overriding the defaults (e.g. --dims M=1024,P=512); repeatable",
    )
