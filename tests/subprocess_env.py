"""The environment a subprocess the tests start needs to share their database.

- PostgreSQL (``DATABASE_URL`` set): ``DATABASE_URL`` pointing at
  pytest-django's test database (``test_…``) on the same server;
- SQLite in a file (tests/settings.py's default): the same file.

``tests/settings.py`` applies ``PLUGINLAB_TEST_SETTINGS`` (JSON) as
``PLUGINLAB``, so the subprocess talks to the test's sandbox too.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.db import connection


def database_env() -> dict[str, str]:
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "postgresql":
        parts = urlsplit(os.environ["DATABASE_URL"])
        return {"DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}"))}
    if connection.vendor == "sqlite":
        if name == ":memory:" or "mode=memory" in name:
            raise AssertionError("an in-memory SQLite database cannot be shared with a subprocess")
        return {"PLUGINLAB_TEST_SQLITE": name}
    raise AssertionError(f"no subprocess database set-up for {connection.vendor}")


def subprocess_env(pluginlab: dict[str, Any]) -> dict[str, str]:
    """``os.environ`` plus the test database and ``PLUGINLAB`` settings."""
    return {
        **os.environ,
        **database_env(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PLUGINLAB_TEST_SETTINGS": json.dumps(pluginlab),
        "PYTHONUNBUFFERED": "1",
    }
