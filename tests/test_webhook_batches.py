"""Deliveries stored and processed in few statements, with the same guarantees.

The receiver stores a delivery with one ``INSERT … ON CONFLICT DO NOTHING
RETURNING``; a drain claims a batch of ``received`` deliveries with one
``UPDATE … RETURNING`` and records their outcomes with one UPDATE per status
(``services.webhooks.process_received``). Each delivery is still claimed
before it is processed, processed once, and a failure, a taken-over claim or
a slow batch is handled as for a single delivery.
"""

from __future__ import annotations

import itertools
import threading
from types import SimpleNamespace

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pluginlab_django import signals
from pluginlab_django.models import WebhookDelivery
from pluginlab_django.services import webhooks as webhook_service
from tests.signal_recorder import SignalRecorder
from tests.webhook_deliveries import make_body, signed_headers, stored_delivery

pytestmark = pytest.mark.django_db
Status = WebhookDelivery.Status


def store(delivery_id: str | None = None) -> webhook_service.StoredDelivery:
    body, delivery_id = make_body(delivery_id=delivery_id)
    headers = signed_headers(body, delivery_id=delivery_id)
    return webhook_service.store_delivery(
        body=body.decode(), headers=headers, payload={"deliveryId": delivery_id}, queued=True
    )


class TestStoring:
    def test_a_new_delivery_is_one_statement(self):
        with CaptureQueriesContext(connection) as queries:
            stored = store()
        assert stored.created and len(queries) == 1
        row = WebhookDelivery.objects.get()
        assert (row.pk, row.status, row.attempts, row.error) == (
            stored.delivery.pk,
            Status.RECEIVED,
            0,
            "",
        )
        assert row.processed_at is None and row.claimed_at is None
        assert row.queued_at == row.received_at == stored.delivery.received_at
        assert row.headers["X-PluginLab-Hook-Id"] == "hook_1"
        assert row.body_digest == stored.delivery.body_digest and row.body_digest

    def test_a_duplicate_is_answered_with_the_stored_row_in_two_statements(self):
        first = store("dlv_twice")
        with CaptureQueriesContext(connection) as queries:
            again = store("dlv_twice")
        assert not again.created and len(queries) == 2  # the INSERT that did nothing, a SELECT
        row = WebhookDelivery.objects.get()
        for field in WebhookDelivery._meta.concrete_fields:
            assert getattr(again.delivery, field.attname) == getattr(row, field.attname), field
        assert isinstance(again.delivery.headers, dict)
        assert again.delivery.received_at == first.delivery.received_at

    def test_a_duplicate_inside_a_transaction_leaves_it_usable(self):
        first = store("dlv_same")
        with transaction.atomic():
            again = store("dlv_same")
            # No IntegrityError was raised, so no savepoint had to catch it:
            # the caller's transaction goes on.
            assert WebhookDelivery.objects.count() == 1
        assert not again.created and again.delivery.pk == first.delivery.pk

    def test_without_returning_the_orm_path_stores_once_too(self, monkeypatch):
        monkeypatch.setattr(webhook_service, "_returns_rows", lambda connection: False)
        first = store("dlv_orm")
        again = store("dlv_orm")
        assert first.created and not again.created
        assert again.delivery.pk == first.delivery.pk


