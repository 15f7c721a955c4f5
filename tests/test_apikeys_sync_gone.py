"""The API key sync follows Plugipay: a record it no longer lists is marked
gone (shown as such, never "active"), and un-marked if it comes back."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from pluginlab_django import sync
from pluginlab_django.models import ApiKey
from pluginlab_django.services import apikeys as apikey_service
from pluginlab_django.sync.apikeys import mark_unlisted_api_keys_gone

pytestmark = pytest.mark.django_db


def test_a_record_plugipay_no_longer_lists_is_marked_gone(sandbox, capsys):
    key = apikey_service.create_api_key(description="vanishing").record
    with sandbox.plugipay.lock:
        record = sandbox.plugipay.records.pop(key.record_id)
    run = sync.sync_api_keys()
    assert run.marked_deleted == 1
    key.refresh_from_db()
    assert key.gone_at is not None and key.state == "gone" and not key.is_active
    assert key.pk not in ApiKey.objects.active().values_list("pk", flat=True)
    assert sync.sync_api_keys().marked_deleted == 0  # marked once

    call_command("pluginlab_apikeys", "list", "--json")
    (row,) = [k for k in json.loads(capsys.readouterr().out) if k["id"] == key.record_id]
    assert row["state"] == "gone"

    with sandbox.plugipay.lock:
        sandbox.plugipay.records[key.record_id] = record
    sync.sync_api_keys()
    key.refresh_from_db()
    assert key.gone_at is None and key.state == "active"


def test_an_empty_list_marks_nothing(sandbox):
    sync.sync_api_keys()
    assert mark_unlisted_api_keys_gone(set()) == 0
    assert not ApiKey.objects.filter(gone_at__isnull=False).exists()


def test_a_failed_list_marks_nothing(sandbox):
    sync.sync_api_keys()
    sandbox.set_faults(drop_rate=1.0, path_prefix="/plugipay")
    assert sync.sync_api_keys().status == "failed"
    assert not ApiKey.objects.filter(gone_at__isnull=False).exists()
