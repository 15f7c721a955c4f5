"""The receiver's drain: a burst of deliveries costs the broker one task.

With Celery, the receiver does not queue a task per delivery: it makes sure
one ``process_received_webhooks`` drain is queued per window per process
(with that countdown), and the drain processes every ``received`` delivery.
A broker failure leaves the deliveries for the sweeper, never lost.
"""

from __future__ import annotations

from collections import Counter

import pytest

from pluginlab_django import signals
from pluginlab_django.models import WebhookDelivery
from pluginlab_django.services import webhook_dispatch
from pluginlab_django.tasks import webhooks as webhook_tasks
from tests.signal_recorder import SignalRecorder
from tests.webhook_deliveries import (
    SECRET,
    OnCommitClient,
    deliver,
    set_processing,
    stored_delivery,
)

pytestmark = pytest.mark.django_db
Status = WebhookDelivery.Status


class Recorded:
    """Stands in for ``apply_async``: records its calls, or raises."""

    def __init__(self, raises: Exception | None = None):
        self.calls: list[tuple[tuple, dict]] = []
        self.raises = raises

    def __call__(self, args=(), **kwargs):
        self.calls.append((tuple(args), kwargs))
        if self.raises is not None:
            raise self.raises


@pytest.fixture
def celery_mode(settings, celery_conf):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_SECRET": SECRET}
    set_processing(settings, "celery")
    celery_conf.broker_url = "redis://127.0.0.1:1/0"  # never reached: apply_async is replaced
    webhook_dispatch._next_kick = 0.0
    yield
    webhook_dispatch._next_kick = 0.0


@pytest.fixture
def drains(monkeypatch):
    recorded = Recorded()
    monkeypatch.setattr(webhook_tasks.process_received_webhooks, "apply_async", recorded)
    return recorded


@pytest.fixture
def retries(monkeypatch):
    recorded = Recorded()
    monkeypatch.setattr(webhook_tasks.process_webhook_delivery, "apply_async", recorded)
    return recorded


def test_a_burst_queues_one_drain_which_processes_them_all(
    celery_mode, drains, retries, monkeypatch
):
    monkeypatch.setattr(webhook_dispatch, "_clock", lambda: 1000.0)  # all within one window
    client = OnCommitClient()
    for _ in range(20):
        assert deliver(client).status_code == 200
    assert drains.calls == [
        ((), {"countdown": webhook_dispatch.DRAIN_KICK_SECONDS, "retry": False})
    ]
    assert retries.calls == []  # no task per delivery
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {Status.RECEIVED}

    assert webhook_tasks.process_received_webhooks.run() == {Status.IGNORED: 20}
    assert Counter(WebhookDelivery.objects.values_list("status", "attempts")) == {
        (Status.IGNORED, 1): 20
    }


def test_after_the_window_the_next_delivery_queues_another_drain(celery_mode, drains):
    client = OnCommitClient()
    deliver(client)
    webhook_dispatch._next_kick = 0.0  # the window has passed
    deliver(client)
    assert len(drains.calls) == 2


def test_a_broker_failure_leaves_them_for_the_sweeper_and_the_next_one_retries(
    celery_mode, monkeypatch, caplog
):
    failing = Recorded(raises=OSError("connection refused"))
    monkeypatch.setattr(webhook_tasks.process_received_webhooks, "apply_async", failing)
    client = OnCommitClient()
    with caplog.at_level("ERROR", logger="pluginlab_django.webhooks"):
        deliver(client)
        deliver(client)  # the failed kick reset the window: this one tries again
    assert len(failing.calls) == 2
    assert "Could not queue the webhook drain" in caplog.text
    rows = list(WebhookDelivery.objects.values_list("status", "queued_at"))
    assert rows == [(Status.RECEIVED, None)] * 2  # the sweeper's to take after its grace


def test_a_delivery_covered_by_a_failed_kick_is_left_for_the_sweeper_too(celery_mode, monkeypatch):
    """Stored while the failing kick was still trying the broker: it counted
    on that drain, so its ``queued_at`` is emptied as well."""
    covered = stored_delivery(queued_at=None)

    def fail_after_another_delivery_arrived(args=(), **kwargs):
        WebhookDelivery.objects.filter(pk=covered.pk).update(
            queued_at=webhook_dispatch.timezone.now()
        )
        raise OSError("connection refused")

    monkeypatch.setattr(
        webhook_tasks.process_received_webhooks, "apply_async", fail_after_another_delivery_arrived
    )
    first = stored_delivery(queued_at=webhook_dispatch.timezone.now())
    webhook_dispatch.kick_drain([first.pk])
    assert list(WebhookDelivery.objects.values_list("queued_at", flat=True)) == [None, None]


def test_a_failed_delivery_goes_to_the_task_that_retries_with_backoff(celery_mode, retries):
    delivery = stored_delivery()
    with SignalRecorder(signals.webhook_received, raises=RuntimeError("handler down")):
        outcomes = webhook_dispatch.drain_received()
    assert outcomes == {Status.FAILED: 1}
    [(args, kwargs)] = retries.calls
    assert args == (delivery.pk,) and kwargs["countdown"] > 0


def test_past_its_budget_a_drain_queues_its_successor(celery_mode, drains):
    for _ in range(12):
        stored_delivery()
    outcomes = webhook_dispatch.drain_received(batch=5, budget_seconds=0)
    assert outcomes == {Status.IGNORED: 5}
    assert drains.calls == [((), {"retry": False})]
    assert WebhookDelivery.objects.filter(status=Status.RECEIVED).count() == 7


def test_concurrent_drains_process_each_delivery_once(celery_mode):
    """A second drain over the same rows finds them claimed: nothing twice."""
    for _ in range(3):
        stored_delivery()
    with SignalRecorder(signals.webhook_received) as received:
        first = webhook_dispatch.drain_received()
        second = webhook_dispatch.drain_received()
    assert first == {Status.IGNORED: 3} and second == {}
    assert len(received.calls) == 3
