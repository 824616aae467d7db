"""Errors in architecture and mapping files: exit 1, no traceback, ``file:line:col`` at the
key (or its value) that is wrong, the line and carets.  Each file in ``errors/`` names the
command it breaks in its first line; the full rendering is a golden file."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from einsumcc.cli import main
from einsumcc.diagnostics import EinError, Source
from einsumcc_sim.arch import load_arch
from einsumcc_sim.tomlspan import key_span
from tests.conftest import EXAMPLES
from tests.golden import assert_golden

CORPUS = Path(__file__).resolve().parent / "errors"
FILES = sorted(CORPUS.glob("*.toml"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_file_error(path: Path, capsys, monkeypatch, update_golden):
    header = path.read_bytes().decode("utf-8", errors="replace").splitlines()[0]
    assert header.startswith("# simulate "), f"{path.name} lacks a '# simulate ...' header"
    ein, *args = shlex.split(header.removeprefix("# simulate "))
    option = "--arch" if path.name.startswith("arch_") else "--mapping"
    monkeypatch.chdir(CORPUS)
    status = main(["simulate", str(EXAMPLES / ein), *args, option, path.name])
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback" not in err
    first, source_line, carets = err.splitlines()[:3]
    assert first.startswith(f"{path.name}:")
    line, col = (int(x) for x in first.split(":")[1:3])
    assert source_line.lstrip().startswith(f"{line} | ")
    assert carets.index("^") - (source_line.index("| ") + 2) == col - 1
    assert_golden(err, f"sim_errors/{path.stem}.txt", update=update_golden)


def test_corpus_covers_both_kinds_of_file():
    kinds = {p.name.split("_")[0] for p in FILES}
    assert kinds == {"arch", "mapping"}
    assert len(FILES) >= 36


TEXT = """\
version = 1
name = "x"   # a comment
energy.array2d.mac = 3
[array2d]
rows = 4
[array2d.ops]
mac = { mac = 1, add = 2 }
[[group]]
mode = "a"
[[group]]
mode = "b"
[einsum."QK.1"]
array = "1d"
"""


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ("name", (2, 1)),
        ("array2d.rows", (5, 1)),
        ("array2d", (4, 2)),
        ("array2d.ops.mac.add", (7, 18)),  # inside an inline table
        ("array2d.ops.mac.mul", (7, 1)),  # not there: the innermost part that is
        ("group[1].mode", (11, 1)),  # the second [[group]]
        ('einsum."QK.1".array', (13, 1)),
        ("energy.array2d.mac", (3, 1)),  # a dotted key
    ],
)
def test_key_span(key, where):
    span = key_span(Source("f.toml", TEXT), key)
    assert span is not None
    assert (span.line, span.col) == where


def test_absent_keys_have_no_position():
    assert key_span(Source("f.toml", TEXT), "clock_hz") is None


def test_values_from_set_are_not_blamed_on_the_file(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text((CORPUS / "arch_no_pes.toml").read_text().replace("pes = 0", "pes = 8"))
    with pytest.raises(EinError) as exc:
        load_arch(path, ["array1d.pes=0"])
    assert exc.value.diagnostics[0].span is None
    assert "array1d.pes: must be at least 1" in str(exc.value)
