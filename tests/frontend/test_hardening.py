"""Pathological inputs end in positioned diagnostics (exit 1), never in internal errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from einsumcc import EinError, load
from einsumcc.cli import main
from einsumcc.diagnostics import MAX_ERRORS, Source
from einsumcc.frontend import parser
from einsumcc.frontend.parser import MAX_DEPTH, MAX_NUMBER_DIGITS

HEAD = "rank K = 4\ninput A[K]\noutput Z[K]\n"


def first_error(text: str) -> str:
    with pytest.raises(EinError) as info:
        load(text)
    return str(info.value).splitlines()[0]


@pytest.mark.parametrize(
    ("body", "col"),
    [
        ("(" * 5000 + "A[k]" + ")" * 5000, 7 + MAX_DEPTH + 1),
        ("-" * 20000 + "A[k]", 7 + MAX_DEPTH + 1),
        ("A[" * 5000 + "k" + "]" * 5000, 7 + 2 * (MAX_DEPTH + 1)),
        ("exp(" * 5000 + "A[k]" + ")" * 5000, 7 + 4 * (MAX_DEPTH + 1)),
        (" * ".join(["A[k]"] * 20000), 7 + 7 * (MAX_DEPTH - 1) + 6),
        ("sum{k} " * 5000 + "A[k]", 7 + 7 * (MAX_DEPTH - 1) + 4),
    ],
    ids=["parentheses", "minus", "brackets", "calls", "products", "reductions"],
)
def test_deep_nesting_is_an_error_at_the_token_that_crosses_the_limit(body, col):
    message = first_error(HEAD + f"Z[k] = {body}\n")
    assert message == (
        f"<string>:4:{col}: error: expression nested too deeply (more than {MAX_DEPTH} levels)"
    )


def test_nesting_up_to_the_limit_checks_and_runs(capsys, tmp_path):
    depth = MAX_DEPTH - 2
    text = HEAD + "Z[k] = " + "(" * depth + "A[k]" + ")" * depth + "\n"
    text += "output Y[K]\nY[k] = " + "-" * depth + "A[k]\n"
    path = tmp_path / "deep.ein"
    path.write_text(text)
    for argv in (["check"], ["run"], ["show"], ["analyze", "passes"], ["analyze", "cost"]):
        assert main([*argv, str(path)]) == 0, capsys.readouterr().err


def test_nesting_is_counted_per_expression():
    # two indices of MAX_DEPTH - 10 levels each: a ',' starts a new count
    many = " + ".join(["k"] * (MAX_DEPTH - 10))
    c = load(HEAD + f"input B[K, K]\nZ[k] = B[{many}, {many}]\n")
    assert [e.name for e in c.einsums] == ["Z"]


def test_a_huge_integer_is_an_error():
    text = f"rank K = {'9' * 5000}\ninput A[K]\noutput Z[]\nZ[] = sum{{k}} A[k]\n"
    assert first_error(text) == (
        f"<string>:1:10: error: number with 5000 digits (at most {MAX_NUMBER_DIGITS})"
    )
    assert first_error(f"param s = 0.{'1' * 200}\n" + HEAD + "Z[k] = s * A[k]\n").startswith(
        "<string>:1:11: error: number with 201 digits"
    )


def test_large_numbers_within_the_limit_are_accepted():
    big = "9" * MAX_NUMBER_DIGITS
    c = load(f"param s = {big}e-99\n" + HEAD + "Z[k] = s * A[k] + 1e99999\n")
    assert [e.name for e in c.einsums] == ["Z"]


def test_an_empty_file_has_a_position(tmp_path, capsys):
    path = tmp_path / "empty.ein"
    path.write_text("")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"{path}:1:1: error: the file has no statements"
    assert "hint: " in err


def test_lines_end_at_newlines_only():
    text = "a\fb\x1cc\u2028d\r\ne\x85f\nlast"
    source = Source("x.ein", text)
    assert source.line(1) == "a\fb\x1cc\u2028d"
    assert source.line(2) == "e\x85f"
    assert source.line(3) == "last"
    assert source.line(4) == ""


def test_a_tab_before_the_error_moves_the_carets():
    with pytest.raises(EinError) as info:
        load(HEAD + "Z[k] =\tA[q]\n")
    lines = str(info.value).splitlines()
    assert lines[1] == "  4 | Z[k] =  A[q]"
    assert lines[2].index("^") - lines[1].index("Z") == len("Z[k] =  A[")


def test_many_errors_are_capped_with_a_count(tmp_path, capsys):
    path = tmp_path / "many.ein"
    path.write_text(HEAD + "".join(f"X{i}[k] = A[q]\n" for i in range(5000)))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert len(re.findall(r"^\S+:\d+:\d+: error: ", err, re.M)) == MAX_ERRORS
    # 5000 unknown variables, and the output Z is never assigned
    assert err.rstrip().splitlines()[-1] == (
        f"note: ... and {5001 - MAX_ERRORS} more errors (only the first {MAX_ERRORS} are shown)"
    )


def test_many_misspelled_outputs_are_matched_by_case(tmp_path, capsys):
    n = 300
    text = "rank K = 4\ninput A[K]\n" + "".join(f"output O{i}[K]\n" for i in range(n))
    text += "".join(f"o{i}[k] = A[k]\n" for i in range(n))
    path = tmp_path / "outputs.ein"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "tensor 'o0' is assigned but never used, and output 'O0' is never assigned" in err


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file: {path}"),
        ("folder", "cannot read {path}: it is a folder, not a file"),
        ("long", "cannot read {short}: the path is too long"),
        ("latin1", "cannot read {path}: not UTF-8 text (byte 0xe9 at line 2, column 6)"),
    ],
)
def test_unreadable_files_are_clear_errors(kind, message, tmp_path, capsys):
    path = tmp_path / "x.ein"
    if kind == "folder":
        path.mkdir()
    elif kind == "long":
        path = tmp_path / ("a" * 5000 + ".ein")
    elif kind == "latin1":
        path.write_bytes(b"rank K = 4\n# caf\xe9\n")
    short = f"{str(path)[:100]}...{str(path)[-40:]}"
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "error: " + message.format(path=path, short=short)
    assert "internal error" not in err


# ---------------------------------------------------------------- the grammar cache


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "einsumcc"


def fresh_parser():
    lark_parser, _ = parser._parser.__wrapped__()  # type: ignore[attr-defined]
    return lark_parser


def parses(lark_parser) -> bool:
    text = (Path(__file__).resolve().parents[2] / "examples" / "attention_1pass.ein").read_text()
    return lark_parser.parse(text).data == "start"


def test_the_cache_is_written_atomically_and_reused(cache_home, monkeypatch):
    assert parses(fresh_parser())
    cache = cache_home / "ein-grammar.lark"
    assert cache.is_file()
    assert [p.name for p in cache_home.iterdir()] == ["ein-grammar.lark"]  # no temporary left
    built = []
    monkeypatch.setattr(parser, "_save_cached", lambda *a: built.append(a))
    assert parses(fresh_parser())
    assert built == []  # loaded, not rebuilt


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_cache_is_rebuilt(cache_home, damage):
    fresh_parser()
    cache = cache_home / "ein-grammar.lark"
    data = cache.read_bytes()
    cache.write_bytes({"garbage": b"junk\n", "truncated": data[:300], "empty": b""}[damage])
    assert parses(fresh_parser())
    assert cache.read_bytes()[:80] == data[:80]


def test_a_symlinked_cache_file_is_neither_read_nor_written(cache_home, tmp_path):
    cache_home.mkdir()
    target = tmp_path / "target"
    target.write_text("keep me\n")
    (cache_home / "ein-grammar.lark").symlink_to(target)
    assert parses(fresh_parser())
    assert target.read_text() == "keep me\n"
    assert (cache_home / "ein-grammar.lark").is_symlink()


def test_a_symlinked_cache_folder_is_not_used(cache_home, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache_home.symlink_to(elsewhere)
    assert parses(fresh_parser())
    assert list(elsewhere.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() == 0, reason="needs a non-root user")
def test_an_unwritable_cache_folder_is_not_an_error(cache_home):
    cache_home.mkdir(mode=0o500)
    assert parses(fresh_parser())


# ---------------------------------------------------------------- sizes of exact arithmetic


def test_the_integers_of_a_statement_are_bounded():
    big = " * ".join(["9" * 100] * 11)
    message = first_error(f"rank K = {big}\ninput A[K]\noutput Z[K]\nZ[k] = A[k]\n")
    assert message == (
        "<string>:1:1040: error: the integers of this statement have more than 1000 digits"
    )


def test_a_huge_extent_is_an_error_and_its_dependents_are_not_computed():
    big = " * ".join(["9" * 100] * 9)
    square = " * ".join(["K"] * 150)
    text = f"rank K = {big}\nrank L = {square}\ninput A[L]\noutput Z[L]\nZ[l] = A[l]\n"
    assert first_error(text) == "<string>:1:10: error: extent of K is too large (more than 2**62)"


def test_a_long_chain_of_derived_extents_is_computed_once_each():
    # each extent uses the two before it: without memoisation this took exponential time
    chain = "".join(f"rank A{i} = A{i - 1} + A{i - 2}\n" for i in range(2, 80))
    text = f"rank A0 = 1\nrank A1 = 1\n{chain}input X[A60]\noutput Z[A60]\nZ[a60] = X[a60]\n"
    from einsumcc.ir.bind import bind

    extents = bind(load(text), {}).extents
    assert extents["A60"] == 2504730781961  # Fibonacci(61)
    assert extents["A79"] == 23416728348467685


def test_a_product_of_many_sums_in_an_index_is_not_expanded():
    product = " * ".join(["(k + K + 1 + j + J)"] * 40)
    text = f"rank K = 2\nrank J = 2\ninput A[K]\noutput Z[K, J]\nZ[k, j] = A[{product}]\n"
    assert first_error(text).endswith("error: an index must be affine in rank variables")
