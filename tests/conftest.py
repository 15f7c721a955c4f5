"""Shared pytest configuration: the sandbox fixtures (``pluginlab_sandbox``,
``sandbox``) and a recording webhook endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhook_receiver import WebhookReceiver

pytest_plugins = ["pluginlab_django.testing.pytest_plugin", "tests.shared_fixtures", "tests.no_db"]


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def celery_eager() -> Iterator[None]:
    """Run Celery tasks in-process, as tests/settings.py asks
    (CELERY_TASK_ALWAYS_EAGER): the test process has no Celery app configured
    from Django settings, so the default app is set directly."""
    from celery import current_app

    conf = current_app.conf
    saved = (conf.task_always_eager, conf.task_eager_propagates)
    conf.task_always_eager = True
    conf.task_eager_propagates = True
    yield
    conf.task_always_eager, conf.task_eager_propagates = saved


@pytest.fixture
def fresh_verifier() -> Iterator[None]:
    """Start cold: no signing keys in process or in the shared cache, no
    remembered plans; and leave nothing behind."""
    from pluginlab_django import tokens
    from pluginlab_django.services.plans import forget_recorded_plans

    tokens.reset_verifier()
    forget_recorded_plans()
    yield
    tokens.reset_verifier()
