"""The ``no_db`` marker, and the guard that keeps it honest.

A test marked ``no_db`` (usually per module: ``pytestmark = pytest.mark.no_db``)
says its outcome does not depend on the database backend: pure sandbox, wire,
client, token, packaging and docs tests. ``make test-postgres`` deselects them,
since on PostgreSQL they would only repeat what the SQLite leg has just run.

Deselecting is only safe if the marker is true, so a marked test FAILS when:

- it asks for a database: the ``django_db`` marker or a fixture that sets one
  up (``db``, ``transactional_db``, ``live_server``, ...): an error at
  collection, before anything runs;
- it (or one of its function-scoped fixtures, or a thread it starts) opens a
  connection or a cursor on any database alias: reported at the end of the
  test even when the test swallowed pytest-django's "Database access not
  allowed" error or unblocked the database itself;
- a subprocess it starts would use ``DATABASE_URL``: during the test that
  variable names a PostgreSQL server where nothing listens, so such a child
  fails to connect instead of quietly passing against SQLite or PostgreSQL.
  (Children with a database of their own, like the demo's, strip the
  variable and are unaffected.)
"""

from __future__ import annotations

import sysconfig
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

MARKER = "no_db"
TOUCHES = pytest.StashKey["DatabaseTouches"]()

# The fixtures through which pytest-django gives a test a database.
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
    }
)

# Port 9 (discard) on loopback: a connection is refused at once.
UNREACHABLE_DATABASE_URL = "postgres://a-no_db-test-used-the-database@127.0.0.1:9/no_db"

# Where a touch came from: the innermost frames outside Python and its packages.
LIBRARY_DIRS = tuple({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], __file__})


def database_request(item: pytest.Item) -> str | None:
    """Why ``item`` asks for a database, or None when it does not."""
    if item.get_closest_marker("django_db") is not None:
        return "the django_db marker"
    fixtures = DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if fixtures:
        return "the fixture " + ", ".join(sorted(fixtures))
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    contradictions = [
        f"{item.nodeid}: marked no_db but asks for a database ({reason})"
        for item in items
        if item.get_closest_marker(MARKER) is not None
        and (reason := database_request(item)) is not None
    ]
    if contradictions:
        raise pytest.UsageError("\n".join(contradictions))


class DatabaseTouches:
    """Records every connection or cursor opened while installed, in any thread.

    It wraps ``connect`` (a new connection) and ``_cursor`` (every cursor, the
    ORM's included) on Django's base wrapper class; pytest-django's blocker
    swaps ``ensure_connection``, which this leaves alone.
    """

    def __init__(self) -> None:
        self.touches: list[str] = []
        self.reported = 0
        self._lock = threading.Lock()
        self._monkeypatch = pytest.MonkeyPatch()

    def record(self, alias: str) -> None:
        where = [
            f"{Path(frame.filename).name}:{frame.lineno}"
            for frame in traceback.extract_stack()[:-2]
            if not frame.filename.startswith((*LIBRARY_DIRS, "<"))
        ]
        with self._lock:
            self.touches.append(f"database {alias!r} from {' > '.join(where[-3:]) or '?'}")

    def install(self) -> None:
        from django.db.backends.base.base import BaseDatabaseWrapper

        recorder = self
        for name in ("connect", "_cursor"):
            original = getattr(BaseDatabaseWrapper, name)

            def wrapper(connection, *args, _original=original, **kwargs):
                recorder.record(connection.alias)
                return _original(connection, *args, **kwargs)

            self._monkeypatch.setattr(BaseDatabaseWrapper, name, wrapper)
        self._monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DATABASE_URL)

    def uninstall(self) -> None:
        self._monkeypatch.undo()

    def unreported(self, item: pytest.Item) -> str | None:
        """The failure message for touches not reported yet, or None."""
        with self._lock:
            new, self.reported = self.touches[self.reported :], len(self.touches)
        if not new:
            return None
        return f"{item.nodeid} is marked no_db but touched the database: " + "; ".join(
            dict.fromkeys(new)
        )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Install before any fixture of the test is set up."""
    if item.get_closest_marker(MARKER) is not None:
        touches = item.stash[TOUCHES] = DatabaseTouches()
        touches.install()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Iterator[pytest.TestReport]:
    """A touch during set-up or the test itself fails the test (not only its teardown)."""
    report = yield
    touches = item.stash.get(TOUCHES, None)
    if touches is not None and report.when == "call":
        message = touches.unreported(item)
        if message and report.passed:
            report.outcome = "failed"
            report.longrepr = message
        elif message:
            report.sections.append(("no_db guard", message))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Uninstall after the test's fixtures are torn down; a touch there is an error."""
    try:
        return (yield)
    finally:
        touches = item.stash.get(TOUCHES, None)
        if touches is not None:
            del item.stash[TOUCHES]
            touches.uninstall()
            message = touches.unreported(item)
            if message:
                pytest.fail(message, pytrace=False)
