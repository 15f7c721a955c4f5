"""Webhooks judged by their signed body (issue 10, defects 2 and 6).

Only the body is signed, so whoever holds one delivered body and its
signature (a view-only staff user can read both in the admin) must not be
able to replay it under new delivery ids, relabel its event, or use a signed
``member.deleted`` to delete a member PluginLab still has; and a signed body
nested thousands of levels deep is a 400, not a 500 (nor a debug page).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid

import pytest
import requests
from django.test import override_settings

from pluginlab_django import sync
from pluginlab_django.models import Member, WebhookDelivery
from pluginlab_django.webhooks import MAX_JSON_DEPTH, compute_signature, verify_delivery
from tests.webhook_deliveries import SECRET, URL, make_body, post, signed_headers

Status = WebhookDelivery.Status


@pytest.fixture(autouse=True)
def _eager(celery_eager):
    """Tasks run in-process."""


def member_body(event: str, member: dict, *, delivery_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "event": event,
            "deliveryId": delivery_id or f"dlv_{uuid.uuid4().hex}",
            "createdAtMs": int(time.time() * 1000),
            "data": {"member": member},
        },
        separators=(",", ":"),
    ).encode()


def send(webhook_client, body: bytes, secret: str, **header_overrides: str):
    payload = json.loads(body)
    headers = signed_headers(
        body,
        secret=secret,
        event=payload.get("event", "test.unknown"),
        delivery_id=payload.get("deliveryId", "dlv_header"),
    )
    headers.update(header_overrides)
    return post(webhook_client, body, headers)


# Replays -------------------------------------------------------------------


@pytest.mark.django_db
class TestReplay:
    def test_replay_under_new_delivery_ids_is_refused_and_stored_once(
        self, webhook_client, webhook_secret
    ):
        body, delivery_id = make_body("member.updated")
        assert send(webhook_client, body, SECRET).json()["status"] == "stored"
        for n in range(20):
            response = send(
                webhook_client, body, SECRET, **{"X-PluginLab-Delivery-Id": f"dlv_new_{n}"}
            )
            assert response.status_code == 400
            assert response.json()["code"] == "webhook/header-mismatch"
        assert WebhookDelivery.objects.count() == 1
        assert WebhookDelivery.objects.get().delivery_id == delivery_id

    def test_body_without_a_delivery_id_is_stored_once_whatever_its_headers(
        self, webhook_client, webhook_secret
    ):
        """Dedupe on the digest of the raw body: new header ids change nothing."""
        body = json.dumps({"event": "test.unknown", "data": {"member": {"id": "m1"}}}).encode()
        answers = [
            send(webhook_client, body, SECRET, **{"X-PluginLab-Delivery-Id": f"dlv_{n}"}).json()
            for n in range(20)
        ]
        assert [a["status"] for a in answers] == ["stored"] + ["duplicate"] * 19
        assert {a["deliveryId"] for a in answers} == {"dlv_0"}
        delivery = WebhookDelivery.objects.get()
        assert delivery.body_digest == hashlib.sha256(body).hexdigest()
        assert delivery.attempts == 1

    def test_replay_without_headers_is_a_duplicate(self, webhook_client, webhook_secret):
        body, delivery_id = make_body()
        send(webhook_client, body, SECRET)
        headers = signed_headers(body)
        del headers["X-PluginLab-Delivery-Id"], headers["X-PluginLab-Event"]
        assert post(webhook_client, body, headers).json() == {
            "status": "duplicate",
            "deliveryId": delivery_id,
        }
        assert WebhookDelivery.objects.count() == 1

    def test_old_signed_body_with_a_fresh_timestamp_header_is_stale(
        self, webhook_client, webhook_secret
    ):
        body, _ = make_body(created_at_ms=int(time.time() * 1000) - 3_600_000)
        response = send(webhook_client, body, SECRET)  # X-PluginLab-Timestamp: now
        assert response.status_code == 400
        assert response.json()["code"] == "webhook/stale-timestamp"
        assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_of_one_body_store_one_row(live_server, settings):
    """The digest's unique constraint holds when the replays race."""
    settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_SECRET": SECRET}
    body = json.dumps({"event": "test.unknown", "n": uuid.uuid4().hex}).encode()
    senders = 8
    barrier = threading.Barrier(senders)
    answers: list[tuple[int, str]] = []

    def replay(n: int) -> None:
        headers = {
            **signed_headers(body, delivery_id=f"dlv_race_{n}"),
            "Content-Type": "application/json",
        }
        barrier.wait()
        response = requests.post(live_server.url + URL, data=body, headers=headers, timeout=30)
        answers.append((response.status_code, response.json()["status"]))

    threads = [threading.Thread(target=replay, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == sorted([(200, "stored")] + [(200, "duplicate")] * (senders - 1))
    assert WebhookDelivery.objects.count() == 1


# Relabelling -----------------------------------------------------------------


@pytest.mark.django_db
class TestRelabel:
    def test_relabelled_event_header_is_refused_and_changes_nothing(
        self, webhook_client, sandbox, caplog
    ):
        member_id = sandbox.member_ids()[0]
        row = sync.sync_member(member_id)
        before = Member.objects.filter(pk=row.pk).values().get()
        body = member_body("member.updated", {"id": member_id})
        with caplog.at_level("WARNING", logger="pluginlab_django.webhooks"):
            response = send(
                webhook_client,
                body,
                sandbox.webhook_secret,
                **{"X-PluginLab-Event": "member.deleted"},
            )
        assert response.status_code == 400
        assert response.json()["code"] == "webhook/header-mismatch"
        assert not WebhookDelivery.objects.exists()
        assert Member.objects.filter(pk=row.pk).values().get() == before
        assert "webhook/header-mismatch" in caplog.text
        assert body.decode() not in caplog.text and sandbox.webhook_secret not in caplog.text

    def test_event_from_the_body_when_the_header_is_missing(self, webhook_client, webhook_secret):
        body, delivery_id = make_body("brand.new")
        headers = signed_headers(body, delivery_id=delivery_id)
        del headers["X-PluginLab-Event"]
        assert post(webhook_client, body, headers).status_code == 200
        assert WebhookDelivery.objects.get().event == "brand.new"

    def test_verify_delivery_reads_the_body(self):
        body, delivery_id = make_body("member.updated")
        verified = verify_delivery(
            body, {"X-PluginLab-Signature": compute_signature(body, SECRET)}, SECRET
        )
        assert (verified.event, verified.delivery_id) == ("member.updated", delivery_id)
        assert verified.created_at_ms == json.loads(body)["createdAtMs"]
        assert len(verified.digest) == 64


# Member events are hints --------------------------------------------------------


@pytest.mark.django_db
class TestMemberEventsAskPluginLab:
    def test_signed_member_deleted_for_a_member_pluginlab_still_has(self, webhook_client, sandbox):
        member_id = sandbox.member_ids()[1]
        sync.sync_member(member_id)
        body = member_body("member.deleted", {"id": member_id})
        assert send(webhook_client, body, sandbox.webhook_secret).status_code == 200
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == Status.PROCESSED, delivery.error
        row = Member.objects.get(remote_id=member_id)
        assert row.deleted_remotely_at is None
        assert row.remote_updated_at_ms == sandbox.get_member(member_id)["updatedAtMs"]

    def test_member_deleted_after_pluginlab_deleted_it_marks_the_row(self, webhook_client, sandbox):
        member_id = sandbox.member_ids()[2]
        sync.sync_member(member_id)
        sandbox.set_webhook_url(None)
        sandbox.delete_member(member_id)
        body = member_body("member.deleted", {"id": member_id})
        assert send(webhook_client, body, sandbox.webhook_secret).status_code == 200
        assert Member.objects.get(remote_id=member_id).deleted_remotely_at is not None

    def test_an_old_member_updated_cannot_roll_the_row_back(self, webhook_client, sandbox):
        member_id = sandbox.member_ids()[3]
        old = sandbox.get_member(member_id)
        sandbox.update_member(member_id, name="Current Name")
        sync.sync_member(member_id)
        body = member_body("member.updated", {**old, "name": "Stale Name"})
        assert send(webhook_client, body, sandbox.webhook_secret).status_code == 200
        assert Member.objects.get(remote_id=member_id).name == "Current Name"


# Bodies that are not a JSON object of reasonable depth ----------------------------


@pytest.mark.django_db
class TestDeepBodies:
    @pytest.mark.parametrize("debug", [False, True])
    def test_deeply_nested_body_is_400_never_500(self, webhook_client, webhook_secret, debug):
        body = b'{"event":"x","data":' + b"[" * 1000 + b"]" * 1000 + b"}"
        with override_settings(DEBUG=debug):
            response = post(webhook_client, body, signed_headers(body, event="x"))
        assert response.status_code == 400
        assert response.json()["code"] == "webhook/invalid-body-type"
        assert SECRET not in response.content.decode()
        assert not WebhookDelivery.objects.exists()

    def test_deep_array_at_the_top(self, webhook_client, webhook_secret):
        body = b"[" * 100_000 + b"]" * 100_000
        response = post(webhook_client, body, signed_headers(body))
        assert response.json()["code"] == "webhook/invalid-body-type"

    def test_depth_limit_and_brackets_inside_strings(self, webhook_client, webhook_secret):
        # The object plus MAX_JSON_DEPTH - 1 arrays: exactly at the limit.
        nested = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
        fine = b'{"event":"x","s":"' + b"[" * 5000 + b'\\"","data":' + nested + b"}"
        assert post(webhook_client, fine, signed_headers(fine, event="x")).status_code == 200
        deeper = b'{"event":"y","data":[' + nested + b"]}"
        assert post(webhook_client, deeper, signed_headers(deeper, event="y")).status_code == 400

    def test_depth_limit_without_brackets_in_strings(self, webhook_client, webhook_secret):
        """A body with no more opening brackets than the limit is accepted
        without the depth being measured; one more level is measured and refused."""
        nested = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
        at_limit = b'{"event":"x","data":' + nested + b"}"
        assert at_limit.count(b"[") + at_limit.count(b"{") == MAX_JSON_DEPTH
        assert (
            post(webhook_client, at_limit, signed_headers(at_limit, event="x")).status_code == 200
        )
        deeper = b'{"event":"y","data":[' + nested + b"]}"
        assert post(webhook_client, deeper, signed_headers(deeper, event="y")).status_code == 400

    @pytest.mark.parametrize(
        "body",
        [
            b'{"n":' + b"9" * 5000 + b"}",  # past Python's int digit limit: ValueError
            b'{"a":"x"}trailing',
            b"\xef\xbb\xbf{}",  # a UTF-8 byte-order mark
            b'{"createdAtMs":true}',
        ],
    )
    def test_other_undecodable_bodies_are_400(self, webhook_client, webhook_secret, body):
        response = post(webhook_client, body, signed_headers(body))
        assert response.status_code == 400
        assert response.json()["code"] in ("webhook/invalid-body-type", "webhook/invalid-timestamp")
        assert not WebhookDelivery.objects.exists()
