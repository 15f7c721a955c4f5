"""Webhook deliveries as PluginLab sends them, built and signed by hand, and a
test client that runs the receiver's on-commit work: what the webhook tests
share (their fixtures, ``webhook_client`` and ``webhook_secret``, are in
``tests.shared_fixtures``)."""

from __future__ import annotations

import json
import time
import uuid

from django.test import Client, TestCase

from pluginlab_django.models import WebhookDelivery
from pluginlab_django.webhooks import compute_signature

SECRET = "whsec-for-unit-tests"
URL = "/pluginlab/webhook/"


class OnCommitClient(Client):
    """Runs the view's on_commit callbacks (queueing the task) as a real commit would.

    The ``django_db`` tests run inside a transaction that is never committed.
    """

    def request(self, **request):
        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().request(**request)


_NOW = object()


def make_body(
    event="test.unknown",
    delivery_id=None,
    member_id="mem_" + "a" * 40,
    created_at_ms=_NOW,
    **extra,
):
    """A body like the sandbox's; ``created_at_ms=None`` leaves ``createdAtMs`` out."""
    delivery_id = delivery_id or f"dlv_{uuid.uuid4().hex}"
    payload = {
        "event": event,
        "deliveryId": delivery_id,
        "createdAtMs": int(time.time() * 1000) if created_at_ms is _NOW else created_at_ms,
        "data": {"member": {"id": member_id}},
        **extra,
    }
    if payload["createdAtMs"] is None:
        del payload["createdAtMs"]
    return json.dumps(payload, separators=(",", ":")).encode(), delivery_id


def signed_headers(
    body: bytes,
    *,
    secret=SECRET,
    event="test.unknown",
    delivery_id="dlv_1",
    timestamp_ms=None,
    signature=None,
):
    headers = {
        "X-PluginLab-Event": event,
        "X-PluginLab-Delivery-Id": delivery_id,
        "X-PluginLab-Hook-Id": "hook_1",
        "X-PluginLab-Plugin-Id": "plg_tests",
        "X-PluginLab-Signature-Version": "1",
        "X-PluginLab-Signature-Algorithm": "sha256",
        "X-PluginLab-Timestamp": str(
            int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        ),
        "X-Powered-By": "PluginLab",
    }
    sig = compute_signature(body, secret) if signature is None else signature
    if sig:
        headers["X-PluginLab-Signature"] = sig
    return headers


def post(client: Client, body: bytes, headers: dict, **extra):
    return client.post(URL, data=body, content_type="application/json", headers=headers, **extra)


def deliver(client: Client, event="test.unknown", delivery_id=None, **kwargs):
    body, delivery_id = make_body(event, delivery_id)
    return post(client, body, signed_headers(body, event=event, delivery_id=delivery_id, **kwargs))


def stored_delivery(status=WebhookDelivery.Status.RECEIVED, **fields) -> WebhookDelivery:
    body, delivery_id = make_body()
    return WebhookDelivery.objects.create(
        delivery_id=delivery_id, event="test.unknown", body=body.decode(), status=status, **fields
    )


def set_processing(settings, value: str) -> None:
    """``WEBHOOK_PROCESSING`` set to ``value`` for one test."""
    settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_PROCESSING": value}
