"""Fixtures several test files share (a pytest plugin ``conftest.py`` loads),
kept here rather than copied into each file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.sandbox_support import AdminSession


@pytest.fixture
def admin_http(sandbox) -> Iterator[requests.Session]:
    """A ``requests`` session with the sandbox's admin headers and a timeout."""
    with AdminSession(sandbox) as session:
        yield session
