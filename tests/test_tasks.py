"""The Celery task wrappers, run eagerly (the real worker: test_celery_worker.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from celery.exceptions import Retry
from django.utils import timezone

from pluginlab_django import tasks
from pluginlab_django.models import Member, QuotaSnapshot, SyncRun
from pluginlab_django.schedules import DEFAULT_BEAT_SCHEDULE

pytestmark = pytest.mark.django_db

Status = SyncRun.Status


@pytest.fixture(autouse=True)
def _eager(celery_eager):
    """Every test here runs tasks in-process."""


@pytest.fixture
def chunked(settings, sandbox):
    """50 sandbox members in chunks of 20: three chunk tasks."""
    settings.PLUGINLAB = {**settings.PLUGINLAB, "SYNC_CHUNK_SIZE": 20}
    return sandbox


def test_sync_members_task_returns_a_json_summary(sandbox):
    result = tasks.sync_members_task.delay().get()
    run = SyncRun.objects.get(pk=result["sync_run"])
    assert result["status"] == run.status == Status.SUCCEEDED
    assert result["created"] == Member.objects.count() == len(sandbox.member_ids())
    assert tasks.sync_members_task.acks_late


def test_sync_members_task_is_skipped_while_a_sync_runs(sandbox):
    holder = SyncRun.objects.create(kind=SyncRun.Kind.MEMBERS, status=Status.RUNNING)
    result = tasks.sync_members_task.delay().get()
    assert result == {"skipped": True, "running_sync_run": holder.pk}
    assert Member.objects.count() == 0


def test_snapshot_quotas_task_fans_out_in_chunks(chunked):
    tasks.sync_members_task.delay()
    result = tasks.snapshot_quotas_task.delay().get()
    assert result["chunks"] == 3 and result["members"] == 50
    runs = SyncRun.objects.filter(kind=SyncRun.Kind.QUOTAS)
    assert sorted(run.created for run in runs) == [10, 20, 20]
    assert not Member.objects.filter(latest_quota__isnull=True).exists()


def test_a_redelivered_quota_chunk_does_not_snapshot_twice(chunked):
    tasks.sync_members_task.delay()
    ids = list(Member.objects.order_by("pk").values_list("remote_id", flat=True)[:20])
    dispatched_at = (timezone.now() - timedelta(seconds=1)).isoformat()
    first = tasks.snapshot_quotas_task.delay(ids, dispatched_at).get()
    again = tasks.snapshot_quotas_task.delay(ids, dispatched_at).get()
    assert (first["created"], again["created"], again["unchanged"]) == (20, 0, 20)
    assert QuotaSnapshot.objects.count() == 20


def test_sync_identities_task_fans_out_and_is_idempotent(chunked):
    tasks.sync_members_task.delay()
    result = tasks.sync_identities_task.delay().get()
    assert result["chunks"] == 3
    runs = list(SyncRun.objects.filter(kind=SyncRun.Kind.IDENTITIES))
    assert len(runs) == 3 and {r.status for r in runs} == {Status.SUCCEEDED}
    created = sum(r.created for r in runs)
    assert created > 0
    tasks.sync_identities_task.delay()
    again = SyncRun.objects.filter(kind=SyncRun.Kind.IDENTITIES).exclude(
        pk__in=[r.pk for r in runs]
    )
    assert again.count() == 3
    assert sum(r.created for r in again) == 0
    assert sum(r.unchanged for r in again) == created


def test_sync_member_task(sandbox):
    member_id = sandbox.member_ids()[0]
    pk = tasks.sync_member_task.delay(member_id).get()
    assert Member.objects.get(pk=pk).remote_id == member_id
    sandbox.delete_member(member_id)
    assert tasks.sync_member_task.delay(member_id).get() == pk
    assert Member.objects.get(pk=pk).deleted_remotely_at is not None


def test_sync_api_keys_task(sandbox):
    result = tasks.sync_api_keys_task.delay().get()
    assert result["status"] == Status.SUCCEEDED


def test_an_unreachable_remote_is_reported_not_retried_when_eager(sandbox):
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth")
    result = tasks.sync_members_task.delay().get()
    assert result["status"] == Status.FAILED and result["error"]


def test_an_unreachable_remote_is_retried_with_backoff_by_a_worker(sandbox):
    """As a worker runs it (not eagerly), RemoteUnavailable schedules a retry."""
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/monetization")
    Member.objects.create(remote_id="mem_" + "1" * 40, email="one@example.com")
    task = tasks.snapshot_quotas_task
    task.push_request(retries=0, is_eager=False, id="test-retry", called_directly=False)
    try:
        with pytest.raises(Retry) as excinfo:
            task.run(["mem_" + "1" * 40])
    finally:
        task.pop_request()
    assert 30 * 0.75 <= excinfo.value.when <= 30 * 1.25


def test_the_beat_schedule_names_registered_tasks():
    registered = set(current_app.tasks)
    for entry in DEFAULT_BEAT_SCHEDULE.values():
        assert entry["task"] in registered
        assert entry["schedule"] > 0
