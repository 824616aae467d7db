"""Compile-time extents: the ``dims`` overrides, then every extent they determine.

An extent is known when ``dims`` names it, when its declared expression only uses known
extents, or when a split determines it (the parent is the product of its parts; one missing
part is the parent divided by the others).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sympy

from einsumcc.diagnostics import EinError
from einsumcc.ir.cascade import Cascade
from einsumcc.ir.nodes import Split


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def suggest(name: str, options: Iterable[str]) -> str | None:
    """A "did you mean" hint for a misspelt ``name``."""
    import difflib

    close = difflib.get_close_matches(name, list(options), n=1)
    return f"did you mean {close[0]}?" if close else None


def compile_extents(c: Cascade, dims: Mapping[str, int] | None) -> dict[str, int | None]:
    """Every rank's extent when known at compile time (``dims`` override), else None."""
    dims = dict(dims or {})
    names = [r.name for r in c.ranks]
    _check_dims(c, dims, names)
    known: dict[str, int | None] = {n: int(dims[n]) for n in dims}
    for _ in range(len(names) + len(c.splits) + 2):
        changed = _declared_extents(c, known)
        for s in c.splits:
            changed = _split_extent(c, s, known) or changed
        if not changed:
            break
    for s in c.splits:
        _check_split(c, s, known)
    return {n: known.get(n) for n in names}


def _check_dims(c: Cascade, dims: Mapping[str, int], names: list[str]) -> None:
    for name, value in dims.items():
        if name not in names:
            raise EinError.plain(
                f"--dims names unknown rank '{name}'",
                hint=suggest(name, names) or "ranks of " + c.name + ": " + ", ".join(names),
            )
        if int(value) <= 0:
            raise EinError.plain(f"--dims {name}={value}: extents are positive integers")


def _declared_extents(c: Cascade, known: dict[str, int | None]) -> bool:
    """Evaluate the declared extents whose symbols are all known; True if one was."""
    changed = False
    for r in c.ranks:
        if r.name in known or r.extent is None:
            continue
        syms = {str(s) for s in r.extent.free_symbols}
        if all(known.get(s) is not None for s in syms):
            value = sympy.nsimplify(r.extent.subs({c.rank(s).symbol: known[s] for s in syms}))
            if not value.is_integer or value <= 0:
                raise EinError.at(
                    r.span,
                    f"extent of {r.name} = {r.extent} is {value}: not a positive integer",
                    c.source,
                    hint="choose extents that divide exactly",
                )
            known[r.name] = int(value)
            changed = True
    return changed


def _product(values: Iterable[int | None]) -> int:
    prod = 1
    for v in values:
        prod *= v or 1
    return prod


def _split_extent(c: Cascade, s: Split, known: dict[str, int | None]) -> bool:
    """The parent from its parts, or the one missing part from the parent and the others."""
    parts = [known.get(ch) for ch in s.children]
    whole = known.get(s.parent)
    if whole is None and all(p is not None for p in parts):
        known[s.parent] = _product(parts)
        return True
    if whole is not None and sum(p is None for p in parts) == 1:
        prod = _product(parts)
        missing = s.children[parts.index(None)]
        if whole % prod:
            raise EinError.at(
                s.span,
                f"split {s.parent} -> {', '.join(s.children)}: {s.parent} = {whole} "
                f"is not a multiple of {prod}",
                c.source,
                hint=f"choose {s.parent} as a multiple of the inner extents",
            )
        known[missing] = whole // prod
        return True
    return False


def _check_split(c: Cascade, s: Split, known: Mapping[str, int | None]) -> None:
    values = [known.get(ch) for ch in s.children]
    whole = known.get(s.parent)
    if whole is None or any(v is None for v in values):
        return
    prod = _product(values)
    if prod != whole:
        raise EinError.at(
            s.span,
            f"split {s.parent} -> {', '.join(s.children)} does not hold: "
            f"{s.parent} = {whole} but the parts multiply to {prod}",
            c.source,
            hint=f"choose {s.parent} as a multiple of the inner extents",
        )
