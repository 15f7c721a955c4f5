"""Shared pytest configuration: the sandbox fixtures (``pluginlab_sandbox``,
``sandbox``) and a recording webhook endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhook_receiver import WebhookReceiver

pytest_plugins = ["pluginlab_django.testing.pytest_plugin"]


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver
