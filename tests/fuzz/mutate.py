"""Token-wise mutations of valid inputs: what a user's typing, pasting and truncating makes.

A file is split into tokens (names, numbers, operators, brackets, newlines, comments); a
mutation deletes, inserts, duplicates, swaps or replaces tokens, or truncates the text.  The
inserted tokens come from the language (keywords, operators, extreme numbers) and from the
file itself, so many mutants are nearly valid, which is where analyses break.
"""

from __future__ import annotations

import random
import re

TOKEN = re.compile(
    r"#[^\n]*|\n|[ \t]+|\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?|[A-Za-z_]\w*"
    r'|"[^"\n]*"|==|<=|>=|!=|->|\*\*|[-+*/%<>=()\[\]{},.:;\\]|.',
)

EIN_POOL = [
    "rank", "split", "param", "input", "output", "tensor", "init", "expect", "passes",
    "cascade", "where", "and", "or", "not", "sum", "max", "min", "prod", "exp", "sqrt",
    "safe_div", "select", "inf", "-inf", "nan", "0", "1", "-1", "0.5", "1e308", "1e-320",
    "99999999999999999999999", "M", "P", "E", "m", "p", "e", "M0", "m0", "M1", "m1", "x",
    "+", "-", "*", "/", "**", "=", "==", "<", "<=", "!=", "->", "(", ")", "[", "]", "{", "}",
    ",", ":", "f16", "f32", "bf16", "i32", "bool", "\n", " ", "#", "\\",
]  # fmt: skip

TOML_POOL = [
    "=", "[", "]", "[[", "]]", "{", "}", ",", '"', "'", "\n", "0", "-1", "1", "1e400",
    "99999999999999999999", "true", "false", '"2d"', '"1d"', '"P:fit"', '"M1"', '"P:0"',
    '"X:3"', "[]", "{}", "inf", "nan", "group", "einsum", "loops", "mode", "stream", "rows",
    "cols", "array", "stages", "order", "interleave", "placement", '"dram"', '"buffer"',
    "version", "name", "dram_loops", "chunks", '"${cols}"', '"${nope}"', "BQK", "AV",
]  # fmt: skip


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def mutate(text: str, rng: random.Random, pool: list[str], max_edits: int = 4) -> str:
    """One mutant of ``text``: 1..max_edits token edits, sometimes a truncation."""
    toks = tokens(text)
    for _ in range(1 if rng.random() < 0.6 else rng.randint(2, max_edits)):
        if not toks:
            toks = [rng.choice(pool)]
        i = rng.randrange(len(toks))
        op = rng.choice(["delete", "insert", "insert", "replace", "swap", "duplicate", "own"])
        if op == "delete":
            del toks[i]
        elif op == "insert":
            toks.insert(i, rng.choice(pool))
        elif op == "replace":
            toks[i] = rng.choice(pool)
        elif op == "swap":
            j = rng.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
        elif op == "duplicate":
            toks[i:i] = toks[i : i + rng.randint(1, 8)]
        else:  # a token of the file itself, elsewhere
            toks.insert(i, rng.choice(toks))
    out = "".join(toks)
    if rng.random() < 0.1:
        out = out[: rng.randrange(len(out) + 1)]
    return out


def extreme(rng: random.Random) -> str:
    """Pathological texts that are not near any valid file."""
    n = rng.choice([10, 1000, 6000])
    kind = rng.choice(["parens", "minus", "digits", "brackets", "errors", "blank", "binary"])
    if kind == "parens":
        return f"rank K = 2\ninput A[K]\noutput Z[K]\nZ[k] = {'(' * n}A[k]{')' * n}\n"
    if kind == "minus":
        return f"rank K = 2\ninput A[K]\noutput Z[K]\nZ[k] = {'-' * n}A[k]\n"
    if kind == "digits":
        return f"rank K = {'9' * n}\ninput A[K]\noutput Z[K]\nZ[k] = A[k]\n"
    if kind == "brackets":
        return f"rank K = 2\ninput A[K]\noutput Z[K]\nZ[k] = A{'[k' * n}\n"
    if kind == "errors":
        return "rank K = 2\ninput A[K]\noutput Z[K]\n" + "Z[q] = B[k]\n" * (n // 10)
    if kind == "blank":
        return rng.choice(["", "\n", "\f\v\x1c\u2028", "\t \n\r\n", "# only a comment"])
    return bytes(rng.getrandbits(8) for _ in range(64)).decode("latin-1")
