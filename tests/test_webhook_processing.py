"""Who processes a stored delivery (issue 15 item 2, issue 10 defect 5):
inline without a broker, Celery with one, a check when Celery is chosen with
no broker, the sweeper and ``pluginlab_webhooks`` for what was left behind,
and the receiver exempt from ``LoginRequiredMiddleware`` (issue 14 item 3).
"""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import django
import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.http import HttpResponse
from django.urls import include, path
from django.utils import timezone

from pluginlab_django import signals
from pluginlab_django.models import Member, WebhookDelivery
from pluginlab_django.schedules import DEFAULT_BEAT_SCHEDULE
from pluginlab_django.services import webhook_dispatch
from pluginlab_django.tasks.webhooks import sweep_webhook_deliveries
from tests.signal_recorder import SignalRecorder
from tests.webhook_deliveries import (
    OnCommitClient,
    deliver,
    make_body,
    post,
    set_processing,
    signed_headers,
    stored_delivery,
)

Status = WebhookDelivery.Status
#: Nothing listens here: connecting is refused at once.
DEAD_BROKER = "redis://127.0.0.1:1/0"


def check_ids() -> set[str]:
    return {message.id for message in run_checks(tags=["pluginlab"])}


# Choosing the processor --------------------------------------------------------


@pytest.mark.no_db
class TestMode:
    def test_auto_without_a_celery_app_is_inline(self, celery_conf):
        assert not webhook_dispatch.celery_broker_configured()
        assert webhook_dispatch.processing_mode() == "inline"

    def test_auto_with_a_broker_or_eager_tasks_is_celery(self, celery_conf):
        celery_conf.broker_url = "redis://127.0.0.1:6379/0"
        assert webhook_dispatch.processing_mode() == "celery"
        celery_conf.broker_url = None
        celery_conf.task_always_eager = True
        assert webhook_dispatch.processing_mode() == "celery"

    def test_explicit_setting_wins(self, celery_conf, settings):
        set_processing(settings, "celery")
        assert webhook_dispatch.processing_mode() == "celery"
        celery_conf.broker_url = "redis://127.0.0.1:6379/0"
        set_processing(settings, "inline")
        assert webhook_dispatch.processing_mode() == "inline"


@pytest.mark.django_db
class TestBrokerCheck:
    def test_celery_without_a_broker_warns(self, celery_conf, settings):
        set_processing(settings, "celery")
        assert "pluginlab.W101" in check_ids()

    def test_celery_with_a_broker_is_fine(self, celery_conf, settings):
        set_processing(settings, "celery")
        celery_conf.broker_url = "redis://127.0.0.1:6379/0"
        assert "pluginlab.W101" not in check_ids()

    def test_auto_without_a_broker_is_fine_it_processes_inline(self, celery_conf, settings):
        set_processing(settings, "auto")
        assert not {"pluginlab.W101", "pluginlab.E101"} & check_ids()

    def test_unknown_value_is_an_error(self, settings):
        set_processing(settings, "Celery")
        assert "pluginlab.E005" in check_ids()  # the settings validation names the key


# Without a broker --------------------------------------------------------------


@pytest.mark.django_db
class TestWithoutABroker:
    def test_delivery_is_processed_inline(self, celery_conf, webhook_client, sandbox):
        """No Celery app at all (a new site): the mirror still follows."""
        member_id = sandbox.member_ids()[0]
        sandbox.set_webhook_url(None)
        sandbox.update_member(member_id, name="Inline Ada")
        member = sandbox.get_member(member_id)
        body = json.dumps(
            {
                "event": "member.updated",
                "deliveryId": "dlv_inline_1",
                "createdAtMs": member["updatedAtMs"],
                "data": {"member": {"id": member_id}},
            }
        ).encode()
        headers = signed_headers(
            body, secret=sandbox.webhook_secret, event="member.updated", delivery_id="dlv_inline_1"
        )
        assert post(webhook_client, body, headers).status_code == 200
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == Status.PROCESSED, delivery.error
        assert delivery.queued_at is None
        assert Member.objects.get(remote_id=member_id).name == "Inline Ada"

    def test_inline_handler_failure_is_recorded_and_still_2xx(
        self, celery_conf, webhook_client, webhook_secret
    ):
        with SignalRecorder(signals.webhook_received, raises=RuntimeError("boom")):
            assert deliver(webhook_client).status_code == 200
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.error) == (Status.FAILED, "RuntimeError: boom")


