"""The package type-checks: mypy with django-stubs and djangorestframework-stubs
(the [mypy] section of setup.cfg: every function annotated) finds nothing.

``py.typed`` is what makes users' type checkers read these annotations; that
the wheel ships it is checked with the other wheel contents in
tests/test_packaging.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_db

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # a cold mypy run: about 15 s
def test_mypy_finds_no_error_in_the_package(tmp_path):
    # A cache of its own: a fresh check every time, and nothing left in the checkout.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path), "pluginlab_django"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_the_package_is_marked_typed():
    """The quick check; the wheel test sees it shipped."""
    assert (ROOT / "pluginlab_django" / "py.typed").is_file()
