"""The CustomEvent outbox: sent after commit, at most once, in order per
member, nothing lost while PluginLab's event API is down."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from pluginlab_django import sync
from pluginlab_django.clients import get_pluginlab_client
from pluginlab_django.models import CustomEvent, Member
from pluginlab_django.services import outbox
from pluginlab_django.services.events import outbox_health, record_usage
from pluginlab_django.tasks import send_pending_events

pytestmark = pytest.mark.usefixtures("fresh_verifier")
EVENT_PATH = "/event/events/create-custom"


def remote_usage(member_id: str) -> int:
    return get_pluginlab_client().get_quota_usage(member_id).usage_count


def metered_calls(sandbox, member_id: str, n: int, name: str = "metering-drf") -> None:
    client = APIClient()
    token = sandbox.mint_token(member_id)
    for _ in range(n):
        response = client.get(reverse(name), HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200, response.content


@pytest.mark.parametrize("name", ["metering-drf", "metering-plain"])
def test_n_metered_calls_raise_usage_by_exactly_n_eager(
    sandbox, transactional_db, celery_eager, name
):
    """Eager Celery: each call's commit runs the send task at once."""
    member_id = sandbox.member_ids()[0]
    sync.sync_member(member_id)
    start = remote_usage(member_id)
    metered_calls(sandbox, member_id, 7, name)
    assert remote_usage(member_id) == start + 7
    assert set(CustomEvent.objects.values_list("status", flat=True)) == {"sent"}
    assert sandbox.request_count(EVENT_PATH) == 7  # each sent once


@pytest.mark.django_db
def test_n_uses_flushed_by_hand_raise_usage_by_exactly_n(sandbox):
    ids = sandbox.member_ids()[:3]
    start = {m: remote_usage(m) for m in ids}
    for i in range(30):
        record_usage(ids[i % 3], "API")
    summary = outbox.send_pending()
    assert summary.as_dict() == {
        "sent": 30,
        "failed": 0,
        "still_pending": 0,
        "unavailable": "",
        "busy": False,
    }
    assert {m: remote_usage(m) - start[m] for m in ids} == {m: 10 for m in ids}
    assert outbox.send_pending().sent == 0  # nothing sent twice


@pytest.mark.parametrize("fault", [{"error_rate": 1.0, "error_status": 503}, {"drop_rate": 1.0}])
def test_event_api_down_calls_succeed_events_wait_then_go_once(
    sandbox, transactional_db, celery_eager, fault
):
    member_id = sandbox.member_ids()[0]
    sync.sync_member(member_id)
    start = remote_usage(member_id)
    sandbox.set_faults(path_prefix="/event", **fault)
    metered_calls(sandbox, member_id, 5)  # each commit tries to send, and fails
    assert CustomEvent.objects.filter(status="pending").count() == 5
    assert CustomEvent.objects.order_by("pk").first().error  # why it waits
    summary = send_pending_events.apply().get()  # the periodic task, still down
    assert (summary["sent"], summary["still_pending"]) == (0, 5)
    assert summary["unavailable"]
    assert remote_usage(member_id) == start

    sandbox.clear_faults()
    summary = send_pending_events.apply().get()  # PluginLab is back
    assert (summary["sent"], summary["still_pending"]) == (5, 0)
    assert remote_usage(member_id) == start + 5
    assert send_pending_events.apply().get()["sent"] == 0
    assert remote_usage(member_id) == start + 5  # exactly N, never more


@pytest.mark.django_db
def test_a_run_stops_at_the_first_unavailable_answer_keeping_member_order(sandbox):
    member_id = sandbox.member_ids()[0]
    events = [record_usage(member_id, f"E{i}") for i in range(4)]
    sandbox.set_faults(path_prefix="/event", error_rate=1.0, error_status=503, count=1)
    summary = outbox.send_pending()
    assert (summary.sent, summary.still_pending) == (0, 4)  # nothing overtook event 0
    assert sandbox.request_count(EVENT_PATH) == 1
    assert outbox.send_pending().sent == 4
    sent = CustomEvent.objects.filter(pk__in=[e.pk for e in events]).order_by("sent_at", "pk")
    assert [e.pk for e in sent] == [e.pk for e in events]
    assert [e.attempts for e in sent] == [2, 1, 1, 1]


