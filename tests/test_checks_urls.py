"""``check`` notices when the webhook receiver is not mounted (pluginlab.W020)."""

from __future__ import annotations

import sys
import types

import pytest
from django.core.checks import run_checks

from pluginlab_django.checks import check_webhook_url_mounted

pytestmark = pytest.mark.no_db


def ids(messages) -> set[str]:
    return {m.id for m in messages}


def test_mounted_receiver_passes():
    assert check_webhook_url_mounted() == []
    assert "pluginlab.W020" not in ids(run_checks(include_deployment_checks=False))


def test_unmounted_receiver_warns(settings):
    module = types.ModuleType("tests_urls_without_pluginlab")
    module.urlpatterns = []
    sys.modules[module.__name__] = module
    try:
        settings.ROOT_URLCONF = module.__name__
        messages = check_webhook_url_mounted()
        assert ids(messages) == {"pluginlab.W020"}
        assert "pluginlab_django.urls" in messages[0].hint
        assert "pluginlab.W020" in ids(run_checks())
    finally:
        del sys.modules[module.__name__]
