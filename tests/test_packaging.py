"""The distribution builds, installs into a fresh venv, imports, and a site
without settings is told clearly what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_db

ROOT = Path(__file__).resolve().parent.parent


def run(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd or ROOT, env=env, capture_output=True, text=True, check=False
    )


def test_check_reports_missing_settings_clearly(tmp_path):
    settings = tmp_path / "bare_settings.py"
    settings.write_text(
        "SECRET_KEY = 'x'\nINSTALLED_APPS = ['django.contrib.contenttypes', "
        "'django.contrib.auth', 'pluginlab_django']\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}}\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "DJANGO_SETTINGS_MODULE": "bare_settings",
    }
    result = run(sys.executable, "-m", "django", "check", env=env)
    assert result.returncode != 0
    assert "pluginlab.E001" in result.stderr and "PLUGIN_ID" in result.stderr
    assert "pluginlab.E002" in result.stderr and "ADMIN_SECRET" in result.stderr


@pytest.mark.slow
def test_wheel_builds_installs_and_imports(tmp_path):
    dist = tmp_path / "dist"
    built = run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist))
    assert built.returncode == 0, built.stderr[-2000:]
    wheels = list(dist.glob("django_pluginlab-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "pluginlab_django/migrations/0001_initial.py" in names
    # PEP 561: without it users' type checkers ignore the package's annotations.
    assert "pluginlab_django/py.typed" in names
    assert any(name.startswith("pluginlab_django/templates/") for name in names)
    assert not any(name.startswith(("tests/", "demo_project/")) for name in names)
    target = tmp_path / "venv"
    venv.create(target, with_pip=False, system_site_packages=True)
    python = target / "bin" / "python"
    installed = run(
        str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(wheels[0]), cwd=tmp_path
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    imported = run(
        str(python), "-c", "import pluginlab_django; print(pluginlab_django.__file__)", cwd=tmp_path
    )
    assert imported.returncode == 0, imported.stderr
    assert str(target) in imported.stdout  # the installed copy, not the checkout


@pytest.mark.slow
def test_wheel_build_prints_no_package_would_be_ignored_warning(tmp_path):
    """templates/ and static/ are data directories: setuptools must find them
    (namespace discovery) instead of warning that they "would be ignored"."""
    built = run(
        sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)
    )
    assert built.returncode == 0, built.stderr[-2000:]
    output = built.stdout + built.stderr
    assert "would be ignored" not in output
    assert "is absent from the `packages` configuration" not in output
    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    assert "pluginlab_django/static/pluginlab_django/admin.css" in names
    assert "pluginlab_django/templates/admin/pluginlab_django/dashboard.html" in names
    assert not any("__pycache__" in name for name in names)
