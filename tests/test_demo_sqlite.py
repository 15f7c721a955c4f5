"""The demo's SQLite options follow the Django version: ``transaction_mode``
and ``init_command`` only from Django 5.1 (4.2 passes OPTIONS to
``sqlite3.connect``, which refuses them with a TypeError)."""

from __future__ import annotations

import importlib
import sqlite3
import sys

import django
import pytest

pytestmark = pytest.mark.no_db


def demo_options(monkeypatch, version) -> dict:
    monkeypatch.setattr(django, "VERSION", version)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    sys.modules.pop("demo_project.settings", None)
    try:
        module = importlib.import_module("demo_project.settings")
    finally:
        sys.modules.pop("demo_project.settings", None)
    return module.DATABASES["default"]["OPTIONS"]


def test_django_42_gets_only_what_sqlite3_connect_accepts(monkeypatch, tmp_path):
    options = demo_options(monkeypatch, (4, 2, 16, "final", 0))
    assert options == {"timeout": 20}
    sqlite3.connect(str(tmp_path / "db.sqlite3"), **options).close()  # no TypeError


@pytest.mark.parametrize("version", [(5, 1, 0, "final", 0), (5, 2, 0, "final", 0)])
def test_django_51_and_later_get_wal_and_immediate_transactions(monkeypatch, version):
    options = demo_options(monkeypatch, version)
    assert options["timeout"] == 20
    assert options["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in options["init_command"]
