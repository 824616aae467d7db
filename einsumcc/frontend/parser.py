"""Text to syntax tree: the Lark grammar, a bracket-aware post-lexer and friendly syntax errors."""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import lark
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from einsumcc.diagnostics import Diagnostic, EinError, Source, Span
from einsumcc.frontend import syntax as s

_OPEN = {"LPAR": "(", "LSQB": "[", "LBRACE": "{"}
_CLOSE = {"RPAR": "LPAR", "RSQB": "LSQB", "RBRACE": "LBRACE"}

KEYWORDS = frozenset(
    [
        "cascade",
        "rank",
        "split",
        "param",
        "input",
        "output",
        "tensor",
        "init",
        "where",
        "and",
        "or",
        "not",
        "expect",
        "inf",
    ]
)
RESERVED = frozenset({"op", "schedule"})

# Human names for the grammar's terminals, used in "expected ..." messages.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "_NL": "end of line",
    "$END": "end of file",
    "EQUAL": "'='",
    "COMMA": "','",
    "COLON": "':'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "CMP": "a comparison ('==', '<=', ...)",
    "INF": "'inf'",
    "WHERE": "'where'",
    "AND": "'and'",
    "OR": "'or'",
    "NOT": "'not'",
    "_POW": "'**'",
    "__ANON_0": "'->'",
}


# Limits on what one file may hold, checked on the token stream before anything recurses.
MAX_DEPTH = 200  # levels of nesting in one expression (brackets, operators, reductions)
MAX_NUMBER_DIGITS = 100  # digits of a number literal (exponent excluded)
MAX_STATEMENT_DIGITS = 1000  # digits of all the integer literals of one statement

# Tokens that add a level to the expression around them: operators, comparisons, reductions.
_LEVEL_TOKENS = frozenset({"PLUS", "MINUS", "STAR", "SLASH", "CMP", "LBRACE", "_POW", "NOT"})
# Tokens that end one expression and start an independent one at the same bracket level
# (``and`` and ``or`` chains are flat nodes of the tree).
_SEPARATORS = frozenset({"COMMA", "EQUAL", "WHERE", "AND", "OR", "COLON", "__ANON_0"})


class LimitError(Exception):
    """A token that crosses one of the limits above; the parser turns it into a diagnostic."""

    def __init__(self, token: Token, message: str, hint: str) -> None:
        super().__init__(message)
        self.token = token
        self.message = message
        self.hint = hint


class _Level:
    """One bracket level of the statement being read, for the nesting bound.

    ``ops`` counts the level tokens of the current expression at this level, ``inner`` is
    the deepest bracket group closed in it, ``done`` the deepest earlier expression (before
    a ``,`` or ``=``).  A tree node of the expression is at most ``ops + inner`` levels
    below the bracket: an upper bound on the depth of the tree Lark builds.
    """

    __slots__ = ("done", "inner", "ops")

    def __init__(self) -> None:
        self.ops = 0
        self.inner = 0
        self.done = 0

    def value(self, child: int) -> int:
        return max(self.done, self.ops + max(self.inner, child))


class _DepthGuard:
    """Bounds the nesting of every expression, one token at a time (linear time)."""

    def __init__(self) -> None:
        self.levels = [_Level()]

    def depth(self) -> int:
        child = 0
        for level in reversed(self.levels):
            child = level.value(child) + 1
        return child - 1

    def feed(self, tok: Token, opens: bool, closes: bool) -> None:
        kind = tok.type
        top = self.levels[-1]
        if kind in _LEVEL_TOKENS:
            top.ops += 1
        elif kind in _SEPARATORS:
            top.done = max(top.done, top.ops + top.inner)
            top.ops = top.inner = 0
        elif kind == "_NL" and len(self.levels) == 1:
            self.levels = [_Level()]
            return
        if opens:
            self.levels.append(_Level())
        elif closes and len(self.levels) > 1:
            inner = self.levels.pop().value(0)
            self.levels[-1].inner = max(self.levels[-1].inner, inner + 1)
            return
        if (opens or kind in _LEVEL_TOKENS) and self.depth() > MAX_DEPTH:
            raise LimitError(
                tok,
                f"expression nested too deeply (more than {MAX_DEPTH} levels)",
                "each bracket, operator and reduction adds a level; compute parts of the "
                "expression in separate Einsums",
            )


