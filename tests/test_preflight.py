"""``make test``'s preflight names every missing component in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_db

ROOT = Path(__file__).resolve().parent.parent


def run_preflight(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "preflight.py"), "--no-install"],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        check=False,
    )


def test_components_hidden_from_path_are_named_in_one_install_line(tmp_path):
    result = run_preflight(str(tmp_path))  # an empty PATH: no redis-server, no chromium
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Redis server" in lines[0] and "Chromium" in lines[0]
    assert "apt-get install -y --no-install-recommends" in lines[0]
    assert "redis-server" in lines[0] and " chromium" in lines[0]
    assert result.stdout == ""  # nothing ran, nothing installed


def test_nothing_missing_passes_silently():
    result = run_preflight(os.environ["PATH"])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_make_test_runs_the_preflight_first():
    makefile = (ROOT / "Makefile").read_text()
    test_rule = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert test_rule.split(":", 1)[1].split()[0] == "preflight"
