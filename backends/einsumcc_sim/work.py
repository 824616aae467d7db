"""What one simulate request did: lowerings, engine runs and default-mapping candidates.

A :class:`Work` is the memo of one request.  Everything it builds is keyed by frozen values
(the cascade, the architecture, the mapping, the dims, the timing and the cost model), so that
a search over default-mapping candidates and the final simulation share their lowerings and
engine runs: each distinct program is lowered once and each is run once.  Its counters are
what the report carries (``einsumcc simulate --verbose``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

KINDS = ("lowerings", "engine_runs", "candidates")


@dataclass
class Work:
    """The memo and the counters of one request.

    ``lowerings`` counts programs built (a ``fit`` loop's tile search builds one per tile it
    tries), ``engine_runs`` the engine's walks of a program, ``candidates`` the distinct
    mappings the default-mapping search considered.
    """

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    _memo: dict[tuple[str, Hashable], Any] = field(default_factory=dict, repr=False)
    _keep: list[object] = field(default_factory=list, repr=False)

    def memo(self, kind: str, key: Hashable, build: Callable[[], T]) -> T:
        """``build()`` once per ``key``: its value, or the exception it raised, is kept and
        returned (raised) again for the same key; ``kind`` counts the builds."""
        slot = (kind, key)
        if slot in self._memo:
            hit = self._memo[slot]
            if isinstance(hit, _Raised):
                raise hit.error
            return hit  # type: ignore[no-any-return]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        try:
            value = build()
        except Exception as exc:
            self._memo[slot] = _Raised(exc)
            raise
        self._memo[slot] = value
        return value

    def identity(self, obj: object) -> int:
        """A key for an object compared by identity (a cascade): the object is kept alive
        for as long as the memo, so that its id is not reused."""
        if not any(o is obj for o in self._keep):
            self._keep.append(obj)
        return id(obj)

    def as_dict(self) -> dict[str, int]:
        return {k: self.counts.get(k, 0) for k in KINDS}


@dataclass(frozen=True)
class _Raised:
    error: Exception


def frozen_dims(dims: Mapping[str, int] | None) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((k, int(v)) for k, v in (dims or {}).items()))
