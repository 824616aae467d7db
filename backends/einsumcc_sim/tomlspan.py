"""Source positions for errors in architecture and mapping files.

``tomllib`` keeps no positions, so the loaders name the offending key (``einsum.QK.array``,
``group[1].loops``, ``array2d.rows``) and :func:`located` finds where the file defines it:
under its ``[table]`` or ``[[array]]`` header, as a dotted key, or inside an inline table.
The error then reads ``file:line:col``, the line and carets, as errors in ``.ein`` files do.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path

from einsumcc.diagnostics import Diagnostic, EinError, Source, Span
from einsumcc.files import path_error

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r"^\s*((?:\"[^\"]*\"|[\w-]+)(?:\s*\.\s*(?:\"[^\"]*\"|[\w-]+))*)\s*=")
_PART = re.compile(r"\"([^\"]*)\"|([\w-]+)")
_KEY_PATH = re.compile(r"^([\w\"\[\].${}-]+): ")
_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


def _parts(dotted: str) -> list[str]:
    """``einsum."QK.1".array`` → ``["einsum", "QK.1", "array"]``; ``group[1].loops`` →
    ``["group", "1", "loops"]`` (an index counts the ``[[group]]`` headers)."""
    return [a or b for a, b in _PART.findall(dotted)]


def key_span(source: Source, key: str) -> Span | None:
    """Where ``source`` defines ``key`` (the innermost part found), or None."""
    want = _parts(key)
    table: list[str] = []
    counts: dict[str, int] = {}
    best: tuple[int, Span] | None = None
    lines = source.text.splitlines()
    for no, line in enumerate(lines, 1):
        text = line.split("#", 1)[0] if '"' not in line else line
        m = _HEADER.match(text)
        if m:
            table = _parts(m.group(2))
            if m.group(1) == "[[":
                name = ".".join(table)
                table = [*table, str(counts.get(name, 0))]
                counts[name] = counts.get(name, 0) + 1
            depth = _common(table, want)
            # a [[name]] header stands for name itself too (``array1d`` written [[array1d]])
            whole = depth == len(table) or (m.group(1) == "[[" and depth == len(want))
            if whole and (best is None or depth > best[0]):
                col = line.index(m.group(2)) + 1
                best = (depth, Span(source.name, no, col, no, col + len(m.group(2))))
            continue
        m = _KEY.match(text)
        if not m:
            continue
        path = [*table, *_parts(m.group(1))]
        depth = _common(path, want)
        if depth < len(path):
            continue
        col = m.start(1) + 1
        span = Span(source.name, no, col, no, m.end(1) + 1)
        if depth < len(want):  # inside an inline table: the inner key, if it is there
            inner = re.search(rf"[{{,]\s*({re.escape(want[depth])})\s*=", text[m.end() :])
            if inner:
                depth += 1
                c = m.end() + inner.start(1) + 1
                span = Span(source.name, no, c, no, c + len(want[depth - 1]))
        if best is None or depth > best[0]:
            best = (depth, span)
    return best[1] if best else None


def _value_span(source: Source, key: Span, message: str) -> Span:
    """The value after ``key =`` on its line (the quoted culprit of ``message`` within it,
    when it is there), or ``key`` itself for a table header."""
    line = source.line(key.line)
    eq = line.find("=", key.end_col - 1)
    if eq < 0 or line[: key.col - 1].rstrip().endswith("["):
        return key
    value = line[eq + 1 :]
    start = eq + 1 + len(value) - len(value.lstrip())
    end = len(line.split(" #", 1)[0].rstrip()) if " #" in line else len(line.rstrip())
    quoted = re.search(r"'([^']+)'", message)
    if quoted:
        at = line.find(f'"{quoted.group(1)}"', start)
        if at >= 0:
            start, end = at, at + len(quoted.group(1)) + 2
    if end <= start:
        return key
    return Span(key.file, key.line, start + 1, key.line, end + 1)


_END = "(at end of document)"


def _end(source: Source) -> Span:
    """Just past the last character of the file."""
    lines = source.text.splitlines() or [""]
    col = len(lines[-1]) + 1
    return Span(source.name, len(lines), col, len(lines), col + 1)


def _first(source: Source) -> Span:
    """The first line that is neither blank nor a comment (else the first line)."""
    for no, line in enumerate(source.text.splitlines(), 1):
        text = line.strip()
        if text and not text.startswith("#"):
            col = len(line) - len(line.lstrip()) + 1
            return Span(source.name, no, col, no, col + len(text.split(" #")[0].rstrip()))
    return Span(source.name, 1, 1, 1, 2)


def _quoted(source: Source, message: str) -> Span | None:
    """Where the file has the text that ``message`` quotes (``'${block}'``), if anywhere."""
    q = re.search(r"'([^']+)'", message)
    if q is None:
        return None
    for no, line in enumerate(source.text.splitlines(), 1):
        at = line.find(q.group(1))
        if at >= 0:
            return Span(source.name, no, at + 1, no, at + 1 + len(q.group(1)))
    return None


def _common(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def located(err: EinError, source: Source, skip: frozenset[str] = frozenset()) -> EinError:
    """``err`` with its ``SOURCE: KEY: message`` diagnostics placed at the key in ``source``
    (not the keys in ``skip``: their values came from elsewhere, e.g. ``--set``)."""
    prefix = f"{source.name}: "
    out: list[Diagnostic] = []
    moved = False
    for d in err.diagnostics:
        if d.span is None and d.message.startswith(prefix):
            rest = d.message[len(prefix) :]
            span = None
            at = _TOML_AT.search(rest) if rest.startswith("invalid TOML") else None
            if at:
                line, col = int(at.group(1)), int(at.group(2))
                span = Span(source.name, line, col, line, col + 1)
                rest = _TOML_AT.sub("", rest).rstrip()
            elif rest.startswith("invalid TOML") and rest.endswith(_END):
                span = _end(source)
                rest = rest.removesuffix(_END).rstrip()
            else:
                m = _KEY_PATH.match(rest)
                if m and m.group(1) not in skip:
                    span = key_span(source, m.group(1))
                    about = rest[m.end() :]
                    if span is not None and not about.startswith(("unknown", "no such")):
                        span = _value_span(source, span, about)
                    if span is None:  # a key the file lacks: the file's first setting
                        span = _first(source)
                elif not m:
                    span = _quoted(source, rest)
            if span is not None:
                d = replace(d, message=rest, span=span)
                moved = True
        out.append(d)
    if not moved:
        return err
    new = type(err)(tuple(out), source)
    new.__cause__ = err.__cause__
    return new


def parse(text: str, source: Source) -> dict[str, object]:
    """The TOML table, or an error at the line and column ``tomllib`` names; a file with no
    settings at all (empty, or only comments) is an error at its first line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise located(EinError.plain(f"{source.name}: invalid TOML: {exc}"), source) from None
    if not raw:
        raise EinError.at(
            Span(source.name, 1, 1, 1, 2),
            "the file sets nothing (it is empty or holds only comments)",
            source,
            hint="a file starts with version = 1; see docs/simulator.md",
        )
    return raw


def read(path: Path, option: str) -> Source:
    """The file's text, or an error: one that names ``option`` when it cannot be read, or
    one at the line and column of the first byte that is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise path_error(option, path, exc) from None
    try:
        return Source(str(path), data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        text = data.decode("utf-8", errors="replace")
        raise EinError.at(
            Span(str(path), line, col, line, col + 1),
            f"byte 0x{data[exc.start]:02x} is not UTF-8 text",
            Source(str(path), text),
            hint="save the file as UTF-8",
        ) from None
