"""Fixtures several test files share (a pytest plugin ``conftest.py`` loads),
kept here rather than copied into each file."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from tests.sandbox_support import AdminSession
from tests.webhook_deliveries import SECRET, OnCommitClient


@pytest.fixture
def admin_http(sandbox) -> Iterator[requests.Session]:
    """A ``requests`` session with the sandbox's admin headers and a timeout."""
    with AdminSession(sandbox) as session:
        yield session


@pytest.fixture
def webhook_client() -> OnCommitClient:
    """A Django test client under which the receiver's on-commit work (queueing
    the processing task) runs, as it would after a real commit."""
    return OnCommitClient()


@pytest.fixture
def webhook_secret(settings) -> str:
    """``WEBHOOK_SECRET`` set to the secret ``tests.webhook_deliveries`` signs with."""
    settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_SECRET": SECRET}
    return SECRET


@pytest.fixture
def celery_conf():
    """The default Celery app's configuration (no broker, not eager), restored afterwards."""
    from celery import current_app

    conf = current_app.conf
    keys = ("broker_url", "broker_write_url", "task_always_eager", "task_eager_propagates")
    saved = {key: conf[key] for key in keys}
    conf.update(broker_url=None, broker_write_url=None, task_always_eager=False)
    yield conf
    conf.update(saved)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A throwaway Redis for a real Celery worker. Without ``redis-server`` the
    test is skipped, except under ``CI``, where it fails."""
    from tests.throwaway_servers import ServiceError, redis_server

    try:
        with redis_server() as url:
            yield url
    except ServiceError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a real Redis for the Celery worker test: {exc}")
        pytest.skip(str(exc))
