"""Golden files: compare text with tests/golden/..., show a diff, --update-golden rewrites."""

from __future__ import annotations

import difflib
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"


def assert_golden(actual: str, relpath: str, *, update: bool) -> None:
    path = GOLDEN / relpath
    if update or not path.exists():
        if not update:
            raise AssertionError(f"missing golden file {path}; run pytest --update-golden")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    expected = path.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=str(path),
                tofile="actual",
            )
        )
        raise AssertionError(f"output differs from {path}:\n{diff}")