@pytest.mark.django_db
class TestBrokerDown:
    def test_unqueued_delivery_stays_received_then_the_sweeper_processes_it(
        self, celery_conf, webhook_client, webhook_secret, settings, caplog
    ):
        set_processing(settings, "celery")
        celery_conf.broker_url = DEAD_BROKER
        with caplog.at_level("ERROR", logger="pluginlab_django.webhooks"):
            response = deliver(webhook_client)
        assert response.status_code == 200
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.queued_at) == (Status.RECEIVED, None)
        assert "Could not queue" in caplog.text
        # Within the grace it is left alone (inline processing may be running).
        assert not webhook_dispatch.stuck_deliveries().exists()

        later = delivery.received_at + timedelta(seconds=61)
        celery_conf.task_always_eager = True  # the broker is back (eager stands in)
        assert webhook_dispatch.sweep_stuck_deliveries(now=later) == 1
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (Status.IGNORED, 1)
        assert delivery.queued_at == later


@pytest.mark.django_db
class TestSweeper:
    def test_what_is_stuck(self, settings):
        settings.PLUGINLAB = {**settings.PLUGINLAB, "WEBHOOK_CLAIM_TIMEOUT_SECONDS": 600}
        now = timezone.now()
        old = now - timedelta(seconds=601)
        unqueued = stored_delivery(received_at=now - timedelta(seconds=61))
        lost_task = stored_delivery(received_at=old, queued_at=old)
        dead_worker = stored_delivery(Status.PROCESSING, claimed_at=old, received_at=old)
        # Not stuck:
        stored_delivery(received_at=now)  # just arrived
        stored_delivery(received_at=old, queued_at=now - timedelta(seconds=30))  # queued
        stored_delivery(Status.PROCESSING, claimed_at=now, received_at=old)  # running
        stored_delivery(Status.FAILED, received_at=old)  # Celery retries those
        stored_delivery(Status.PROCESSED, received_at=old, processed_at=old)
        stuck = set(webhook_dispatch.stuck_deliveries(now).values_list("pk", flat=True))
        assert stuck == {unqueued.pk, lost_task.pk, dead_worker.pk}

    def test_sweeper_task_processes_them_once(self, celery_eager):
        old = timezone.now() - timedelta(hours=1)
        stuck = [stored_delivery(received_at=old) for _ in range(3)]
        with SignalRecorder(signals.webhook_received) as received:
            assert sweep_webhook_deliveries.delay().get() == 3
            assert sweep_webhook_deliveries.delay().get() == 0
        assert len(received.calls) == 3
        for delivery in stuck:
            delivery.refresh_from_db()
            assert (delivery.status, delivery.attempts) == (Status.IGNORED, 1)

    def test_in_the_default_beat_schedule(self):
        entry = DEFAULT_BEAT_SCHEDULE["pluginlab-sweep-webhook-deliveries"]
        assert entry["task"] == sweep_webhook_deliveries.name
        assert entry["schedule"] <= 600


