"""pytest fixtures: one sandbox per session, reset and wired in per test.

Load with ``pytest_plugins = ["pluginlab_django.testing.pytest_plugin"]``.
``sandbox`` needs pytest-django (its ``settings`` fixture restores
``settings.PLUGINLAB`` after each test).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .sandbox import Sandbox

if TYPE_CHECKING:
    from pytest_django import Settings


@pytest.fixture(scope="session")
def pluginlab_sandbox() -> Iterator[Sandbox]:
    """A running sandbox shared by the session (50 members, seed 1)."""
    with Sandbox(members=50, seed=1) as sb:
        yield sb


@pytest.fixture
def sandbox(pluginlab_sandbox: Sandbox, settings: Settings) -> Iterator[Sandbox]:
    """The session sandbox, freshly reset, with ``settings.PLUGINLAB`` pointing at it.

    Keeps the rest of the test settings (FIELD_ENCRYPTION_KEYS, fast RETRY_*)
    and clears every cache, since a JWKS from an earlier test may sit there.
    """
    from django.core.cache import caches

    sb = pluginlab_sandbox
    sb.reset()
    for alias in caches:
        caches[alias].clear()
    settings.PLUGINLAB = {**getattr(settings, "PLUGINLAB", {}), **sb.pluginlab_settings()}
    try:
        yield sb
    finally:
        sb.clear_faults()
        sb.set_webhook_url(None)
        sb.set_cert_down(False)