class TestBatches:
    def test_claimed_in_one_statement_outcomes_in_one_per_status(self):
        handled = [stored_delivery() for _ in range(3)]
        ignored = [stored_delivery() for _ in range(2)]
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in handled]).update(event="test.handled")
        statuses_when_signalled = []

        def processed(sender, delivery, **kwargs):
            statuses_when_signalled.append(
                WebhookDelivery.objects.values_list("status", flat=True).get(pk=delivery.pk)
            )

        signals.webhook_processed.connect(processed, weak=False, dispatch_uid="batch-test")
        try:
            with (
                SignalRecorder(signals.webhook_event("test.handled")) as events,
                CaptureQueriesContext(connection) as queries,
            ):
                results = webhook_service.process_received(10)
        finally:
            signals.webhook_processed.disconnect(dispatch_uid="batch-test")
        # The claim, then one UPDATE for the processed, one for the ignored;
        # the signal receiver's own SELECTs come after.
        writes = [q["sql"] for q in queries if not q["sql"].startswith("SELECT")]
        assert len(writes) == 3
        assert sorted((r.delivery.pk, r.outcome) for r in results) == sorted(
            [(d.pk, Status.PROCESSED) for d in handled] + [(d.pk, Status.IGNORED) for d in ignored]
        )
        assert len(events.calls) == 3
        rows = dict(WebhookDelivery.objects.values_list("pk", "status"))
        assert rows == {r.delivery.pk: r.outcome for r in results}
        assert set(WebhookDelivery.objects.values_list("attempts", flat=True)) == {1}
        assert WebhookDelivery.objects.filter(processed_at__isnull=True).count() == 0
        # webhook_processed is sent once the outcome is in the row.
        assert sorted(statuses_when_signalled) == sorted(r.outcome for r in results)

    def test_at_most_the_limit_oldest_first(self):
        deliveries = [stored_delivery() for _ in range(7)]
        results = webhook_service.process_received(3)
        assert sorted(r.delivery.pk for r in results) == [d.pk for d in deliveries[:3]]
        assert WebhookDelivery.objects.filter(status=Status.RECEIVED).count() == 4

    def test_only_received_deliveries_are_claimed(self):
        others = [
            stored_delivery(Status.PROCESSING, claimed_at=timezone.now(), attempts=1),
            stored_delivery(Status.FAILED, attempts=1),
            stored_delivery(Status.IGNORED, attempts=1),
            stored_delivery(Status.PROCESSED, attempts=1),
        ]
        before = list(WebhookDelivery.objects.order_by("pk").values())
        assert webhook_service.process_received(10) == []
        assert list(WebhookDelivery.objects.order_by("pk").values()) == before
        assert len(before) == len(others)

    def test_a_claimed_delivery_is_not_processed_again(self):
        stored_delivery()
        with SignalRecorder(signals.webhook_received) as received:
            first = webhook_service.process_received(10)
            second = webhook_service.process_received(10)
            single = webhook_service.process_delivery(first[0].delivery.pk)
        assert len(first) == 1 and second == [] and single.outcome == "skipped"
        assert len(received.calls) == 1

    def test_a_failure_is_recorded_and_the_rest_still_run(self):
        deliveries = [stored_delivery() for _ in range(3)]
        failing = deliveries[1].pk

        def receiver(sender, delivery, **kwargs):
            if delivery.pk == failing:
                raise RuntimeError("handler down")

        signals.webhook_received.connect(receiver, weak=False, dispatch_uid="batch-fail")
        try:
            results = webhook_service.process_received(10)
        finally:
            signals.webhook_received.disconnect(dispatch_uid="batch-fail")
        outcomes = {r.delivery.pk: r.outcome for r in results}
        assert outcomes == {
            deliveries[0].pk: Status.IGNORED,
            failing: Status.FAILED,
            deliveries[2].pk: Status.IGNORED,
        }
        row = WebhookDelivery.objects.get(pk=failing)
        assert row.status == Status.FAILED and "handler down" in row.error

    def test_a_slow_batch_gives_back_what_it_has_not_started(self, settings, monkeypatch):
        settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_CLAIM_TIMEOUT_SECONDS": 60}
        deliveries = [stored_delivery() for _ in range(4)]
        clock = itertools.count(0, 20)  # each reading 20 s later: past 30 s at the third
        fake_time = SimpleNamespace(monotonic=lambda: float(next(clock)))
        monkeypatch.setattr(webhook_service, "time", fake_time)
        results = webhook_service.process_received(10)
        started = {r.delivery.pk for r in results}
        assert started and len(started) < 4
        assert started == {d.pk for d in deliveries[: len(started)]}
        given_back = WebhookDelivery.objects.exclude(pk__in=started)
        assert list(
            given_back.order_by().values_list("status", "attempts", "claimed_at").distinct()
        ) == [(Status.RECEIVED, 0, None)]
        assert set(
            WebhookDelivery.objects.filter(pk__in=started).values_list("status", flat=True)
        ) == {Status.IGNORED}

    def test_an_outcome_whose_claim_was_taken_over_is_not_recorded(self, caplog):
        delivery = stored_delivery()
        other_claim = timezone.now() + timezone.timedelta(seconds=5)

        def taken_over(sender, delivery, **kwargs):
            # Another processor took the claim over while the handlers ran.
            WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_at=other_claim)

        signals.webhook_received.connect(taken_over, weak=False, dispatch_uid="batch-taken")
        try:
            with caplog.at_level("WARNING", logger="pluginlab_django.webhooks"):
                webhook_service.process_received(10)
        finally:
            signals.webhook_received.disconnect(dispatch_uid="batch-taken")
        row = WebhookDelivery.objects.get(pk=delivery.pk)
        assert (row.status, row.claimed_at) == (Status.PROCESSING, other_claim)
        assert "was taken over" in caplog.text

    def test_without_returning_each_is_processed_as_one(self, monkeypatch):
        monkeypatch.setattr(webhook_service, "_returns_rows", lambda connection: False)
        for _ in range(3):
            stored_delivery()
        results = webhook_service.process_received(2)
        assert [r.outcome for r in results] == [Status.IGNORED] * 2
        assert WebhookDelivery.objects.filter(status=Status.RECEIVED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_postgresql_skips_rows_another_transaction_is_claiming():
    """Concurrent drains do not wait for each other: a row locked by another
    transaction is skipped (FOR UPDATE SKIP LOCKED), the rest are claimed."""
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("SKIP LOCKED: PostgreSQL")
    locked, free = stored_delivery(), stored_delivery()
    holding, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                WebhookDelivery.objects.select_for_update().get(pk=locked.pk)
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold_lock)
    thread.start()
    try:
        assert holding.wait(10)
        results = webhook_service.process_received(10)
    finally:
        release.set()
        thread.join(10)
    assert [r.delivery.pk for r in results] == [free.pk]
    assert WebhookDelivery.objects.get(pk=locked.pk).status == Status.RECEIVED
