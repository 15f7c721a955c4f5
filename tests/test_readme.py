"""The README's first two commands are the ones that exist and do the job."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_db

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


# --- The install section and docs/sandbox.md ------------------------------------

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def code_blocks(path: Path, languages: str = "sh|bash|console") -> list[str]:
    return re.findall(rf"```(?:{languages})\n(.*?)```", path.read_text(), re.S)


def manage_commands(text: str) -> list[list[str]]:
    """Each ``python manage.py NAME args`` in shell blocks (continuations joined)."""
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.split("#", 1)[0]
        match = re.search(r"manage\.py\s+(.*)", line)
        if match:
            try:  # quoted arguments ("billing (prod)") are one argument
                found.append(shlex.split(match.group(1)))
            except ValueError:
                found.append(match.group(1).split())
    return found


def test_every_manage_py_command_in_the_docs_exists_with_its_options():
    """Parse each documented command line with the command's own parser."""
    import django
    from django.core.management import get_commands, load_command_class

    django.setup()
    commands = get_commands()
    seen = 0
    for path in DOCS:
        for block in code_blocks(path):
            for argv in manage_commands(block):
                name = argv[0]
                args = [a.strip("[]") for a in argv[1:] if a.strip("[]")]  # [--optional x]
                assert name in commands, f"{path.name}: no command {name!r}"
                command = load_command_class(commands[name], name)
                parser = command.create_parser("manage.py", name)
                placeholders = {"URL": "http://x", "ID": "x", "S": "x"}
                parser.parse_args([placeholders.get(a, a) for a in args])
                seen += 1
    assert seen >= 5


def test_install_section_names_every_setting_after_the_sandbox_line():
    """The snippet reads each key from the env line the sandbox prints."""
    from pluginlab_django.testing import ENV_KEYS

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Installing into an existing site") : text.index("### SQLite")]
    snippet = re.search(r"PLUGINLAB = \{(.*?)\n\}", section, re.S).group(1)
    read = set(re.findall(r'env(?:\.list)?\(\s*"([A-Z_]+)"', snippet))
    assert read == set(ENV_KEYS) - {"PLUGINLAB_DEMO_TOKEN"}
    # No value is required: settings load before the sandbox has printed anything.
    for line in re.findall(r"env(?:\.list)?\([^)]*\)", snippet.replace("\n", " ")):
        assert "default=" in line, line


def test_sandbox_doc_curl_examples_run_against_a_sandbox(tmp_path):
    """docs/sandbox.md's curl block, run by bash with the sandbox's lines loaded."""
    from pluginlab_django.testing import Sandbox

    block = next(b for b in code_blocks(ROOT / "docs" / "sandbox.md") if "curl" in b)
    with Sandbox(members=5, seed=3) as sandbox:
        env_file = tmp_path / ".env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in sandbox.env().items()))
        script = f"set -euo pipefail\nset -a; . {env_file}; set +a\n{block}"
        result = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert '"token"' in result.stdout and "Ada Lovelace" in result.stdout
        assert len(sandbox.member_ids()) == 4  # the delete went through
