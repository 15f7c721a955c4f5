"""The README's first two commands are the ones that exist and do the job."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def first_commands(text: str, count: int = 2) -> list[str]:
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert block, "README.md has no code block"
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line][:count]


def make_targets() -> set[str]:
    out = subprocess.run(
        ["make", "-pRrq", "-f", str(ROOT / "Makefile")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w-]*):", out, re.M)}


def test_readme_opens_with_demo_then_test():
    text = (ROOT / "README.md").read_text()
    assert first_commands(text) == ["make demo", "make test"]


def test_both_commands_are_makefile_targets():
    targets = make_targets()
    assert {"demo", "test"} <= targets


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = first_commands((ROOT / "README.md").read_text())[1]
    assert re.search(rf"^\s*{re.escape(test_command)}\s*$", ci, re.M)