@pytest.mark.django_db
def test_a_refused_event_is_failed_with_pluginlabs_message_and_the_rest_go(sandbox):
    member_id = sandbox.member_ids()[0]
    bad = CustomEvent.objects.create(
        member_remote_id=member_id, event_source="API", country_code="U1"
    )  # fmt: skip  (bypasses validation)
    unknown = record_usage("mem_" + "0" * 40, "API")
    good = record_usage(member_id, "API")
    summary = outbox.send_pending()
    assert (summary.sent, summary.failed, summary.still_pending) == (1, 2, 0)
    bad.refresh_from_db()
    assert bad.status == "failed"
    assert "400" in bad.error and "two-letter" in bad.error  # PluginLab's own message
    unknown.refresh_from_db()
    assert unknown.status == "failed" and "404" in unknown.error
    good.refresh_from_db()
    assert good.status == "sent" and good.sent_at is not None


@pytest.mark.django_db
def test_an_event_left_sending_is_reported_and_never_resent(sandbox, settings):
    member_id = sandbox.member_ids()[0]
    stuck = record_usage(member_id, "API")
    CustomEvent.objects.filter(pk=stuck.pk).update(
        status="sending", claimed_at=timezone.now() - timedelta(hours=1)
    )
    fresh = record_usage(member_id, "API")
    assert outbox.send_pending().sent == 1
    stuck.refresh_from_db()
    assert stuck.status == "sending"
    assert sandbox.request_count(EVENT_PATH) == 1  # only the fresh one
    health = outbox_health()
    assert (health.pending, health.sending, health.stuck_sending) == (0, 1, 1)
    assert "died mid-send" in health.warnings[0]
    assert fresh.pk not in [stuck.pk]

    assert outbox.resend(CustomEvent.objects.filter(pk=stuck.pk)) == 1  # the admin's call
    assert outbox.send_pending().sent == 1
    assert outbox_health().stuck_sending == 0


@pytest.mark.django_db
def test_a_recent_claim_is_sending_but_not_yet_stuck(sandbox):
    event = record_usage(sandbox.member_ids()[0], "API")
    CustomEvent.objects.filter(pk=event.pk).update(status="sending", claimed_at=timezone.now())
    health = outbox_health()
    assert (health.sending, health.stuck_sending, health.warnings) == (1, 0, [])
    assert health.as_dict()["stale_after_seconds"] == 300


@pytest.mark.django_db(transaction=True)
def test_only_one_sender_at_a_time(sandbox):
    """Another sender (a thread: its own database connection) holds the lock."""
    import threading

    from django.db import connection

    # Written directly: record_usage's after-commit kick would send it at once.
    CustomEvent.objects.create(member_remote_id=sandbox.member_ids()[0], event_source="API")
    held, release = threading.Event(), threading.Event()

    def other_sender():
        try:
            with outbox.sender_lock() as acquired:
                assert acquired
                held.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_sender)
    thread.start()
    try:
        assert held.wait(10)
        summary = outbox.send_pending()
    finally:
        release.set()
        thread.join(10)
    assert summary.busy and summary.sent == 0 and summary.still_pending == 1
    assert outbox.send_pending().sent == 1


@pytest.mark.django_db
def test_old_pending_events_are_warned_about(sandbox):
    event = record_usage(sandbox.member_ids()[0], "API")
    CustomEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(hours=2))
    health = outbox_health()
    assert health.pending == 1 and "waiting to be sent" in health.warnings[0]


@pytest.mark.django_db
def test_events_are_recorded_in_the_callers_transaction(sandbox):
    from django.db import transaction

    member = sync.sync_member(sandbox.member_ids()[0])
    with pytest.raises(RuntimeError), transaction.atomic():
        record_usage(member, "API")
        raise RuntimeError("the request failed")
    assert not CustomEvent.objects.exists()
    assert Member.objects.filter(pk=member.pk).exists()
