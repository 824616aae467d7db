"""What a run will cost before it starts: the memory the oracle holds and the iteration points
it visits, so that a command stops at once with the estimate instead of exhausting the machine.

The oracle holds every tensor (inputs, intermediates with all their iterates, outputs) as a
float64 array; each Einsum visits every point of its iteration space (its left-hand variables
and the variables it reduces).  The budgets are the defaults below, raised with
``--max-memory`` and ``--max-points``.

>>> from einsumcc.pipeline import bundled, load
>>> c = load(bundled("attention_3pass.ein"))
>>> e = estimate(c, {"M": 1024, "P": 1024})
>>> e.memory_bytes, e.points
(27279360, 138412032)
>>> check_budget(estimate(c, {"M": 10**10, "P": 10**10}), "run")
Traceback (most recent call last):
...
einsumcc.diagnostics.EinError: error: run would hold about 2082 EiB of arrays (budget 4 GiB)
hint: the largest is QK; ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import Einsum, Reduce, children, free_variables

MAX_MEMORY = 4 << 30  # bytes of arrays (the machines have 24 GB)
MAX_POINTS = 10**10  # iteration points: about a minute of numpy on these machines
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


@dataclass(frozen=True)
class Estimate:
    """The arrays a run holds and the points it visits (exact integers, before it starts)."""

    memory_bytes: int
    points: int
    largest: str  # the tensor with the most elements


def estimate(cascade: Cascade, dims: Mapping[str, int]) -> Estimate:
    """The oracle's memory and work at ``dims`` (which must bind every rank)."""
    from einsumcc.ir.bind import bind

    b = bind(cascade, dims)
    sizes = {t.name: math.prod(b.shape(t)) for t in cascade.tensors}
    points = 0
    for e in cascade.einsums:
        points += math.prod(b.extents[cascade.var_ranks[v]] for v in _space(e))
    largest = max(sizes, key=lambda n: sizes[n]) if sizes else "-"
    return Estimate(8 * sum(sizes.values()), points, largest)


def _space(e: Einsum) -> set[str]:
    """Every variable the Einsum iterates: its left-hand side and every one it reduces."""
    space = set(e.lhs_variables) | set(free_variables(e.body))
    stack = [e.body]
    while stack:
        node = stack.pop()
        if isinstance(node, Reduce):
            space |= free_variables(node.body)
        stack.extend(children(node))
    return space


def human_bytes(n: float) -> str:
    """``27279360`` → ``'26 MiB'``."""
    for unit in UNITS[:-1]:
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.0f} {UNITS[-1]}"


def check_budget(
    e: Estimate, what: str, max_memory: int = MAX_MEMORY, max_points: int = MAX_POINTS
) -> None:
    """An error with the estimate and the flag that raises the budget, when it is exceeded."""
    if e.memory_bytes > max_memory:
        raise EinError.plain(
            f"{what} would hold about {human_bytes(e.memory_bytes)} of arrays "
            f"(budget {human_bytes(max_memory)})",
            hint=f"the largest is {e.largest}; use smaller --dims, or raise the budget with "
            "--max-memory BYTES (e.g. --max-memory 16G) if the machine has the memory",
        )
    if e.points > max_points:
        raise EinError.plain(
            f"{what} would visit about {e.points:.3g} iteration points (budget {max_points:.3g})",
            hint="use smaller --dims, or raise the budget with --max-points N",
        )


def parse_size(text: str) -> int:
    """``'16G'`` → ``17179869184``; plain integers are bytes."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    digits = t[:-1] if scale != 1 else t
    try:
        value = float(digits)
    except ValueError:
        raise EinError.plain(
            f"--max-memory {text}: expected a size such as 16G, 512M or 1000000"
        ) from None
    if not 0 < value < 1e30:
        raise EinError.plain(f"--max-memory {text}: expected a positive size")
    return int(value * scale)