# pluginlab_webhooks ------------------------------------------------------------


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("pluginlab_webhooks", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
class TestCommand:
    def test_reprocess_takes_what_is_waiting(self, celery_conf):
        waiting = stored_delivery()
        failed = stored_delivery(Status.FAILED)
        done = stored_delivery(Status.PROCESSED, processed_at=timezone.now())
        out, _ = run("reprocess")
        assert out.strip() == (
            "1 deliveries selected: 0 processed, 1 ignored, 0 failed, 0 skipped, 0 queued."
        )
        waiting.refresh_from_db()
        failed.refresh_from_db()
        assert waiting.status == Status.IGNORED and failed.status == Status.FAILED
        assert WebhookDelivery.objects.get(pk=done.pk).attempts == 0

    def test_failed_event_and_since_filters(self, celery_conf):
        old = timezone.now() - timedelta(days=3)
        failed_old = stored_delivery(Status.FAILED, received_at=old)
        failed_new = stored_delivery(Status.FAILED)
        other = stored_delivery(Status.FAILED)
        WebhookDelivery.objects.filter(pk=other.pk).update(event="other.event")
        since = (timezone.now() - timedelta(days=1)).date().isoformat()
        out, _ = run("reprocess", "--failed", "--event", "test.unknown", "--since", since, "--json")
        assert json.loads(out) == {
            "selected": 1,
            "processed": 0,
            "ignored": 1,
            "failed": 0,
            "skipped": 0,
            "queued": 0,
            "failures": [],
        }
        statuses = dict(WebhookDelivery.objects.values_list("pk", "status"))
        assert statuses[failed_new.pk] == Status.IGNORED
        assert statuses[failed_old.pk] == statuses[other.pk] == Status.FAILED

    def test_one_delivery_by_id_even_ignored(self, celery_conf):
        ignored = stored_delivery(Status.IGNORED)
        with SignalRecorder(signals.webhook_event("test.unknown")):
            out, _ = run("reprocess", "--id", ignored.delivery_id)
        assert "1 processed" in out
        with pytest.raises(CommandError, match="No stored delivery has the id 'nope'"):
            run("reprocess", "--id", "nope")

    def test_a_failure_exits_1_with_its_error(self, celery_conf):
        delivery = stored_delivery()
        with (
            SignalRecorder(signals.webhook_received, raises=RuntimeError("still broken")),
            pytest.raises(CommandError) as info,
        ):
            out, err = StringIO(), StringIO()
            call_command("pluginlab_webhooks", "reprocess", stdout=out, stderr=err)
        assert info.value.returncode == 1
        assert f"{delivery.delivery_id}: RuntimeError: still broken" in err.getvalue()
        assert "1 failed" in out.getvalue()

    def test_queue_hands_them_to_celery(self, celery_conf):
        celery_conf.task_always_eager = True
        delivery = stored_delivery()
        out, _ = run("reprocess", "--queue")
        assert "1 queued" in out
        delivery.refresh_from_db()
        assert delivery.status == Status.IGNORED and delivery.queued_at is not None

    def test_bad_since_is_a_sentence(self):
        with pytest.raises(CommandError, match="--since 'last tuesday' is not a date"):
            run("reprocess", "--since", "last tuesday")

    def test_prune(self):
        old = timezone.now() - timedelta(days=40)
        stored_delivery(Status.PROCESSED, processed_at=old)
        kept = stored_delivery(Status.FAILED, received_at=old)
        out, _ = run("prune")
        assert out.strip() == (
            "Pruned 1 processed or ignored deliveries finished more than 30 days ago."
        )
        assert json.loads(run("prune", "--older-than", "0", "--json")[0]) == {
            "deleted": 0,
            "olderThanDays": 0,
        }
        assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [kept.pk]


# LoginRequiredMiddleware (Django 5.1+) --------------------------------------------


def _plain_view(request):
    return HttpResponse("a page for logged-in users")


urlpatterns = [
    path("plain/", _plain_view),
    path("pluginlab/", include("pluginlab_django.urls")),
]


@pytest.mark.skipif(django.VERSION < (5, 1), reason="LoginRequiredMiddleware is Django 5.1+")
@pytest.mark.django_db
def test_receiver_answers_under_login_required_middleware(settings, celery_conf, webhook_secret):
    settings.ROOT_URLCONF = __name__
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    webhook_client = OnCommitClient()
    # The middleware is on: a view without the exemption is sent to log in.
    assert webhook_client.get("/plain/").status_code == 302
    body, delivery_id = make_body()
    response = post(webhook_client, body, signed_headers(body, delivery_id=delivery_id))
    assert response.status_code == 200
    assert WebhookDelivery.objects.get().delivery_id == delivery_id
