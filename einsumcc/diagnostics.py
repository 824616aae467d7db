"""Source positions, diagnostics and the one exception users see.

Every error a user can cause is an :class:`EinError` that carries one or more
:class:`Diagnostic` values.  Rendering follows the language contract (§9)::

    FILE:LINE:COL: error: MESSAGE
      LINE | source text
           |     ^^^^
    hint: ...
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

Severity = Literal["error", "warning", "note"]

MAX_ERRORS = 100  # errors reported for one file; a note counts the others


@dataclass(frozen=True, slots=True)
class Source:
    """The text of one `.ein` file and the name used to refer to it."""

    name: str
    text: str
    _lines: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    @staticmethod
    def from_path(path: str | Path) -> Source:
        shown = _shown_path(str(path))
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise EinError.plain(f"no such file: {shown}") from None
        except OSError as exc:
            reason = _PATH_REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
            raise EinError.plain(f"cannot read {shown}: {reason}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise EinError.plain(
                f"cannot read {shown}: not UTF-8 text (byte 0x{data[exc.start]:02x} "
                f"at line {line}, column {col})",
                hint=".ein files are UTF-8 text",
            ) from None
        return Source(str(path), text)

    def line(self, lineno: int) -> str:
        """Line ``lineno`` (1-based) without its end; lines end at ``\\n`` only, as in the
        parser (a form feed or ``\\u2028`` inside a line does not end it)."""
        lines = self._lines
        if lines is None:
            lines = [x.removesuffix("\r") for x in self.text.split("\n")]
            object.__setattr__(self, "_lines", lines)  # computed once: reporting stays linear
        if 1 <= lineno <= len(lines):
            return lines[lineno - 1]
        return ""


_PATH_REASONS = {
    errno.ENAMETOOLONG: "the path is too long",
    errno.EISDIR: "it is a folder, not a file",
    errno.EACCES: "permission denied",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.ELOOP: "too many levels of symbolic links",
}


def _shown_path(path: str) -> str:
    """``path`` as an error message shows it: a very long one is shortened."""
    return path if len(path) <= 200 else f"{path[:100]}...{path[-40:]}"


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file; lines and columns are 1-based, ``end_col`` is exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def to(self, other: Span | None) -> Span:
        """The span from the start of ``self`` to the end of ``other``."""
        if other is None:
            return self
        return Span(self.file, self.line, self.col, other.end_line, other.end_col)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    span: Span | None
    hint: str | None = None
    notes: tuple[tuple[str, Span | None], ...] = ()

    def sort_key(self) -> tuple[int, int, str]:
        if self.span is None:
            return (10**9, 0, self.message)
        return (self.span.line, self.span.col, self.message)


@dataclass
class EinError(Exception):
    """A problem in the user's input.  ``str(err)`` is the rendered diagnostics."""

    diagnostics: tuple[Diagnostic, ...]
    source: Source | None = field(default=None)

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics[0].message if self.diagnostics else "")

    def __str__(self) -> str:
        return render_diagnostics(self.diagnostics, self.source)

    @staticmethod
    def plain(message: str, hint: str | None = None) -> EinError:
        """An error with no source position (a bad command-line value, a missing file)."""
        return EinError((Diagnostic("error", message, None, hint),))

    @staticmethod
    def at(
        span: Span | None, message: str, source: Source | None = None, hint: str | None = None
    ) -> EinError:
        return EinError((Diagnostic("error", message, span, hint),), source)


class DiagnosticSink:
    """Collects diagnostics so that several independent errors are reported together."""

    def __init__(self, source: Source | None) -> None:
        self.source = source
        self.items: list[Diagnostic] = []

    def error(
        self,
        span: Span | None,
        message: str,
        hint: str | None = None,
        notes: Iterable[tuple[str, Span | None]] = (),
    ) -> None:
        self.items.append(Diagnostic("error", message, span, hint, tuple(notes)))

    def warning(self, span: Span | None, message: str, hint: str | None = None) -> None:
        self.items.append(Diagnostic("warning", message, span, hint))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def raise_if_errors(self, limit: int = MAX_ERRORS) -> None:
        """Raise the errors, sorted by position: the first ``limit``, then a note that
        counts the others."""
        errors = self.errors
        if errors:
            unique = list(dict.fromkeys(sorted(errors, key=Diagnostic.sort_key)))
            shown = unique[:limit]
            if len(unique) > limit:
                more = len(unique) - limit
                shown.append(
                    Diagnostic(
                        "note",
                        f"... and {more} more error{'s' if more != 1 else ''} "
                        f"(only the first {limit} are shown)",
                        None,
                    )
                )
            raise EinError(tuple(shown), self.source)


def _use_color(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ


# Characters that would break the rendered source line apart (or ring a bell): shown as spaces.
_CONTROL = {c: " " for c in [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029] if c != 0x09}


def _shown_line(text: str) -> str:
    return text.expandtabs(4).translate(_CONTROL)


def render_diagnostic(d: Diagnostic, source: Source | None, *, color: bool = False) -> str:
    bold, red, yellow, cyan, reset = (
        ("\033[1m", "\033[31m", "\033[33m", "\033[36m", "\033[0m") if color else ("",) * 5
    )
    sev_color = red if d.severity == "error" else yellow if d.severity == "warning" else cyan
    where = f"{d.span}: " if d.span is not None else ""
    out = [f"{bold}{where}{sev_color}{d.severity}:{reset}{bold} {d.message}{reset}"]
    if d.span is not None and source is not None and source.name == d.span.file:
        raw = source.line(d.span.line)
        text = _shown_line(raw)
        if text:
            gutter = str(d.span.line)
            pad = " " * len(gutter)
            # columns count characters; a tab shows as up to 4 spaces, so shift the carets
            start = len(_shown_line(raw[: max(d.span.col, 1) - 1])) + 1
            end = d.span.end_col if d.span.end_line == d.span.line else len(raw) + 1
            end = len(_shown_line(raw[: max(end, 1) - 1])) + 1
            end = min(max(end, start + 1), max(len(text) + 1, start + 1))
            carets = "^" * (end - start)
            out.append(f"  {gutter} | {text}")
            out.append(f"  {pad} | {' ' * (start - 1)}{sev_color}{carets}{reset}")
    for message, span in d.notes:
        out.append(f"note: {message}" + (f" ({span})" if span is not None else ""))
    if d.hint:
        out.append(f"hint: {d.hint}")
    return "\n".join(out)


def render_diagnostics(
    diagnostics: Sequence[Diagnostic], source: Source | None, *, color: bool = False
) -> str:
    return "\n".join(render_diagnostic(d, source, color=color) for d in diagnostics)


def print_diagnostics(
    diagnostics: Sequence[Diagnostic], source: Source | None, stream: TextIO | None = None
) -> None:
    out: TextIO = stream if stream is not None else sys.stderr
    text = render_diagnostics(diagnostics, source, color=_use_color(out))
    print(text, file=out)
