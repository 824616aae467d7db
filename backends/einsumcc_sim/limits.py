"""What a simulation may cost, checked before it starts or as it goes, and its progress bar.

``simulate --exact`` and ``--functional`` fire every PE at every iteration point and
``--functional`` holds the oracle's arrays, so they are refused up front when the estimate
of :func:`einsumcc.analysis.budget.estimate` is over budget (``--max-points``,
``--max-memory``).  Every engine run, fast mode included, counts the ops it simulates one by
one (those of a jumped steady state are not counted) and stops with an error past
``--max-ops``, so an input whose steady state does not come soon ends instead of running
for hours.  A run started from a terminal shows a progress bar (tqdm) over its ops.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from einsumcc.diagnostics import EinError
from einsumcc_sim.program import Leaf, Node, SimLoop, SimProgram

MAX_POINTS = 100_000_000  # --exact / --functional: iteration points (minutes of Python)
MAX_OPS = 1_000_000  # ops one engine run simulates one by one (about a minute)


@dataclass(frozen=True)
class Limits:
    max_ops: int = MAX_OPS
    progress: bool = False  # show a progress bar (on a terminal, not under --json)


_current = [Limits()]


def current() -> Limits:
    return _current[-1]


@contextlib.contextmanager
def limits(value: Limits) -> Iterator[None]:
    """Runs within the block use ``value``."""
    _current.append(value)
    try:
        yield
    finally:
        _current.pop()


def on_terminal(json: bool = False) -> bool:
    """Whether progress bars are wanted: stderr is a terminal and the output is not JSON."""
    return not json and sys.stderr.isatty()


def op_count(prog: SimProgram) -> int:
    """About how many ops ``prog`` issues when every loop runs every iteration (what
    ``--exact`` simulates); a loop over a variable a loop outside it tiles runs over the
    tile."""

    def count(n: Node, sizes: dict[str, int]) -> int:
        if isinstance(n, Leaf):
            return 1
        if not isinstance(n, SimLoop):
            return 0
        trips, inner = 1, dict(sizes)
        for v, tile in ((n.var, n.tile), *n.axes):
            if v is None:
                continue
            size = sizes.get(v, prog.extent(v))
            trips *= max(1, math.ceil(size / tile)) if tile > 0 else 1
            inner[v] = min(size, tile) if tile > 0 else size
        return trips * sum(count(c, inner) for c in n.children)

    return count(prog.root, {})


def too_many_ops(done: int, budget: int, total: int, exact: bool) -> EinError:
    if exact and not done:
        text = f"simulate --exact would simulate about {total:,} ops one by one (budget {budget:,})"
    else:
        text = (f"simulate stopped after {done:,} ops of about {total:,}: no steady state "
                f"came to jump over the rest (budget {budget:,})")  # fmt: skip
    return EinError.plain(
        text,
        hint="use smaller --dims, or raise the budget with --max-ops N"
        + ("" if exact else ", or try another --mapping"),
    )


def bar(total: int | None, desc: str) -> Any:
    """A tqdm bar on stderr when :func:`current` asks for one, else None."""
    if not current().progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="op", unit_scale=True, delay=0.5, leave=False)


def search_bar(total: int) -> Any:
    """The default-mapping search's bar over its candidates (shown once it takes a while)."""
    if not current().progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="default mapping", unit="step", delay=1.0, leave=False)
