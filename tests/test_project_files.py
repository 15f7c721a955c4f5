"""The project's own files agree with each other: one version, one list of
runtime requirements, a settings table that matches the defaults, a licence
and a changelog that exist."""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import pytest

from pluginlab_django import __version__
from pluginlab_django.conf import DEFAULTS

pytestmark = pytest.mark.no_db

ROOT = Path(__file__).resolve().parent.parent


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def requirement_lines(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("-r")]


def test_requirements_base_is_exactly_install_requires():
    install_requires = requirement_lines(setup_cfg()["options"]["install_requires"])
    base = requirement_lines((ROOT / "requirements" / "base.txt").read_text())
    assert base == install_requires


def test_the_version_is_written_once():
    assert setup_cfg()["metadata"]["version"] == "attr: pluginlab_django.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_licence_and_changelog():
    assert setup_cfg()["metadata"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in changelog
    assert "## [Unreleased]" in changelog
    assert f"## [{__version__}]" in changelog


def test_the_package_ships_py_typed():
    assert (ROOT / "pluginlab_django" / "py.typed").exists()
    assert "py.typed" in setup_cfg()["options.package_data"]["pluginlab_django"]


def readme_settings_table() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Settings reference", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"^\| `([A-Z][A-Z0-9_]*)` \| (.*?) \| (.+) \|$", line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} is listed twice"
            rows[match.group(1)] = match.group(2)
    return rows


def test_the_readme_settings_table_lists_every_key_once():
    assert sorted(readme_settings_table()) == sorted(DEFAULTS)


def test_the_readme_settings_table_shows_the_real_defaults():
    for key, cell in readme_settings_table().items():
        shown = cell.strip().strip("`")
        try:
            value = ast.literal_eval(shown)
        except (ValueError, SyntaxError):
            # An expression such as ``1024 * 1024``.
            value = eval(compile(ast.parse(shown, mode="eval"), key, "eval"), {})
        assert value == DEFAULTS[key], f"README says {key} defaults to {shown}"
