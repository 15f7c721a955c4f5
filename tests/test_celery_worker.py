"""A fanned-out quota snapshot through a real Celery worker on a real Redis.

The worker (``celery -A tests.celery_app worker``, prefork, concurrency 2) is
a separate process, so it must see the test database:

- PostgreSQL (``DATABASE_URL`` set): the worker gets ``DATABASE_URL`` pointing
  at pytest-django's test database (``test_…``) on the same server;
- SQLite in a file (``PLUGINLAB_TEST_SQLITE`` set): the worker gets the same
  file;
- SQLite in memory (the default): no other process can see it, so this test
  re-runs itself in a child pytest with ``PLUGINLAB_TEST_SQLITE`` pointing
  at a temporary file, and passes or fails with it.

``transactional_db`` makes the rows the test writes visible to the worker
(committed) and flushes them afterwards. Without ``redis-server`` the test is
skipped — except under ``CI``, where it fails.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from pluginlab_django import sync
from pluginlab_django.clients import get_pluginlab_client
from pluginlab_django.models import Member, QuotaSnapshot, SyncRun
from pluginlab_django.testing import Sandbox
from tests.celery_worker import in_memory_sqlite, rerun_with_a_file_database, running_worker

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
MEMBERS = 300
CHUNK_SIZE = 60  # 300 members → 5 chunk tasks shared by 2 worker processes
#: Upper bound on waiting for the worker (a hang guard, not a speed assertion).
DEADLINE_SECONDS = 240


def _quota_runs_done() -> bool:
    runs = SyncRun.objects.filter(kind=SyncRun.Kind.QUOTAS)
    return (
        not Member.objects.filter(latest_quota__isnull=True).exists()
        and runs.exists()
        and not runs.filter(status=SyncRun.Status.RUNNING).exists()
    )


def test_fanned_out_quota_snapshot_completes_through_a_real_worker(
    request, transactional_db, settings, redis_url, tmp_path
):
    if in_memory_sqlite():
        rerun_with_a_file_database(request, tmp_path)
        return

    with Sandbox(members=MEMBERS, seed=3) as sb:
        pluginlab = {**settings.PLUGINLAB, **sb.pluginlab_settings(), "SYNC_CHUNK_SIZE": CHUNK_SIZE}
        settings.PLUGINLAB = pluginlab
        seeded = sync.sync_members()
        assert seeded.status == SyncRun.Status.SUCCEEDED, seeded.error
        assert Member.objects.count() == MEMBERS

        log_path = tmp_path / "worker.log"
        with running_worker(pluginlab, redis_url, log_path) as (client, worker):
            client.send_task("pluginlab_django.tasks.snapshot_quotas_task")
            deadline = time.monotonic() + DEADLINE_SECONDS
            while not _quota_runs_done():
                assert worker.poll() is None, f"worker died:\n{log_path.read_text()[-4000:]}"
                assert time.monotonic() < deadline, (
                    f"quota snapshots incomplete after {DEADLINE_SECONDS}s:\n"
                    f"{log_path.read_text()[-4000:]}"
                )
                time.sleep(0.5)

        # Every member got exactly one snapshot, matching PluginLab's figures.
        assert QuotaSnapshot.objects.count() == MEMBERS
        assert not Member.objects.filter(latest_quota__isnull=True).exists()
        client_api = get_pluginlab_client()
        for member in Member.objects.select_related("latest_quota").order_by("pk")[:5]:
            usage = client_api.get_quota_usage(member.remote_id)
            assert member.latest_quota.usage_count == usage.usage_count
            assert member.latest_quota.usage_limit == usage.usage_limit
        # ... spread over several chunk tasks, each recorded by its own run.
        runs = list(SyncRun.objects.filter(kind=SyncRun.Kind.QUOTAS))
        assert len(runs) == MEMBERS // CHUNK_SIZE > 1
        assert {run.status for run in runs} == {SyncRun.Status.SUCCEEDED}
        assert sum(run.created for run in runs) == MEMBERS
        assert all(run.created == CHUNK_SIZE for run in runs)
        assert "snapshot_quotas_task" in log_path.read_text()


def test_sweeper_requeues_a_delivery_stored_while_the_broker_was_down(
    request, transactional_db, settings, redis_url, tmp_path
):
    """Broker down when the delivery arrives: stored, answered 2xx, left
    ``received`` with nothing queued; once the broker and a worker are up, the
    beat schedule's sweeper re-queues it and the worker processes it, once."""
    if in_memory_sqlite():
        rerun_with_a_file_database(request, tmp_path)
        return

    from celery import current_app
    from django.test import Client

    from pluginlab_django.models import WebhookDelivery
    from pluginlab_django.schedules import DEFAULT_BEAT_SCHEDULE
    from tests.webhook_deliveries import signed_headers

    with Sandbox(members=5, seed=4) as sb:
        pluginlab = {
            **settings.PLUGINLAB,
            **sb.pluginlab_settings(),
            "WEBHOOK_PROCESSING": "celery",
        }
        settings.PLUGINLAB = pluginlab
        member_id = sb.member_ids()[0]
        sb.update_member(member_id, name="Swept Ada")
        body = json.dumps(
            {
                "event": "member.updated",
                "deliveryId": "dlv_broker_down",
                "createdAtMs": int(time.time() * 1000),
                "data": {"member": {"id": member_id}},
            }
        ).encode()
        headers = signed_headers(
            body, secret=sb.webhook_secret, event="member.updated", delivery_id="dlv_broker_down"
        )
        conf = current_app.conf
        saved = (conf.broker_url, conf.task_always_eager)
        conf.broker_url, conf.task_always_eager = "redis://127.0.0.1:1/0", False  # down
        try:
            response = Client().post(
                "/pluginlab/webhook/", data=body, content_type="application/json", headers=headers
            )
        finally:
            conf.broker_url, conf.task_always_eager = saved
        assert response.status_code == 200
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.queued_at) == (WebhookDelivery.Status.RECEIVED, None)
        assert not Member.objects.filter(remote_id=member_id).exists()
        # Past the sweeper's grace for deliveries nothing was queued for.
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            received_at=delivery.received_at - timedelta(seconds=120)
        )

        log_path = tmp_path / "worker.log"
        with running_worker(pluginlab, redis_url, log_path) as (client, worker):
            client.send_task(DEFAULT_BEAT_SCHEDULE["pluginlab-sweep-webhook-deliveries"]["task"])
            deadline = time.monotonic() + DEADLINE_SECONDS
            while WebhookDelivery.objects.get().status != WebhookDelivery.Status.PROCESSED:
                assert worker.poll() is None, f"worker died:\n{log_path.read_text()[-4000:]}"
                assert time.monotonic() < deadline, (
                    f"delivery not processed after {DEADLINE_SECONDS}s:\n"
                    f"{log_path.read_text()[-4000:]}"
                )
                time.sleep(0.2)

        delivery = WebhookDelivery.objects.get()
        assert delivery.attempts == 1 and delivery.queued_at is not None
        assert Member.objects.get(remote_id=member_id).name == "Swept Ada"
        log = log_path.read_text()
        assert "sweep_webhook_deliveries" in log and "process_webhook_delivery" in log