def _check_number(tok: Token, before: int) -> int:
    """The digits of integer literals in the statement so far, ``tok`` included."""
    text = str(tok)
    mantissa = text.split("e")[0].split("E")[0]
    digits = sum(ch.isdigit() for ch in mantissa)
    if digits > MAX_NUMBER_DIGITS:
        raise LimitError(
            tok,
            f"number with {digits} digits (at most {MAX_NUMBER_DIGITS})",
            "write large or precise values with an exponent, such as 1e30",
        )
    # Integers are exact: bound their products (a float literal just becomes inf).
    total = before + (digits if text.isdigit() else 0)
    if total > MAX_STATEMENT_DIGITS:
        raise LimitError(
            tok,
            f"the integers of this statement have more than {MAX_STATEMENT_DIGITS} digits",
            "integer arithmetic is exact: write large values as floats, such as 1e30",
        )
    return total


class _BracketPostLexer:
    """Drops newlines inside brackets and remembers unclosed openers for error messages.

    It also enforces :data:`MAX_DEPTH` and :data:`MAX_NUMBER_DIGITS` (raising
    :class:`LimitError`), so that no later stage meets an unboundedly deep tree or number.
    """

    always_accept = ("_NL",)

    def __init__(self) -> None:
        self.stack: list[Token] = []
        self.history: list[Token] = []
        self.statement_has_equal = False

    def before(self, tok: Token | None) -> Token | None:
        """The last token read before ``tok`` (the one the parser stopped at)."""
        for prev in reversed(self.history):
            if tok is None or tok.type == "$END" or (prev.start_pos or 0) < (tok.start_pos or 0):
                return prev
        return None

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        self.stack = []
        self.history = []
        self.statement_has_equal = False
        guard = _DepthGuard()
        digits = 0
        for tok in stream:
            opens = closes = False
            if tok.type in _OPEN:
                self.stack.append(tok)
                opens = True
            elif tok.type in _CLOSE and self.stack and self.stack[-1].type == _CLOSE[tok.type]:
                self.stack.pop()
                closes = True
            elif tok.type == "NUMBER":
                digits = _check_number(tok, digits)
            if tok.type == "_NL" and self.stack:
                continue
            if tok.type == "_NL":
                digits = 0
            guard.feed(tok, opens, closes)
            if tok.type == "_NL":
                self.statement_has_equal = False
            elif tok.type == "EQUAL":
                self.statement_has_equal = True
            self.history = [*self.history[-2:], tok]
            yield tok


_LARK_OPTIONS: dict[str, Any] = {
    "parser": "lalr",
    "lexer": "contextual",
    "propagate_positions": True,
    "maybe_placeholders": True,
}
# What a cached parser is loaded with (lark does not store these in the file).
_LOAD_OPTIONS = frozenset({"postlex", "propagate_positions"})


def _cache_folder() -> Path | None:
    """Where the LALR tables are kept between processes (saves ~50 ms per process).

    ``$EINSUMCC_CACHE_DIR``, else ``$XDG_CACHE_HOME/einsumcc`` (default ``~/.cache/einsumcc``):
    a real folder owned by the user, or None (no cache) where it cannot be made or is a
    symbolic link.
    """
    own = os.environ.get("EINSUMCC_CACHE_DIR")
    base = os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()
    folder = Path(own).expanduser() if own else Path(base) / "einsumcc"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        st = os.lstat(folder)
    except (OSError, ValueError):
        return None
    if not stat.S_ISDIR(st.st_mode):  # a symbolic link, or not a folder
        return None
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return None
    return folder


def _cache_key(grammar: str) -> bytes:
    """What the cached tables depend on: the grammar, the options, lark and Python."""
    parts = [grammar, repr(sorted(_LARK_OPTIONS.items())), lark.__version__, sys.version]
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
    return f"einsumcc-grammar {digest}\n".encode("ascii")


def _load_cached(path: Path, key: bytes, post: _BracketPostLexer) -> Lark | bool | None:
    """The parser stored at ``path``; None when it is missing, stale or corrupt (rebuild
    it), False when the file must not be used (a symbolic link: no cache at all)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError:
        return False  # ELOOP: a symbolic link; or unreadable
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return False
        try:
            if f.readline() != key:
                return None
            inst = Lark.__new__(Lark)
            return inst._load(f, postlex=post, propagate_positions=True)
        except Exception:  # a corrupt or truncated file: build the parser again
            return None


def _save_cached(parser: Lark, path: Path, key: bytes) -> None:
    """Write the tables atomically: a temporary file beside ``path``, then a rename."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ein-grammar.", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            parser.save(f, _LOAD_OPTIONS)
        Path(tmp).replace(path)  # replaces a file (or a link) by name, never writes through it
    except Exception:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()


