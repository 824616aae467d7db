"""What the parts of the checker share: the name tables, the diagnostics and small helpers."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from einsumcc.diagnostics import DiagnosticSink, Source, Span
from einsumcc.frontend import syntax as s
from einsumcc.frontend.parser import KEYWORDS, RESERVED
from einsumcc.ir import nodes as ir
from einsumcc.ir.affine import Affine


class UnresolvedError(Exception):
    """An expression could not be converted; the reason was already reported."""


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f"did you mean '{close[0]}'?" if close else None


def line_of(span: Span | None) -> int:
    return span.line if span is not None else 0


@dataclass
class TensorInfo:
    name: str
    role: ir.Role | None  # None: an undeclared intermediate
    dims: tuple[ir.Dim, ...] | None
    dtype: ir.DType
    fill: ir.Expr
    decl: s.TensorStmt | None
    span: Span | None


@dataclass
class Context:
    """The declarations found so far, what was built from them, and the diagnostics."""

    program: s.Program
    source: Source | None
    sink: DiagnosticSink = field(init=False)
    name: str = ""
    ranks: dict[str, s.RankStmt] = field(default_factory=dict)
    rank_extents: dict[str, Affine | None] = field(default_factory=dict)
    var_rank: dict[str, str] = field(default_factory=dict)
    splits: dict[str, s.SplitStmt] = field(default_factory=dict)
    params: dict[str, s.ParamStmt] = field(default_factory=dict)
    param_values: dict[str, ir.Expr] = field(default_factory=dict)
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    assignments: dict[str, s.EinsumStmt] = field(default_factory=dict)
    inits: dict[str, s.InitStmt] = field(default_factory=dict)
    einsums: dict[str, ir.Einsum] = field(default_factory=dict)
    ir_inits: dict[str, ir.Init] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sink = DiagnosticSink(self.source)

    @property
    def file(self) -> str:
        return self.program.file

    def error(
        self,
        span: Span | None,
        message: str,
        hint: str | None = None,
        notes: Iterable[tuple[str, Span | None]] = (),
    ) -> None:
        self.sink.error(span, message, hint, notes)

    def warning(self, span: Span | None, message: str, hint: str | None = None) -> None:
        self.sink.warning(span, message, hint)

    def check_name(self, ident: s.Ident, what: str) -> bool:
        if ident.name in KEYWORDS or ident.name in RESERVED:
            kind = "reserved for future use" if ident.name in RESERVED else "a keyword"
            self.error(ident.span, f"'{ident.name}' is {kind} and cannot name a {what}")
            return False
        return True

    def unknown_name(self, e: s.Name) -> None:
        """Report a name that is not a rank variable, extent or param where one is needed."""
        name = e.name
        if name in KEYWORDS:
            self.error(e.span, f"unexpected keyword '{name}'")
        elif name in self.tensors or name in self.assignments:
            self.error(
                e.span,
                f"tensor '{name}' is used without brackets",
                hint=f"write {name}[...] (a rank-0 tensor is {name}[])",
            )
        elif name.upper() != name and name.upper() not in self.ranks and name == name.lower():
            hint = suggest(name, self.var_rank) or f"declare its rank: rank {name.upper()}"
            self.error(e.span, f"rank variable '{name}' has no rank", hint=hint)
        else:
            cands = [*self.var_rank, *self.ranks, *self.params]
            self.error(e.span, f"undeclared name '{name}'", hint=suggest(name, cands))
