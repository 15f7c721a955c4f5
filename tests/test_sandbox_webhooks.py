"""The sandbox's webhook deliveries (§1.6): signed over the raw body, none without a URL.

Raw HTTP with ``requests``, no project client: these files check the sandbox
itself against ``wire-protocol.md``, so a mistake cannot hide in the sandbox
and the clients at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import requests

from tests.sandbox_support import (
    first_member_with,
    members_url,
)

pytestmark = pytest.mark.no_db

# Webhooks (§1.6) ------------------------------------------------------------

WEBHOOK_HEADERS = (
    "X-PluginLab-Signature",
    "X-PluginLab-Event",
    "X-PluginLab-Delivery-Id",
    "X-PluginLab-Hook-Id",
    "X-PluginLab-Plugin-Id",
    "X-PluginLab-Signature-Version",
    "X-PluginLab-Signature-Algorithm",
    "X-PluginLab-Timestamp",
    "X-Powered-By",
)


def test_webhook_deliveries_are_signed_over_the_raw_body(sandbox, admin_http, webhook_receiver):
    requests.post(
        f"{sandbox.url}/_sandbox/webhook-url", json={"url": webhook_receiver.url}, timeout=10
    )
    created = admin_http.post(
        members_url(sandbox), json={"email": "hook@example.com", "password": "p"}
    )
    member_id = created.json()["id"]
    admin_http.patch(members_url(sandbox, f"/members/{member_id}"), json={"name": "Hook"})
    google_id = first_member_with(sandbox, "google")
    admin_http.post(members_url(sandbox, f"/members/{google_id}/identities/google/refresh"))
    admin_http.delete(members_url(sandbox, f"/members/{member_id}"))

    records = sandbox.wait_for_deliveries(4)

    assert [(r["event"], r["status_code"], r["ok"]) for r in records] == [
        ("member.created", 200, True),
        ("member.updated", 200, True),
        ("identity.refreshed", 200, True),
        ("member.deleted", 200, True),
    ]
    assert len(webhook_receiver.received) == 4
    for (headers, body), record in zip(webhook_receiver.received, records, strict=True):
        assert set(WEBHOOK_HEADERS) <= set(headers), "header names exactly as documented"
        expected = hmac.new(sandbox.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-PluginLab-Signature"] == expected
        assert headers["X-PluginLab-Signature-Version"] == "1"
        assert headers["X-PluginLab-Signature-Algorithm"] == "sha256"
        assert headers["X-PluginLab-Plugin-Id"] == sandbox.plugin_id
        assert int(headers["X-PluginLab-Timestamp"]) >= 10**11, "milliseconds"
        payload = json.loads(body)
        assert payload["event"] == headers["X-PluginLab-Event"] == record["event"]
        assert payload["deliveryId"] == headers["X-PluginLab-Delivery-Id"]
        assert payload["data"]["member"]["id"] == record["member_id"]
    assert [json.loads(body)["data"]["member"]["id"] for _, body in webhook_receiver.received] == [
        member_id,
        member_id,
        google_id,
        member_id,
    ]


def test_no_webhook_url_means_no_delivery(sandbox, admin_http, webhook_receiver):
    sandbox.set_webhook_url(webhook_receiver.url)
    sandbox.set_webhook_url(None)
    admin_http.post(members_url(sandbox), json={"email": "quiet@example.com", "password": "p"})
    sandbox.set_webhook_url(webhook_receiver.url)
    admin_http.patch(
        members_url(sandbox, f"/members/{sandbox.member_ids()[0]}"), json={"name": "N"}
    )
    assert [r["event"] for r in sandbox.wait_for_deliveries(1)] == ["member.updated"]
    assert len(webhook_receiver.received) == 1