@functools.cache
def _parser() -> tuple[Lark, _BracketPostLexer]:
    grammar = resources.files("einsumcc.grammars").joinpath("ein.lark").read_text("utf-8")
    post = _BracketPostLexer()
    folder = _cache_folder()
    path = folder / "ein-grammar.lark" if folder is not None else None
    key = _cache_key(grammar)
    cached = _load_cached(path, key, post) if path is not None else False
    if isinstance(cached, Lark):
        return cached, post
    parser = Lark(grammar, postlex=post, **_LARK_OPTIONS)
    if path is not None and cached is None:
        _save_cached(parser, path, key)
    return parser, post


def parse_source(source: Source) -> s.Program:
    """Parse `.ein` text into a :class:`~einsumcc.frontend.syntax.Program`.

    Raises :class:`EinError` (with the position of the first syntax error) on bad input.
    """
    parser, post = _parser()
    text = source.text if source.text.endswith("\n") else source.text + "\n"
    try:
        tree = parser.parse(text)
    except UnexpectedInput as exc:
        raise EinError((_syntax_diagnostic(exc, source, post),), source) from None
    except LimitError as exc:
        span = _tok_span(source.name, exc.token)
        raise EinError((Diagnostic("error", exc.message, span, exc.hint),), source) from None
    return _Builder(source.name).program(tree)


def parse_file(path: str) -> tuple[s.Program, Source]:
    source = Source.from_path(path)
    return parse_source(source), source


# ---------------------------------------------------------------- syntax errors


_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH"}
# v2 tokens that are named only where nothing of v1 fits (so v1 messages keep their text).
_V2_TERMS = {"_POW", "OR", "NOT"}


def _expected_text(expected: set[str] | frozenset[str]) -> str:
    names = []
    terms = set(expected)
    if terms - _V2_TERMS:
        terms -= _V2_TERMS
    if terms >= _OPERATORS:
        terms -= _OPERATORS
        names.append("an operator")
    for term in sorted(terms):
        if term in _TERMINAL_NAMES:
            names.append(_TERMINAL_NAMES[term])
        elif term.isupper() and term.lower() in KEYWORDS:
            names.append(f"'{term.lower()}'")
    names = sorted(set(names))
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _tok_span(file: str, tok: Token) -> Span:
    line = tok.line or 1
    col = tok.column or 1
    end_line = tok.end_line or line
    end_col = tok.end_column or col + max(len(str(tok)), 1)
    if tok.type == "_NL":
        end_line, end_col = line, col + 1
    return Span(file, line, col, end_line, end_col)


def _after(file: str, tok: Token) -> Span:
    """The position just after ``tok``: where a missing token belongs."""
    line = tok.end_line or tok.line or 1
    col = tok.end_column or (tok.column or 1) + len(str(tok))
    return Span(file, line, col, line, col + 1)


_CLOSER = {"LPAR": ")", "LSQB": "]", "LBRACE": "}"}
_CHAR_HINTS = {
    "'": "the .ein language has no strings",
    '"': "the .ein language has no strings",
    "=": "comparisons are '==', '!=', '<=', '>=', '<' and '>'",
    "!": "comparisons are '==', '!=', '<=', '>=', '<' and '>'",
    "&": "join the conditions of a filter with 'and'",
    "|": "join the conditions of a filter with 'or'",
    ".": "numbers are written with digits on both sides of the point: 0.5, not .5 or 5.",
}


def _unclosed(file: str, opener: Token, hint: str) -> Diagnostic:
    return Diagnostic("error", f"unclosed '{_OPEN[opener.type]}'", _tok_span(file, opener), hint)


def _syntax_diagnostic(exc: UnexpectedInput, source: Source, post: _BracketPostLexer) -> Diagnostic:
    file = source.name
    line = getattr(exc, "line", None) or 1
    # An unclosed bracket swallows newlines, so the parser stumbles lines later: blame the opener.
    if post.stack and post.stack[-1].line is not None and post.stack[-1].line < line:
        opener = post.stack[-1]
        return _unclosed(
            file,
            opener,
            f"add the matching '{_CLOSER[opener.type]}' on this line, or end the line with '\\' "
            "to continue the statement",
        )
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = source.text[pos] if pos < len(source.text) else "?"
        span = Span(file, exc.line, exc.column, exc.line, exc.column + 1)
        return Diagnostic("error", f"unexpected character {char!r}", span, _CHAR_HINTS.get(char))
    if isinstance(exc, UnexpectedEOF):
        span = Span(file, line, 1, line, 2)
        return Diagnostic("error", "unexpected end of file", span)
    assert isinstance(exc, UnexpectedToken)
    return _unexpected_token(exc, file, post)


