"""End to end: the sandbox sends real signed deliveries to a live test server.

A member is changed through the sandbox's API (or our PluginLab client, or
our member service), the sandbox POSTs the signed delivery to
``live_server`` + ``reverse("pluginlab:webhook")``, the receiver stores it,
Celery (eager, tests/settings.py) processes it, and the mirror follows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from pluginlab_django import signals
from pluginlab_django.models import Member, WebhookDelivery
from pluginlab_django.services import webhooks as webhook_service

pytestmark = pytest.mark.django_db(transaction=True)

Status = WebhookDelivery.Status


@pytest.fixture(autouse=True)
def _eager(celery_eager):
    """Every test here runs tasks in-process."""


@pytest.fixture
def sb(sandbox, live_server):
    """The sandbox delivering webhooks to this test's live server."""
    sandbox.set_webhook_url(live_server.url + reverse("pluginlab:webhook"))
    try:
        yield sandbox
    finally:
        sandbox.set_webhook_url(None)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll until ``condition()`` is truthy: deliveries may be sent asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def delivery_status(entry: dict) -> int | None:
    status = entry.get("status", entry.get("statusCode"))
    return int(status) if status is not None else None


def delivered(sb, event: str, member_id: str, after: int = 0) -> list[dict]:
    """The sandbox's attempted deliveries of ``event`` (answered) since ``after``."""
    return [
        d
        for d in sb.deliveries()[after:]
        if d.get("event") == event and delivery_status(d) is not None and member_id in str(d)
    ]


def processed(event: str, member_id: str) -> list[WebhookDelivery]:
    return [
        d
        for d in WebhookDelivery.objects.filter(event=event)
        if webhook_service.member_id_from_payload(_payload(d)) == member_id
        and d.status in (Status.PROCESSED, Status.FAILED, Status.IGNORED)
    ]


def _payload(delivery: WebhookDelivery) -> dict:
    import json

    return json.loads(delivery.body)


class TestMirrorFollows:
    def test_update_through_the_sandbox_api_creates_then_updates_the_row(self, sb):
        member_id = sb.member_ids()[0]
        assert not Member.objects.filter(remote_id=member_id).exists()

        sb.update_member(member_id, name="Ada Webhook")
        wait_for(lambda: processed("member.updated", member_id), "member.updated processed")
        row = Member.objects.get(remote_id=member_id)
        assert row.name == "Ada Webhook"

        sb.update_member(member_id, name="Ada Renamed", givenName="Ada")
        wait_for(
            lambda: Member.objects.get(remote_id=member_id).name == "Ada Renamed",
            "second update mirrored",
        )
        row.refresh_from_db()
        assert row.given_name == "Ada"
        assert row.remote_updated_at_ms == sb.get_member(member_id)["updatedAtMs"]

        answered = wait_for(
            lambda: delivered(sb, "member.updated", member_id), "sandbox saw answers"
        )
        assert all(200 <= delivery_status(d) < 300 for d in answered)
        stored = WebhookDelivery.objects.filter(event="member.updated")
        assert stored.count() == 2
        assert set(stored.values_list("status", flat=True)) == {Status.PROCESSED}
        assert all(d.attempts == 1 for d in stored)

    def test_update_through_the_pluginlab_client(self, sb):
        from pluginlab_django.clients import get_pluginlab_client

        member_id = sb.member_ids()[1]
        get_pluginlab_client().update_member(member_id, family_name="Lovelace-Client")
        wait_for(
            lambda: Member.objects.filter(
                remote_id=member_id, family_name="Lovelace-Client"
            ).exists(),
            "client update mirrored",
        )
        wait_for(lambda: processed("member.updated", member_id), "member.updated processed")

    def test_created_member_is_mirrored(self, sb):
        from pluginlab_django.clients import get_pluginlab_client

        created = get_pluginlab_client().create_member(
            "webhook-created@example.com", "a-long-password-1", is_verified=True
        )
        wait_for(
            lambda: Member.objects.filter(remote_id=created.id).exists(), "created member mirrored"
        )
        row = Member.objects.get(remote_id=created.id)
        assert row.email == "webhook-created@example.com"
        assert row.is_verified is True
        wait_for(lambda: processed("member.created", created.id), "member.created processed")

    def test_deleted_member_is_marked_not_dropped(self, sb):
        from pluginlab_django import sync

        member_id = sb.member_ids()[2]
        sync.sync_member(member_id)
        assert Member.objects.get(remote_id=member_id).deleted_remotely_at is None

        sb.delete_member(member_id)
        wait_for(
            lambda: Member.objects.get(remote_id=member_id).deleted_remotely_at,
            "member marked deleted",
        )
        # The row is marked before the delivery's outcome is recorded.
        delivery = wait_for(lambda: processed("member.deleted", member_id), "delivery processed")
        assert delivery[0].status == Status.PROCESSED

    def test_update_through_the_member_service(self, sb):
        """The admin's edit path (services.members) triggers a delivery too."""
        from pluginlab_django import sync
        from pluginlab_django.services import members as member_service

        member_id = sb.member_ids()[3]
        row = sync.sync_member(member_id)
        member_service.update_member(row, {"name": "Edited In Admin"})
        wait_for(lambda: processed("member.updated", member_id), "service edit delivered")
        assert Member.objects.get(remote_id=member_id).name == "Edited In Admin"


class TestFailuresAndSecrets:
    def test_raising_handler_leaves_it_failed_reprocess_fixes_it(self, sb):
        member_id = sb.member_ids()[4]
        calls = []

        def broken(sender, **kwargs):
            calls.append(kwargs["delivery"].delivery_id)
            raise RuntimeError("site handler bug")

        hook = signals.webhook_event("member.updated")
        hook.connect(broken, dispatch_uid="e2e-broken")
        try:
            sb.update_member(member_id, name="Never Lost")
            failed = wait_for(lambda: processed("member.updated", member_id), "failed delivery")
        finally:
            hook.disconnect(dispatch_uid="e2e-broken")

        delivery = failed[0]
        assert delivery.status == Status.FAILED
        assert "site handler bug" in delivery.error
        # The sender still got 2xx: the delivery was stored.
        answered = wait_for(lambda: delivered(sb, "member.updated", member_id), "answer seen")
        assert all(200 <= delivery_status(d) < 300 for d in answered)
        assert not Member.objects.filter(remote_id=member_id, name="Never Lost").exists()

        result = webhook_service.process_delivery(delivery, reprocess=True)
        assert result.outcome == Status.PROCESSED
        assert Member.objects.get(remote_id=member_id).name == "Never Lost"
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (Status.PROCESSED, 2)
        assert len(calls) == 1

    def test_wrong_secret_is_refused_and_not_stored(self, sb, settings):
        settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_SECRET": "not-the-sandbox-secret"}
        member_id = sb.member_ids()[5]
        before = len(sb.deliveries())
        sb.update_member(member_id, name="Forged?")
        answered = wait_for(
            lambda: delivered(sb, "member.updated", member_id, before), "refused delivery answered"
        )
        assert {delivery_status(d) for d in answered} == {400}
        assert not WebhookDelivery.objects.exists()
        assert not Member.objects.filter(remote_id=member_id).exists()
