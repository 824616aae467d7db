"""The house rules, checked on the source: the core never imports a backend, no god-classes,
complexity is linted, one name per class."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "einsumcc"
BACKENDS = ROOT / "backends"
BACKEND_PACKAGES = sorted(p.name for p in BACKENDS.iterdir() if (p / "__init__.py").exists())
MAX_CLASS_LINES = 400


def _modules(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module name imported anywhere in the file (functions and TYPE_CHECKING included),
    and every name given to importlib.import_module / __import__."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                out.append((node.lineno, node.args[0].value))
    return out


def test_backend_packages_are_found() -> None:
    assert {"einsumcc_triton", "einsumcc_sim", "einsumcc_fusemax"} <= set(BACKEND_PACKAGES)


def test_core_never_imports_a_backend() -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in _modules(CORE)
        for line, name in _imported(ast.parse(path.read_text("utf-8")))
        if name.split(".")[0] in BACKEND_PACKAGES
    ]
    assert offences == []


def test_the_import_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    code = "def f():\n    from einsumcc_sim.engine import Engine\n    import einsumcc_triton\n"
    names = [n for _, n in _imported(ast.parse(code))]
    assert names == ["einsumcc_sim.engine", "einsumcc_triton"]


def test_backends_are_registered_as_entry_points() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    group = meta["project"]["entry-points"]["einsumcc.backends"]
    assert {"triton", "sim"} <= set(group)
    for value in group.values():
        assert value.split(".")[0] in BACKEND_PACKAGES


@pytest.mark.parametrize("root", [CORE, BACKENDS], ids=["einsumcc", "backends"])
def test_no_class_over_400_lines(root: Path) -> None:
    big = []
    for path in _modules(root):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                n = node.end_lineno - node.lineno + 1
                if n > MAX_CLASS_LINES:
                    big.append(f"{path.relative_to(ROOT)}: {node.name} has {n} lines")
    assert big == []


def test_complexity_is_linted() -> None:
    """ruff's C90 (max-complexity 15) is on, so ``ruff check .`` in CI enforces it."""
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["ruff"]["lint"]
    assert "C90" in lint["select"]
    assert lint["mccabe"]["max-complexity"] == 15
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "C901", "einsumcc", "backends"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout


# The syntax tree mirrors the IR's expression nodes: the same construct before and after the
# checker, always written module-qualified in the front end (``s.Access`` vs ``Access``).
SYNTAX_MIRRORS = {"Access", "Call", "Reduce", "Neg"}


def _is_protocol(node: ast.ClassDef) -> bool:
    """An interface (``class SimReport(Protocol)``) that its implementation may share."""
    return any(isinstance(b, ast.Name) and b.id == "Protocol" for b in node.bases)


def test_one_name_one_class() -> None:
    """A public class name means one thing across the code base."""
    seen: dict[str, list[str]] = defaultdict(list)
    for root in (CORE, BACKENDS):
        for path in _modules(root):
            rel = str(path.relative_to(ROOT))
            for node in ast.parse(path.read_text("utf-8")).body:
                if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                    continue
                if _is_protocol(node):
                    continue
                if rel == "einsumcc/frontend/syntax.py" and node.name in SYNTAX_MIRRORS:
                    continue
                seen[node.name].append(rel)
    assert {k: v for k, v in seen.items() if len(v) > 1} == {}