def _unexpected_token(exc: UnexpectedToken, file: str, post: _BracketPostLexer) -> Diagnostic:
    tok = exc.token
    expected = _expected_text(exc.expected)
    prev = post.before(tok)
    if prev is not None and (str(prev) in RESERVED and prev.type != "NAME"):
        return Diagnostic(
            "error",
            f"'{prev}' is reserved for future use",
            _tok_span(file, prev),
            hint="the .ein language keeps 'op' and 'schedule' for later versions",
        )
    if post.stack and tok.type == "EQUAL":
        opener = post.stack[-1]
        return _unclosed(file, opener, f"add the matching '{_CLOSER[opener.type]}' before '='")
    if tok.type == "$END":
        span = _after(file, prev) if prev is not None else Span(file, 1, 1, 1, 2)
        return Diagnostic("error", "unexpected end of file", span, _expect_hint(expected))
    if str(tok) in RESERVED or tok.type in {"OP", "SCHEDULE"}:
        return Diagnostic(
            "error",
            f"'{tok}' is reserved for future use",
            _tok_span(file, tok),
            hint="choose another name",
        )
    if tok.type == "_NL":
        span = _after(file, prev) if prev is not None else _tok_span(file, tok)
        message = "statement ends too early"
        if expected:
            message += f": expected {expected}"
        return Diagnostic("error", message, span, _nl_hint(prev))
    return _unexpected_word(exc, file, post, prev, expected)


def _unexpected_word(
    exc: UnexpectedToken,
    file: str,
    post: _BracketPostLexer,
    prev: Token | None,
    expected: str,
) -> Diagnostic:
    tok = exc.token
    if tok.type.isupper() and str(tok) in KEYWORDS and tok.type != "NAME":
        hint: str | None = "keywords cannot be used as names"
        if "NAME" not in exc.expected and expected:
            hint = None
        message = f"unexpected keyword '{tok}'"
        if expected:
            message += f": expected {expected}"
        return Diagnostic("error", message, _tok_span(file, tok), hint)
    hint = _token_hint(tok, prev, exc, bool(post.stack), post.statement_has_equal)
    message = f"unexpected {_describe(tok)}"
    if hint == "use '==' to compare":
        message += " in a comparison"
    elif expected:
        message += f": expected {expected}"
    return Diagnostic("error", message, _tok_span(file, tok), hint)


def _describe(tok: Token) -> str:
    if tok.type == "NAME":
        return f"name '{tok}'"
    if tok.type == "NUMBER":
        return f"number {tok}"
    return f"'{tok}'"


def _expect_hint(expected: str) -> str | None:
    return f"expected {expected}" if expected else None


def _nl_hint(prev: Token | None) -> str | None:
    if prev is not None and str(prev) in {"+", "-", "*", "/", "="}:
        return f"'{prev}' needs an operand after it"
    return None


def _token_hint(
    tok: Token, prev: Token | None, exc: UnexpectedToken, inside: bool, has_equal: bool
) -> str | None:
    if prev is not None and prev.type == "NAME":
        word = str(prev)
        at_start = prev.line == tok.line and (prev.column or 0) <= 1
        for kw in sorted(KEYWORDS, key=len, reverse=True):
            rest = word[len(kw) :]
            if at_start and word.startswith(kw) and rest[:1].isupper():
                return f"did you mean '{kw} {rest}'?"
        close = difflib.get_close_matches(word, sorted(KEYWORDS), n=1, cutoff=0.75)
        if close and at_start:
            return f"did you mean the keyword '{close[0]}'?"
    if tok.type == "STAR" and prev is not None and prev.type == "STAR":
        return "the power operator is '**', written without a space"
    if inside and "COMMA" in exc.expected and tok.type == "NAME":
        return "separate indices and arguments with ','"
    if not has_equal and "EQUAL" in exc.expected and prev is not None and prev.type == "RSQB":
        return "an Einsum is written OUT[...] = expression: is the '=' missing?"
    if tok.type in {"NAME", "NUMBER", "LPAR"} and {"STAR", "PLUS"} & set(exc.expected):
        return "operands need an operator between them, such as '*'"
    if tok.type == "EQUAL" and "CMP" in exc.expected:
        return "use '==' to compare"
    return None


