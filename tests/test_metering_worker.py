"""The outbox through a real Celery worker on a real Redis: metered calls are
sent by the worker after commit, and a worker killed mid-send leaves its
event ``sending``, reported and never resent.

Uses the worker of ``tests.celery_worker`` (the worker sees the test
database: PostgreSQL's ``test_…`` database or the SQLite file).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from celery import Celery
from django.urls import reverse
from rest_framework.test import APIClient

from pluginlab_django import sync
from pluginlab_django.clients import get_pluginlab_client
from pluginlab_django.models import CustomEvent
from pluginlab_django.services import events as event_service
from pluginlab_django.services import outbox
from pluginlab_django.services.events import outbox_health, record_usage
from pluginlab_django.tasks import send_pending_events
from tests.celery_worker import in_memory_sqlite, running_worker

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.slow,
    pytest.mark.usefixtures("fresh_verifier"),
]
EVENT_PATH = "/event/events/create-custom"
DEADLINE_SECONDS = 120


TASK = "pluginlab_django.tasks.events.send_pending_events"


@pytest.fixture
def worker(
    transactional_db,
    settings,
    sandbox,
    redis_url,
    tmp_path,
    monkeypatch,
) -> Iterator[Celery]:
    """A worker process on ``redis_url``. The after-commit kick of recorded
    uses enqueues the send task there through a client app, leaving this
    process's default Celery app (eager, for the other tests) untouched."""
    if in_memory_sqlite():
        pytest.skip("needs a database the worker process can see (a file or PostgreSQL)")
    log_path = tmp_path / "worker.log"
    with running_worker(settings.PLUGINLAB, redis_url, log_path) as (client, process):
        monkeypatch.setattr(
            event_service, "kick_sender", lambda: client.send_task(TASK, countdown=0.2)
        )
        client.process, client.log_path = process, log_path
        yield client


def wait_until(condition, worker, what: str, *, alive: bool = True) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if alive:
            assert worker.process.poll() is None, worker.log_path.read_text()[-4000:]
        assert time.monotonic() < deadline, f"{what}:\n{worker.log_path.read_text()[-4000:]}"
        time.sleep(0.2)


def test_n_metered_calls_are_sent_by_the_worker_exactly_once(sandbox, worker):
    member_id = sandbox.member_ids()[0]
    sync.sync_member(member_id)
    start = get_pluginlab_client().get_quota_usage(member_id).usage_count
    token = sandbox.mint_token(member_id)
    client = APIClient()
    n = 25
    for _ in range(n):
        response = client.get(reverse("metering-drf"), HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200
    # The requests only wrote rows and enqueued; the worker sends them.
    wait_until(
        lambda: CustomEvent.objects.filter(status="sent").count() == n,
        worker,
        "the worker did not send every event",
    )
    assert get_pluginlab_client().get_quota_usage(member_id).usage_count == start + n
    assert sandbox.request_count(EVENT_PATH) == n
    assert "send_pending_events" in worker.log_path.read_text()


def test_a_worker_killed_mid_send_leaves_the_event_sending_reported_not_resent(
    sandbox, worker, settings
):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "EVENT_SENDING_STALE_SECONDS": 1}
    first, other = sandbox.member_ids()[:2]
    # The first POST to the event API hangs: the worker is killed inside it.
    start = get_pluginlab_client().get_quota_usage(first).usage_count
    sandbox.set_faults(path_prefix="/event", latency_ms=5_000, count=1)
    stuck = record_usage(first, "API")
    wait_until(
        lambda: (
            CustomEvent.objects.filter(pk=stuck.pk, status="sending").exists()
            and sandbox.request_count(EVENT_PATH) == 1
        ),
        worker,
        "the worker never claimed the event",
    )
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)
    # The POST had reached PluginLab: it counts the event although nobody
    # heard the answer — which is why a "sending" event is never resent.
    wait_until(
        lambda: get_pluginlab_client().get_quota_usage(first).usage_count == start + 1,
        worker,
        "the sandbox never finished the hung request",
        alive=False,
    )

    later = [record_usage(other, "API") for _ in range(3)]
    time.sleep(1.2)  # past EVENT_SENDING_STALE_SECONDS
    summary = send_pending_events.apply().get()  # what the periodic task runs
    assert (summary["sent"], summary["still_pending"]) == (3, 0)
    stuck.refresh_from_db()
    assert stuck.status == "sending"  # not resent
    assert sandbox.request_count(EVENT_PATH) == 1 + len(later)
    health = outbox_health()
    assert (health.sending, health.stuck_sending) == (1, 1)
    assert health.warnings and "died mid-send" in health.warnings[0]
    assert outbox.send_pending().sent == 0  # and never by a later run either
