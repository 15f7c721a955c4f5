"""The ``no_db`` marker cannot lie: tests/no_db.py fails a marked test that
touches the database, however it does so. Each case runs in a child pytest
on its own SQLite file, so nothing here reaches the suite's database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_db

ROOT = Path(__file__).resolve().parent.parent

INI = """\
[pytest]
DJANGO_SETTINGS_MODULE = tests.settings
addopts = -p tests.no_db -p no:cacheprovider --strict-markers
markers =
    no_db: never touches the database
"""

CASES = '''\
import subprocess
import sys

import pytest
from django.db import connection


@pytest.mark.no_db
def test_clean():
    assert connection.vendor == "sqlite"  # reading settings is not a query


@pytest.mark.no_db
def test_unblocked_query(django_db_blocker):
    with django_db_blocker.unblock():
        connection.cursor().execute("SELECT 1")


@pytest.mark.no_db
def test_swallowed_blocker_error():
    try:
        connection.cursor()
    except RuntimeError:
        pass


@pytest.mark.no_db
def test_query_from_a_fixture(django_db_blocker, query_in_fixture):
    pass


@pytest.fixture
def query_in_fixture(django_db_blocker):
    with django_db_blocker.unblock():
        connection.cursor().execute("SELECT 1")


@pytest.mark.no_db
def test_child_process_using_database_url():
    child = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=False
    )
    assert child.returncode == 0, child.stderr[-300:]


CHILD = """
import os
import django
from django.db import connection
django.setup()
connection.ensure_connection()
"""
'''


def run_child_pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_cases.py").write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        PYTHONPATH=str(ROOT),
        PLUGINLAB_TEST_SQLITE=str(tmp_path / "child.sqlite3"),
        # The child's child (CASES' CHILD) reads DATABASE_URL, as tests/settings.py does.
        DJANGO_SETTINGS_MODULE="tests.settings",
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def outcomes(output: str) -> dict[str, str]:
    """test name -> PASSED / FAILED / ERROR, from ``-rA``'s short summary."""
    return dict(
        (name, state)
        for state, name in re.findall(r"^(PASSED|FAILED|ERROR) test_cases\.py::(\w+)", output, re.M)
    )


def test_a_marked_test_that_touches_the_database_fails_however_it_does(tmp_path):
    result = run_child_pytest(tmp_path, CASES)
    output = result.stdout + result.stderr
    assert outcomes(output) == {
        "test_clean": "PASSED",
        "test_unblocked_query": "FAILED",
        "test_swallowed_blocker_error": "FAILED",
        "test_query_from_a_fixture": "FAILED",
        "test_child_process_using_database_url": "FAILED",
    }, output
    assert "test_unblocked_query is marked no_db but touched the database" in output
    assert "database 'default' from test_cases.py:" in output  # says where
    assert "a-no_db-test-used-the-database" in output or "port 9 failed" in output
    assert result.returncode == 1


def test_a_marked_test_that_asks_for_a_database_is_refused_at_collection(tmp_path):
    source = """\
        import pytest

        @pytest.mark.no_db
        def test_with_db(db):
            pass

        @pytest.mark.no_db
        @pytest.mark.django_db
        def test_with_marker():
            pass
        """
    result = run_child_pytest(tmp_path, source)
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "test_with_db: marked no_db but asks for a database (the fixture db)" in output
    assert "test_with_marker: marked no_db but asks for a database (the django_db marker)" in output
    assert " passed" not in output  # nothing ran