# ---------------------------------------------------------------- tree -> syntax


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file

    def span(self, node: Tree[Any] | Token) -> Span | None:
        if isinstance(node, Token):
            return _tok_span(self.file, node)
        meta = node.meta
        if getattr(meta, "empty", True):
            return None
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def ident(self, tok: Any) -> s.Ident:
        assert isinstance(tok, Token)
        return s.Ident(str(tok), self.span(tok))

    def program(self, tree: Tree[Any]) -> s.Program:
        stmts = tuple(self.stmt(child) for child in tree.children if isinstance(child, Tree))
        return s.Program(stmts, self.file)

    def stmt(self, t: Tree[Any]) -> s.Stmt:
        kind = t.data
        c = t.children
        sp = self.span(t)
        if kind == "cascade_stmt":
            return s.CascadeStmt(self.ident(c[0]), sp)
        if kind == "rank_stmt":
            return s.RankStmt(self.ident(c[0]), self.expr(c[1]) if len(c) > 1 else None, sp)
        if kind == "split_stmt":
            return s.SplitStmt(self.ident(c[0]), tuple(self.ident(x) for x in c[1:]), sp)
        if kind == "param_stmt":
            return s.ParamStmt(self.ident(c[0]), self.expr(c[1]), sp)
        if kind == "tensor_stmt":
            kind_tree, name, *rest = c
            kind_tok = kind_tree.children[0]
            dims = tuple(self.expr(x) for x in rest[:-2] if x is not None)
            dtype = self.ident(rest[-2]) if rest[-2] is not None else None
            fill = self.expr(rest[-1]) if rest[-1] is not None else None
            return s.TensorStmt(str(kind_tok), self.ident(name), dims, dtype, fill, sp)
        if kind == "init_stmt":
            return s.InitStmt(self.access(c[0]), self.expr(c[1]), sp)
        if kind == "einsum_stmt":
            where: tuple[s.Expr, ...] = ()
            if len(c) > 2 and c[2] is not None:
                where = _conjuncts(self.expr(c[2].children[0]))
            return s.EinsumStmt(self.access(c[0]), self.expr(c[1]), where, sp)
        if kind == "expect_stmt":
            fn, *mid, op, value = c
            args = tuple(self.expr(x) for x in mid if x is not None)
            return s.ExpectStmt(self.ident(fn), args, str(op), self.expr(value), sp)
        if kind == "reserved_stmt":
            return s.ReservedStmt(str(c[0]), sp)
        raise AssertionError(f"unknown statement {kind}")

    def access(self, t: Tree[Any]) -> s.Access:
        name, *idx = t.children
        indices = tuple(self.expr(x) for x in idx if x is not None)
        return s.Access(self.ident(name), indices, self.span(t))

    def expr(self, t: Any) -> s.Expr:
        if isinstance(t, Token):
            raise AssertionError(f"bare token {t!r} in expression")
        sp = self.span(t)
        kind = t.data
        c = t.children
        if kind == "number":
            return s.Number(str(c[0]), sp)
        if kind == "inf":
            return s.Inf(sp)
        if kind == "name":
            return s.Name(str(c[0]), sp)
        if kind == "access":
            return self.access(t)
        if kind == "call":
            fn, *args = c
            return s.Call(self.ident(fn), tuple(self.expr(a) for a in args if a is not None), sp)
        if kind == "paren":
            inner = self.expr(c[0])
            return _respan(inner, sp)
        if kind == "neg":
            return s.Neg(self.expr(c[0]), sp)
        if kind == "reduce":
            op, *names, body = c
            return s.Reduce(
                self.ident(op), tuple(self.ident(n) for n in names), self.expr(body), sp
            )
        if kind in _BINARY:
            return s.BinOp(_BINARY[kind], self.expr(c[0]), self.expr(c[1]), sp)
        return self.condition(t, sp)

    def condition(self, t: Tree[Any], sp: Span | None) -> s.Expr:
        """(v2) comparisons, ``and``, ``or`` and ``not``."""
        kind = t.data
        c = t.children
        if kind == "compare":
            lhs, op, rhs = c
            return s.Cond(self.expr(lhs), str(op), self.expr(rhs), sp)
        if kind == "not_":
            return s.NotCond(self.expr(c[0]), sp)
        if kind in {"conj", "disj"}:
            op = "and" if kind == "conj" else "or"
            return s.BoolOp(op, tuple(self.expr(x) for x in c), sp)
        raise AssertionError(f"unknown expression {kind}")


_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}


def _conjuncts(e: s.Expr) -> tuple[s.Expr, ...]:
    """The conjuncts of a filter's top-level ``and`` (parenthesised ones included)."""
    if isinstance(e, s.BoolOp) and e.op == "and":
        return tuple(x for part in e.parts for x in _conjuncts(part))
    return (e,)


def _respan(e: s.Expr, span: Span | None) -> s.Expr:
    """A parenthesised expression keeps the span of its parentheses."""
    import dataclasses

    return dataclasses.replace(e, span=span)


__all__ = ["KEYWORDS", "RESERVED", "parse_file", "parse_source"]
_ = lark  # the lark package is the parser generator; keep the import explicit for readers
