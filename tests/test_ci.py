"""CI runs exactly the README's test command."""

from __future__ import annotations

from tests.conftest import ROOT


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text().splitlines()
    marker = readme.index("# 2. install and run the tests")
    command = readme[marker + 1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci
    assert "pytest" in command
    # exactly two set-up commands open the README, in one block
    block = readme[readme.index("```bash") + 1 : readme.index("```", readme.index("```bash") + 1)]
    commands = [x for x in block if x and not x.startswith("#")]
    assert len(commands) == 2
