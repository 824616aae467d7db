"""The command line: exit codes, JSON on stdout, files, help, and user errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from einsumcc.cli import build_parser, main
from tests.conftest import EXAMPLES, ROOT

ONE_PASS = str(EXAMPLES / "attention_1pass.ein")


def run_json(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_run_json_form_and_determinism(capsys):
    argv = ["run", ONE_PASS, "--dims", "M=256,P=128", "--seed", "0", "--json"]
    first = run_json(capsys, *argv)
    assert set(first) == {"outputs"}
    assert set(first["outputs"]) == {"AV"}
    av = first["outputs"]["AV"]
    assert av["shape"] == [64, 128]
    assert set(av) == {"shape", "sum", "l2"}
    assert isinstance(av["sum"], float)
    assert av["l2"] > 0
    assert run_json(capsys, *argv) == first
    other = run_json(capsys, *argv[:-2], "1", "--json")
    assert other != first


def test_run_json_stdout_is_only_json():
    # through the installed console script, as a user runs it
    proc = subprocess.run(
        [sys.executable, "-m", "einsumcc", "run", ONE_PASS, "--dims", "M=128,P=64", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert json.loads(proc.stdout)["outputs"]["AV"]["shape"] == [64, 64]
    assert proc.stdout.count("\n") == 1


def test_run_save_and_inputs_roundtrip(tmp_path, capsys):
    out = tmp_path / "out.npz"
    assert (
        main(["run", str(EXAMPLES / "matmul.ein"), "--dims", "M=4,N=3,K=2", "--save", str(out)])
        == 0
    )
    assert "saved Z" in capsys.readouterr().out
    with np.load(out) as z:
        assert z["Z"].shape == (4, 3)
    a, b = np.ones((4, 2)), np.full((2, 3), 2.0)
    given = tmp_path / "in.npz"
    np.savez(given, A=a, B=b)
    assert (
        main(
            [
                "run",
                str(EXAMPLES / "matmul.ein"),
                "--dims",
                "M=4,N=3,K=2",
                "--inputs",
                str(given),
                "--save",
                str(out),
            ]
        )
        == 0
    )
    with np.load(out) as z:
        np.testing.assert_array_equal(z["Z"], a @ b)


def test_run_inputs_with_unknown_tensor(tmp_path, capsys):
    given = tmp_path / "in.npz"
    np.savez(given, A=np.ones((4, 2)), C=np.ones(3))
    status = main(
        ["run", str(EXAMPLES / "matmul.ein"), "--dims", "M=4,N=3,K=2", "--inputs", str(given)]
    )
    assert status == 1
    assert "'C', which is not an input of matmul" in capsys.readouterr().err


def test_rank0_outputs_are_saved_as_0d(tmp_path):
    out = tmp_path / "z.npz"
    assert (
        main(["run", str(EXAMPLES / "paper" / "cascade1.ein"), "--dims", "K=8", "--save", str(out)])
        == 0
    )
    with np.load(out) as z:
        assert z["Z"].shape == ()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", ONE_PASS], "rank M has no extent"),
        (["run", ONE_PASS, "--dims", "M=100,P=8"], "extent of M1"),
        (["run", ONE_PASS, "--dims", "M=x"], "--dims: expected RANK=POSITIVE_INTEGER"),
        (["run", ONE_PASS, "--dims", "Z=4"], "--dims names unknown rank 'Z'"),
        (["check", "no/such/file.ein"], "no such file"),
    ],
)
def test_user_errors_exit_1_without_traceback(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_missing_extent_points_at_the_rank(capsys):
    main(["run", ONE_PASS, "--dims", "P=8"])
    err = capsys.readouterr().err
    assert err.startswith(f"{ONE_PASS}:10:1: error: rank M has no extent")


def test_internal_errors_exit_3(monkeypatch, capsys):
    import einsumcc.cli as cli

    def boom(args):
        raise RuntimeError("bug")

    monkeypatch.setattr(cli, "cmd_show", boom)
    assert main(["show", ONE_PASS]) == 3
    err = capsys.readouterr().err
    assert "internal error" in err
    assert "Traceback" not in err


def test_every_subcommand_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in subparsers.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0


def test_check_all_examples(capsys):
    files = sorted(str(p) for p in EXAMPLES.rglob("*.ein"))
    assert main(["check", *files]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok (") == len(files)


def test_show_dims_are_checked(capsys):
    assert main(["show", ONE_PASS, "--dims", "M=128,P=64"]) == 0
    assert capsys.readouterr().out.startswith("cascade attention_1pass\n")


def test_graph_dot_and_svg(tmp_path, capsys):
    import shutil

    dot = tmp_path / "g.dot"
    assert main(["graph", ONE_PASS, "-o", str(dot)]) == 0
    text = dot.read_text()
    assert text.startswith('digraph "attention_1pass"')
    assert '"tensor:RM" -> "einsum:RM" [style=dashed, label="carried"]' in text
    svg = tmp_path / "g.svg"
    status = main(["graph", ONE_PASS, "-o", str(svg)])
    if shutil.which("dot"):
        assert status == 0
        assert svg.read_text().lstrip().startswith("<?xml")
    else:
        assert status == 1
        assert "Graphviz" in capsys.readouterr().err


def test_warnings_go_to_stderr(tmp_path, capsys):
    spec = tmp_path / "w.ein"
    spec.write_text(
        "rank M = 4\nrank P = 4\ninput X[M, P] : f32\noutput Y[P] : f32\n"
        "S[m, p] = X[m, p] where m <= p\nY[p] = sum{m} exp(S[m, p])\n"
    )
    assert main(["run", str(spec), "--json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)
    assert "warning: points removed by this filter hold S's fill 0" in captured.err
