"""The webhook receiver with hand-signed deliveries: verification, store-then-
process, deduplication, failures and reprocessing, pruning, concurrency.

Deliveries from the sandbox (the real sender) are in test_webhook_e2e.py.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
import requests
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from pluginlab_django import signals
from pluginlab_django.models import WebhookDelivery
from pluginlab_django.services import webhooks as webhook_service
from pluginlab_django.tasks.webhooks import prune_webhook_deliveries
from pluginlab_django.webhooks import (
    BodyTooLarge,
    InvalidBodyType,
    InvalidSignature,
    InvalidTimestamp,
    MissingBody,
    MissingSecret,
    MissingSignature,
    StaleTimestamp,
    compute_signature,
    verify_webhook,
)
from tests.signal_recorder import SignalRecorder
from tests.webhook_deliveries import (
    SECRET,
    URL,
    OnCommitClient,
    deliver,
    make_body,
    post,
    signed_headers,
    stored_delivery,
)

Status = WebhookDelivery.Status


@pytest.fixture(autouse=True)
def _eager(celery_eager):
    """Every test here runs tasks in-process."""


# verify_webhook ------------------------------------------------------------


@pytest.mark.no_db
class TestVerifyWebhook:
    body = b'{"event":"member.updated","data":{"member":{"id":"mem_1"}}}'

    def test_valid_returns_the_payload(self):
        payload = verify_webhook(self.body, compute_signature(self.body, SECRET), SECRET)
        assert payload["data"]["member"]["id"] == "mem_1"

    def test_signature_is_hmac_sha256_hex_of_the_raw_body(self):
        import hashlib
        import hmac

        expected = hmac.new(SECRET.encode(), self.body, hashlib.sha256).hexdigest()
        assert compute_signature(self.body, SECRET) == expected
        assert compute_signature(self.body.decode(), SECRET) == expected

    def test_text_body_accepted_like_the_vendor_sdk(self):
        payload = verify_webhook(self.body.decode(), compute_signature(self.body, SECRET), SECRET)
        assert payload == json.loads(self.body)
        # ... and the text is verified as its UTF-8 bytes: one changed character fails.
        with pytest.raises(InvalidSignature):
            verify_webhook(
                self.body.decode().replace("mem_1", "mem_2"),
                compute_signature(self.body, SECRET),
                SECRET,
            )

    @pytest.mark.parametrize(
        ("kwargs", "error", "code"),
        [
            ({"secret": None}, MissingSecret, "webhook/missing-secret"),
            ({"secret": ""}, MissingSecret, "webhook/missing-secret"),
            ({"body": b""}, MissingBody, "webhook/missing-body"),
            ({"signature": None}, MissingSignature, "webhook/missing-signature"),
            ({"signature": ""}, MissingSignature, "webhook/missing-signature"),
            ({"signature": "0" * 64}, InvalidSignature, "webhook/invalid-signature"),
            ({"signature": "é" * 64}, InvalidSignature, "webhook/invalid-signature"),
            ({"body": {"event": "x"}}, InvalidBodyType, "webhook/invalid-body-type"),
        ],
    )
    def test_vendor_error_codes(self, kwargs, error, code):
        args = {
            "body": self.body,
            "signature": compute_signature(self.body, SECRET),
            "secret": SECRET,
            **kwargs,
        }
        with pytest.raises(error) as info:
            verify_webhook(**args)
        assert info.value.code == code
        assert info.value.as_dict() == {"code": code, "message": info.value.message}

    def test_tampered_body(self):
        signature = compute_signature(self.body, SECRET)
        with pytest.raises(InvalidSignature):
            verify_webhook(self.body.replace(b"mem_1", b"mem_2"), signature, SECRET)

    def test_wrong_secret(self):
        with pytest.raises(InvalidSignature):
            verify_webhook(self.body, compute_signature(self.body, "other"), SECRET)

    def test_signed_body_that_is_not_a_json_object(self):
        for body in (b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"):
            with pytest.raises(InvalidBodyType):
                verify_webhook(body, compute_signature(body, SECRET), SECRET)

    def test_timestamp_in_milliseconds_or_seconds(self):
        now = 1_800_000_000.0
        sig = compute_signature(self.body, SECRET)
        fresh = (int(now * 1000), int(now), str(int(now) - 299), str(int(now * 1000) + 299_000))
        for stamp in fresh:
            verify_webhook(self.body, sig, SECRET, timestamp=stamp, tolerance=300, now=now)
        for stamp in (int(now * 1000) - 301_000, int(now) + 301, 1):
            with pytest.raises(StaleTimestamp) as info:
                verify_webhook(self.body, sig, SECRET, timestamp=stamp, tolerance=300, now=now)
            assert info.value.code == "webhook/stale-timestamp"

    def test_tolerance_defaults_to_the_setting(self, settings):
        settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_TOLERANCE_SECONDS": 10}
        sig = compute_signature(self.body, SECRET)
        with pytest.raises(StaleTimestamp):
            verify_webhook(self.body, sig, SECRET, timestamp=int(time.time()) - 60)
        verify_webhook(self.body, sig, SECRET, timestamp=int(time.time()) - 5)

    def test_unparseable_timestamp(self):
        sig = compute_signature(self.body, SECRET)
        for stamp in ("soon", "-5", "1.5e12"):
            with pytest.raises(InvalidTimestamp):
                verify_webhook(self.body, sig, SECRET, timestamp=stamp)

    def test_bad_signature_wins_over_a_stale_timestamp(self):
        """An unsigned request learns nothing about our clock."""
        with pytest.raises(InvalidSignature):
            verify_webhook(self.body, "0" * 64, SECRET, timestamp=1)

    def test_body_limit(self):
        with pytest.raises(BodyTooLarge):
            verify_webhook(
                self.body,
                compute_signature(self.body, SECRET),
                SECRET,
                max_body_bytes=len(self.body) - 1,
            )

    def test_messages_never_hold_the_secret_or_signature(self):
        sig = compute_signature(self.body, SECRET)
        for kwargs in ({"signature": sig[:-1] + "0"}, {"body": b"[]"}, {"timestamp": 1}):
            args = {"body": self.body, "signature": sig, "secret": SECRET, **kwargs}
            if kwargs.get("body"):
                args["signature"] = compute_signature(kwargs["body"], SECRET)
            with pytest.raises(Exception) as info:
                verify_webhook(**args)
            assert SECRET not in str(info.value) and sig[:16] not in str(info.value)


# The receiver view -----------------------------------------------------------


@pytest.mark.django_db
class TestReceiver:
    def test_url_name(self):
        assert reverse("pluginlab:webhook") == URL

    def test_valid_delivery_is_stored_then_processed(self, webhook_client, webhook_secret):
        body, delivery_id = make_body("test.unknown")
        headers = signed_headers(body, delivery_id=delivery_id)
        with (
            SignalRecorder(signals.webhook_stored) as stored,
            SignalRecorder(signals.webhook_received) as received,
        ):
            response = post(webhook_client, body, headers)
        assert response.status_code == 200
        assert response.json() == {"status": "stored", "deliveryId": delivery_id}
        delivery = WebhookDelivery.objects.get()
        assert delivery.delivery_id == delivery_id
        assert delivery.body == body.decode()  # the raw text, exactly as signed
        assert delivery.event == "test.unknown"
        assert delivery.hook_id == "hook_1"
        assert delivery.headers["X-PluginLab-Signature"] == headers["X-PluginLab-Signature"]
        assert delivery.headers["X-PluginLab-Timestamp"] == headers["X-PluginLab-Timestamp"]
        assert len(stored.calls) == 1 and len(received.calls) == 1
        assert received.calls[0]["event"] == "test.unknown"
        assert received.calls[0]["payload"]["deliveryId"] == delivery_id
        assert delivery.attempts == 1

    def test_csrf_exempt(self, webhook_secret):
        response = deliver(OnCommitClient(enforce_csrf_checks=True))
        assert response.status_code == 200

    @pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "head", "options"])
    def test_other_methods_405(self, webhook_client, webhook_secret, method):
        response = getattr(webhook_client, method)(URL)
        assert response.status_code == 405
        assert response["Allow"] == "POST"
        assert not WebhookDelivery.objects.exists()

    def test_get_answers_json(self, webhook_client):
        response = webhook_client.get(URL)
        assert response.json()["code"] == "webhook/method-not-allowed"

    @pytest.mark.parametrize(
        ("mangle", "code"),
        [
            ("tamper", "webhook/invalid-signature"),
            ("wrong_secret", "webhook/invalid-signature"),
            ("no_signature", "webhook/missing-signature"),
            ("stale_body", "webhook/stale-timestamp"),
            ("stale_ms", "webhook/stale-timestamp"),
            ("stale_s", "webhook/stale-timestamp"),
            ("bad_body_time", "webhook/invalid-timestamp"),
            ("not_json", "webhook/invalid-body-type"),
            ("json_array", "webhook/invalid-body-type"),
            ("empty", "webhook/missing-body"),
        ],
    )
    def test_refused_deliveries_answer_400_and_are_not_stored(
        self, webhook_client, webhook_secret, mangle, code, caplog
    ):
        body, delivery_id = make_body()
        kwargs = {"delivery_id": delivery_id}
        sent = body
        if mangle == "tamper":
            sent = body.replace(b"aaaa", b"aaab", 1)
        elif mangle == "wrong_secret":
            kwargs["secret"] = "not-the-secret"
        elif mangle == "no_signature":
            kwargs["signature"] = ""
        elif mangle == "stale_body":  # signed an hour ago, sent with a fresh header
            body, _ = make_body(
                delivery_id=delivery_id, created_at_ms=int(time.time() * 1000) - 3_600_000
            )
            sent = body
        elif mangle in ("stale_ms", "stale_s"):  # no time in the body: the header decides
            body, _ = make_body(delivery_id=delivery_id, created_at_ms=None)
            sent = body
            kwargs["timestamp_ms"] = (
                int(time.time() * 1000) - 3_600_000
                if mangle == "stale_ms"
                else int(time.time()) - 3600
            )
        elif mangle == "bad_body_time":
            body, _ = make_body(delivery_id=delivery_id, created_at_ms="yesterday")
            sent = body
        elif mangle == "not_json":
            body = sent = b"event=member.updated"
        elif mangle == "json_array":
            body = sent = b'[{"event": "member.updated"}]'
        elif mangle == "empty":
            body = sent = b""
            kwargs["signature"] = "0" * 64
        headers = signed_headers(body, **kwargs)
        with (
            caplog.at_level("WARNING", logger="pluginlab_django.webhooks"),
            SignalRecorder(signals.webhook_received) as received,
        ):
            response = post(webhook_client, sent, headers)
        assert response.status_code == 400
        assert response.json()["code"] == code
        assert set(response.json()) == {"code", "message"}
        assert not WebhookDelivery.objects.exists()
        assert received.calls == []
        # Logged with the delivery id and the reason, never the body or secret.
        assert delivery_id in caplog.text and code in caplog.text
        if body:
            assert body.decode(errors="replace") not in caplog.text
        assert SECRET not in caplog.text

    def test_missing_secret_is_our_fault_500(self, webhook_client, settings):
        settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_SECRET": None}
        response = deliver(webhook_client)
        assert response.status_code == 500
        assert response.json()["code"] == "webhook/missing-secret"
        assert not WebhookDelivery.objects.exists()

    def test_timestamp_header_optional(self, webhook_client, webhook_secret):
        body, delivery_id = make_body()
        headers = signed_headers(body, delivery_id=delivery_id)
        del headers["X-PluginLab-Timestamp"]
        assert post(webhook_client, body, headers).status_code == 200
        assert WebhookDelivery.objects.filter(delivery_id=delivery_id).exists()

    def test_declared_oversized_body_refused_before_reading(self, webhook_client, settings):
        settings.PLUGINLAB = {
            **settings.PLUGINLAB,
            "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_MAX_BODY_BYTES": 1000,
        }

        class Unreadable:
            def read(self, *args):
                raise AssertionError("the body was read")

            readline = read

        body, delivery_id = make_body()
        response = webhook_client.generic(
            "POST",
            URL,
            data=body,
            content_type="application/json",
            headers=signed_headers(body, delivery_id=delivery_id),
            CONTENT_LENGTH="1001",
            **{"wsgi.input": Unreadable()},
        )
        assert response.status_code == 413
        assert response.json()["code"] == "webhook/body-too-large"
        assert not WebhookDelivery.objects.exists()

    def test_default_limit_is_one_mib(self, webhook_client, webhook_secret):
        body = b'{"pad":"' + b"x" * (1024 * 1024) + b'"}'
        response = post(webhook_client, body, signed_headers(body))
        assert response.status_code == 413
        assert not WebhookDelivery.objects.exists()

    def test_body_at_the_limit_accepted(self, webhook_client, settings):
        body, delivery_id = make_body()
        settings.PLUGINLAB = {
            **settings.PLUGINLAB,
            "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_MAX_BODY_BYTES": len(body),
        }
        assert (
            post(webhook_client, body, signed_headers(body, delivery_id=delivery_id)).status_code
            == 200
        )

    def test_body_longer_than_its_declared_length_is_cut_not_trusted(
        self, webhook_client, settings
    ):
        """A lying Content-Length reads at most limit + 1 bytes; the cut body fails."""
        body, delivery_id = make_body()
        settings.PLUGINLAB = {
            **settings.PLUGINLAB,
            "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_MAX_BODY_BYTES": len(body) - 10,
        }
        response = webhook_client.generic(
            "POST",
            URL,
            data=body,
            content_type="application/json",
            headers=signed_headers(body, delivery_id=delivery_id),
            CONTENT_LENGTH="",  # unknown length, as with a chunked body
        )
        assert response.status_code in (400, 413)
        assert not WebhookDelivery.objects.exists()

    def test_repeated_delivery_answers_2xx_and_is_processed_once(
        self, webhook_client, webhook_secret
    ):
        body, delivery_id = make_body()
        headers = signed_headers(body, delivery_id=delivery_id)
        with SignalRecorder(signals.webhook_received) as received:
            first = post(webhook_client, body, headers)
            second = post(webhook_client, body, headers)
            third = post(webhook_client, body, signed_headers(body, delivery_id=delivery_id))
        assert first.status_code == second.status_code == third.status_code == 200
        assert first.json()["status"] == "stored"
        assert second.json() == {"status": "duplicate", "deliveryId": delivery_id}
        assert WebhookDelivery.objects.filter(delivery_id=delivery_id).count() == 1
        assert len(received.calls) == 1
        assert WebhookDelivery.objects.get().attempts == 1

    def test_delivery_id_from_the_body_when_the_header_is_missing(
        self, webhook_client, webhook_secret
    ):
        body, delivery_id = make_body()
        headers = signed_headers(body)
        del headers["X-PluginLab-Delivery-Id"]
        assert post(webhook_client, body, headers).json()["deliveryId"] == delivery_id
        assert post(webhook_client, body, headers).json()["status"] == "duplicate"

    def test_no_delivery_id_at_all_dedupes_on_the_body(self, webhook_client, webhook_secret):
        body = b'{"event":"test.unknown"}'
        headers = signed_headers(body)
        del headers["X-PluginLab-Delivery-Id"]
        assert post(webhook_client, body, headers).json()["status"] == "stored"
        assert post(webhook_client, body, headers).json()["status"] == "duplicate"
        assert WebhookDelivery.objects.get().delivery_id.startswith("sha256:")

    def test_overlong_delivery_id_is_hashed_not_refused(self, webhook_client, webhook_secret):
        body, delivery_id = make_body(delivery_id="d" * 500)
        response = post(webhook_client, body, signed_headers(body, delivery_id=delivery_id))
        assert response.status_code == 200
        assert len(WebhookDelivery.objects.get().delivery_id) <= 128

    def test_unknown_event_stored_2xx_ignored(self, webhook_client, webhook_secret):
        response = deliver(webhook_client, event="brand.new-event")
        assert response.status_code == 200
        delivery = WebhookDelivery.objects.get()
        assert delivery.event == "brand.new-event"
        assert delivery.status == Status.IGNORED
        assert delivery.processed_at is not None

    def test_unknown_event_with_a_receiver_is_processed(self, webhook_client, webhook_secret):
        with SignalRecorder(signals.webhook_event("brand.new-event")) as handler:
            deliver(webhook_client, event="brand.new-event")
            deliver(webhook_client, event="other.event")
        assert len(handler.calls) == 1
        assert handler.calls[0]["event"] == "brand.new-event"
        assert WebhookDelivery.objects.get(event="brand.new-event").status == Status.PROCESSED
        assert WebhookDelivery.objects.get(event="other.event").status == Status.IGNORED

    def test_webhook_event_returns_one_signal_per_name(self):
        assert signals.webhook_event("a.b") is signals.webhook_event("a.b")
        assert signals.webhook_event("a.b") is not signals.webhook_event("a.c")

    def test_failing_handler_leaves_it_failed_sender_still_2xx(
        self, webhook_client, webhook_secret
    ):
        with (
            SignalRecorder(signals.webhook_received, raises=RuntimeError("boom")),
            SignalRecorder(signals.webhook_failed) as failed,
            SignalRecorder(signals.webhook_processed) as processed,
        ):
            response = deliver(webhook_client)
        assert response.status_code == 200
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == Status.FAILED
        assert delivery.error == "RuntimeError: boom"
        assert delivery.attempts == 1
        assert delivery.processed_at is None
        assert len(failed.calls) == 1 and processed.calls == []
        assert isinstance(failed.calls[0]["exception"], RuntimeError)

        # Fixed handler: the service reprocesses it, once.
        with SignalRecorder(signals.webhook_event("test.unknown")) as handler:
            result = webhook_service.process_delivery(delivery)
            again = webhook_service.process_delivery(delivery, reprocess=True)
        assert result.outcome == Status.PROCESSED
        assert again.outcome == webhook_service.SKIPPED
        assert len(handler.calls) == 1
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.error) == (Status.PROCESSED, 2, "")

    def test_failing_redelivery_is_not_rerun_by_the_sender(self, webhook_client, webhook_secret):
        """A redelivery of a failed delivery is answered 2xx; retries are ours."""
        body, delivery_id = make_body()
        headers = signed_headers(body, delivery_id=delivery_id)
        with SignalRecorder(signals.webhook_received, raises=RuntimeError("boom")) as rec:
            post(webhook_client, body, headers)
            assert post(webhook_client, body, headers).status_code == 200
        assert len(rec.calls) == 1

    def test_broken_stored_receiver_still_answers_2xx(self, webhook_client, webhook_secret):
        with SignalRecorder(signals.webhook_stored, raises=RuntimeError("oops")):
            assert deliver(webhook_client).status_code == 200
        assert WebhookDelivery.objects.get().status == Status.IGNORED

    def test_broken_lifecycle_receiver_does_not_undo_the_outcome(
        self, webhook_client, webhook_secret
    ):
        with SignalRecorder(signals.webhook_processed, raises=RuntimeError("late")):
            assert deliver(webhook_client).status_code == 200
        assert WebhookDelivery.objects.get().status == Status.IGNORED

    def test_member_event_without_member_id_is_ignored(self, webhook_client, webhook_secret):
        body = json.dumps({"event": "member.updated", "data": {}}).encode()
        post(
            webhook_client, body, signed_headers(body, event="member.updated", delivery_id="dlv_x")
        )
        assert WebhookDelivery.objects.get().status == Status.IGNORED


# The service's claim ---------------------------------------------------------


@pytest.mark.django_db
class TestProcessing:
    def test_processed_exactly_once(self):
        delivery = stored_delivery()
        with SignalRecorder(signals.webhook_received) as received:
            outcomes = [webhook_service.process_delivery(delivery.pk).outcome for _ in range(3)]
        assert outcomes == [Status.IGNORED, "skipped", "skipped"]
        assert len(received.calls) == 1

    def test_a_delivery_being_processed_is_not_claimed_again(self):
        delivery = stored_delivery(Status.PROCESSING, claimed_at=timezone.now())
        with SignalRecorder(signals.webhook_received) as received:
            result = webhook_service.process_delivery(delivery, reprocess=True)
        assert result.outcome == "skipped" and received.calls == []

    def test_an_abandoned_claim_is_taken_over(self, settings):
        settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_CLAIM_TIMEOUT_SECONDS": 60}
        delivery = stored_delivery(
            Status.PROCESSING, claimed_at=timezone.now() - timedelta(seconds=61), attempts=1
        )
        assert webhook_service.process_delivery(delivery).outcome == Status.IGNORED
        delivery.refresh_from_db()
        assert delivery.attempts == 2

    def test_ignored_only_rerun_on_explicit_reprocess(self):
        delivery = stored_delivery(Status.IGNORED)
        assert webhook_service.process_delivery(delivery).outcome == "skipped"
        with SignalRecorder(signals.webhook_event("test.unknown")):
            assert webhook_service.process_delivery(delivery, reprocess=True).outcome == (
                Status.PROCESSED
            )

    def test_stored_body_that_no_longer_parses_fails(self):
        delivery = stored_delivery()
        WebhookDelivery.objects.filter(pk=delivery.pk).update(body="[]")
        result = webhook_service.process_delivery(delivery)
        assert result.failed and "InvalidBodyType" in result.error


# Admin -----------------------------------------------------------------------


@pytest.mark.django_db
class TestAdmin:
    changelist = "/admin/pluginlab_django/webhookdelivery/"

    def staff(self, *perms: str) -> User:
        user = User.objects.create_user("ops", password="pw", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=perms))
        return user

    def test_list_search_and_detail(self, webhook_client):
        delivery = stored_delivery(Status.FAILED, error="RuntimeError: boom", attempts=2)
        webhook_client.force_login(self.staff("view_webhookdelivery"))
        page = webhook_client.get(self.changelist, {"q": delivery.delivery_id})
        assert page.status_code == 200
        assert delivery.delivery_id in page.content.decode()
        assert webhook_client.get(self.changelist, {"status__exact": "failed"}).status_code == 200
        detail = webhook_client.get(f"{self.changelist}{delivery.pk}/change/")
        assert detail.status_code == 200 and "RuntimeError: boom" in detail.content.decode()
        # Read-only: no add, no save.
        assert webhook_client.get(f"{self.changelist}add/").status_code == 403
        assert "Reprocess" not in page.content.decode()

    def test_reprocess_action(self, webhook_client):
        failed = stored_delivery(Status.FAILED, error="RuntimeError: boom", attempts=1)
        done = stored_delivery(Status.PROCESSED, attempts=1, processed_at=timezone.now())
        webhook_client.force_login(self.staff("view_webhookdelivery", "reprocess_webhookdelivery"))
        assert "Reprocess" in webhook_client.get(self.changelist).content.decode()
        with SignalRecorder(signals.webhook_event("test.unknown")) as handler:
            response = webhook_client.post(
                self.changelist,
                {"action": "reprocess", "_selected_action": [failed.pk, done.pk]},
                follow=True,
            )
        assert len(handler.calls) == 1  # the processed one is not run again
        text = [str(m) for m in response.context["messages"]]
        assert any(failed.delivery_id in m and "processed" in m for m in text)
        assert any(done.delivery_id in m and "skipped" in m for m in text)
        failed.refresh_from_db()
        assert (failed.status, failed.attempts, failed.error) == (Status.PROCESSED, 2, "")

    def test_reprocess_needs_the_permission(self, webhook_client):
        failed = stored_delivery(Status.FAILED)
        webhook_client.force_login(self.staff("view_webhookdelivery"))
        webhook_client.post(
            self.changelist, {"action": "reprocess", "_selected_action": [failed.pk]}
        )
        failed.refresh_from_db()
        assert failed.status == Status.FAILED and failed.attempts == 0

    def test_reprocess_reports_a_new_failure(self, webhook_client):
        failed = stored_delivery(Status.FAILED)
        webhook_client.force_login(self.staff("view_webhookdelivery", "reprocess_webhookdelivery"))
        with SignalRecorder(signals.webhook_received, raises=ValueError("still broken")):
            response = webhook_client.post(
                self.changelist,
                {"action": "reprocess", "_selected_action": [failed.pk]},
                follow=True,
            )
        assert any("still broken" in str(m) for m in response.context["messages"])
        failed.refresh_from_db()
        assert failed.status == Status.FAILED


# Retention -------------------------------------------------------------------


@pytest.mark.django_db
def test_prune_keeps_failed_and_recent(settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_RETENTION_DAYS": 30}
    old = timezone.now() - timedelta(days=31)
    recent = timezone.now() - timedelta(days=29)
    old_processed = stored_delivery(Status.PROCESSED, processed_at=old, received_at=old)
    old_ignored = stored_delivery(Status.IGNORED, processed_at=old, received_at=old)
    recent_processed = stored_delivery(Status.PROCESSED, processed_at=recent, received_at=old)
    old_failed = stored_delivery(Status.FAILED, received_at=old)
    old_received = stored_delivery(Status.RECEIVED, received_at=old)

    assert prune_webhook_deliveries.delay().get() == 2

    left = set(WebhookDelivery.objects.values_list("pk", flat=True))
    assert left == {recent_processed.pk, old_failed.pk, old_received.pk}
    assert old_processed.pk not in left and old_ignored.pk not in left


# Concurrency -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_deliveries_store_one_row_processed_once(live_server, settings):
    """Many senders racing with one delivery id: one row, one processing run.

    Meaningful on PostgreSQL (the unique constraint and the claim race for
    real). On SQLite the live server shares the test's in-memory connection
    between its threads, so requests are serialised there and the test only
    checks the repeated-delivery path.
    """
    settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_SECRET": SECRET}
    senders = 12
    body, delivery_id = make_body()
    headers = {**signed_headers(body, delivery_id=delivery_id), "Content-Type": "application/json"}
    url = live_server.url + URL
    serialise = threading.Lock() if connection.vendor == "sqlite" else None
    barrier = threading.Barrier(senders)
    statuses: list[int] = []
    bodies: list[dict] = []

    def send():
        barrier.wait()
        if serialise:
            serialise.acquire()
        try:
            response = requests.post(url, data=body, headers=headers, timeout=30)
        finally:
            if serialise:
                serialise.release()
        statuses.append(response.status_code)
        bodies.append(response.json())

    with SignalRecorder(signals.webhook_received) as received:
        threads = [threading.Thread(target=send) for _ in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert statuses == [200] * senders
    assert sorted(b["status"] for b in bodies).count("stored") == 1
    assert WebhookDelivery.objects.filter(delivery_id=delivery_id).count() == 1
    assert len(received.calls) == 1
    delivery = WebhookDelivery.objects.get(delivery_id=delivery_id)
    assert (delivery.status, delivery.attempts) == (Status.IGNORED, 1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_reprocessing_runs_the_handlers_once():
    """Workers, retries and admin actions racing on one delivery: one run.

    Each thread has its own database connection; on SQLite (one shared
    in-memory database) the threads take turns, on PostgreSQL they race.
    """
    from django.db import connections

    delivery = stored_delivery(Status.FAILED)
    workers = 8
    barrier = threading.Barrier(workers)
    serialise = threading.Lock() if connection.vendor == "sqlite" else None
    outcomes: list[str] = []

    def slow_handler(sender, **kwargs):
        time.sleep(0.2)  # hold the claim while the others try

    def work():
        barrier.wait()
        try:
            if serialise:
                with serialise:
                    outcomes.append(webhook_service.process_delivery(delivery.pk).outcome)
            else:
                outcomes.append(webhook_service.process_delivery(delivery.pk).outcome)
        finally:
            connections.close_all()

    with SignalRecorder(signals.webhook_received) as received:
        signals.webhook_received.connect(slow_handler, dispatch_uid="slow")
        try:
            threads = [threading.Thread(target=work) for _ in range(workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            signals.webhook_received.disconnect(dispatch_uid="slow")

    assert len(received.calls) == 1
    assert sorted(outcomes) == [Status.IGNORED] + ["skipped"] * (workers - 1)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Status.IGNORED, 1)


# The task's retries ----------------------------------------------------------


@pytest.mark.django_db
class TestProcessingTask:
    """The worker path (not eager): a failure is retried with backoff, then left."""

    def run_as_worker(self, pk, retries):
        from pluginlab_django.tasks.webhooks import process_webhook_delivery

        process_webhook_delivery.push_request(
            id=f"task-{uuid.uuid4().hex}",
            args=[pk],
            kwargs={},
            retries=retries,
            is_eager=False,
            called_directly=False,
        )
        try:
            return process_webhook_delivery.run(pk)
        finally:
            process_webhook_delivery.pop_request()

    def test_failure_is_retried_with_backoff(self):
        from celery.exceptions import Retry

        delivery = stored_delivery()
        with (
            SignalRecorder(signals.webhook_received, raises=RuntimeError("boom")),
            pytest.raises(Retry) as info,
        ):
            self.run_as_worker(delivery.pk, retries=2)
        assert 90 <= info.value.when <= 150  # 30 s * 2**2, +-25 % jitter
        delivery.refresh_from_db()
        assert delivery.status == Status.FAILED

    def test_last_retry_leaves_it_failed_without_raising(self):
        delivery = stored_delivery()
        with SignalRecorder(signals.webhook_received, raises=RuntimeError("boom")):
            assert self.run_as_worker(delivery.pk, retries=6) == Status.FAILED
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (Status.FAILED, 1)

    def test_success_is_not_retried(self):
        delivery = stored_delivery()
        assert self.run_as_worker(delivery.pk, retries=0) == Status.IGNORED

    def test_eager_failure_is_not_retried_in_process(self):
        from pluginlab_django.tasks.webhooks import process_webhook_delivery

        delivery = stored_delivery()
        with SignalRecorder(signals.webhook_received, raises=RuntimeError("boom")) as rec:
            process_webhook_delivery.delay(delivery.pk)
        assert len(rec.calls) == 1
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (Status.FAILED, 1)
