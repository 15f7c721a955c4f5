"""services.apikeys: durations, rotation names, own-key protection, revoke_due."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pluginlab_django import sync
from pluginlab_django.models import ApiKey
from pluginlab_django.services import apikeys as service
from pluginlab_django.tasks import revoke_due_api_keys_task

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        (" 2h ", timedelta(hours=2)),
    ],
)
def test_durations(text, expected):
    assert service.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "h", "-1h", "1w", "1.5h", "24 hours", "soon"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        service.parse_duration(text)


def test_rotation_description_replaces_an_earlier_suffix_and_fits():
    day = timezone.now().replace(year=2026, month=3, day=4)
    assert service.rotation_description("svc", day) == "svc (rotation 2026-03-04)"
    assert service.rotation_description("svc (rotation 2025-01-01)", day) == (
        "svc (rotation 2026-03-04)"
    )
    assert service.rotation_description("", day) == "(rotation 2026-03-04)"
    assert len(service.rotation_description("x" * 255, day)) <= 255


def test_own_key_is_refused_by_every_path(sandbox):
    sync.sync_api_keys()
    own = ApiKey.objects.get(key_id=sandbox.plugipay_key_id)
    before = len(sandbox.plugipay.records)
    for call in (
        lambda: service.revoke_api_key(own),
        lambda: service.rotate_api_key(own, timedelta(hours=1)),
        lambda: service.rotate_api_key(own),
        lambda: service.schedule_revocation(own, timezone.now()),
    ):
        with pytest.raises(service.OwnKeyProtected, match="mint a successor"):
            call()
    assert len(sandbox.plugipay.records) == before
    assert sandbox.plugipay.records[own.record_id]["revokedAt"] is None


def test_revoke_due_never_revokes_the_own_key_even_if_scheduled(sandbox):
    """A schedule made before the site switched to that key is not carried out."""
    sync.sync_api_keys()
    ApiKey.objects.filter(key_id=sandbox.plugipay_key_id).update(
        revoke_scheduled_at=timezone.now() - timedelta(minutes=1)
    )
    (outcome,) = service.revoke_due()
    assert not outcome.revoked and "own key" in outcome.error
    assert all(not r["revokedAt"] for r in sandbox.plugipay.records.values() if r["scope"] == "*")


def test_the_task_revokes_due_keys_only(sandbox, celery_eager):
    due = service.create_api_key(description="due").record
    later = service.create_api_key(description="later").record
    service.schedule_revocation(due, timezone.now() - timedelta(seconds=1))
    service.schedule_revocation(later, timezone.now() + timedelta(hours=1))
    result = revoke_due_api_keys_task.delay().get()
    assert result == {"revoked": [due.key_id], "failed": {}}
    assert sandbox.plugipay.records[due.record_id]["revokedAt"] is not None
    assert sandbox.plugipay.records[later.record_id]["revokedAt"] is None
    assert revoke_due_api_keys_task.delay().get() == {"revoked": [], "failed": {}}


def test_a_revoked_or_gone_key_cannot_be_scheduled_or_rotated(sandbox):
    key = service.create_api_key(description="x").record
    service.revoke_api_key(key)
    before = len(sandbox.plugipay.records)
    with pytest.raises(service.ApiKeyError, match="revoked"):
        service.rotate_api_key(key, timedelta(hours=1))
    with pytest.raises(service.ApiKeyError, match="revoked"):
        service.schedule_revocation(key, timezone.now())
    assert len(sandbox.plugipay.records) == before
