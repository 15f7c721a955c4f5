"""Rotation with overlap end to end: the new key works at once, the old one
until its revocation is due, and the periodic task — run by a real Celery
worker on a real Redis — revokes it after (and not before).

The worker comes from ``tests.celery_worker`` (see its docstring for how the
worker process sees the test database).
"""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from pluginlab_django.clients import PlugipayError
from pluginlab_django.clients.plugipay import PlugipayClient
from pluginlab_django.models import ApiKey
from pluginlab_django.schedules import DEFAULT_BEAT_SCHEDULE
from pluginlab_django.services import apikeys as apikey_service
from pluginlab_django.testing import Sandbox
from tests.celery_worker import in_memory_sqlite, rerun_with_a_file_database, running_worker

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]

TASK = "pluginlab_django.tasks.revoke_due_api_keys_task"
OVERLAP_SECONDS = 8
DEADLINE_SECONDS = 120  # a hang guard, not a speed assertion


def _wait_for_runs(log_path, count: int, worker) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while log_path.read_text().count(f"Task {TASK}[") < count or (
        log_path.read_text().count("succeeded in") < count
    ):
        assert worker.poll() is None, f"worker died:\n{log_path.read_text()[-4000:]}"
        assert time.monotonic() < deadline, log_path.read_text()[-4000:]
        time.sleep(0.2)


def _works(sb: Sandbox, key_id: str, secret: str) -> bool:
    client = PlugipayClient(key_id=key_id, secret=secret, base_url=f"{sb.url}/plugipay")
    try:
        client.list_api_keys()
    except PlugipayError as exc:
        assert exc.code == "key_revoked", exc
        return False
    return True


@pytest.mark.no_db
def test_the_revocation_task_is_in_the_default_beat_schedule():
    assert TASK in {entry["task"] for entry in DEFAULT_BEAT_SCHEDULE.values()}


def test_overlap_rotation_old_key_works_until_the_worker_revokes_it(
    request,
    transactional_db,
    settings,
    redis_url,
    tmp_path,
):
    if in_memory_sqlite():
        rerun_with_a_file_database(request, tmp_path)
        return

    with Sandbox(members=1, seed=5) as sb:
        pluginlab = {**settings.PLUGINLAB, **sb.pluginlab_settings()}
        settings.PLUGINLAB = pluginlab
        old = apikey_service.create_api_key(description="billing", scope="*")

        log_path = tmp_path / "worker.log"
        with running_worker(pluginlab, redis_url, log_path) as (client, worker):
            out = io.StringIO()
            call_command(
                "pluginlab_apikeys",
                "rotate",
                old.record.key_id,
                "--overlap",
                f"{OVERLAP_SECONDS}s",
                "--json",
                stdout=out,
                stderr=io.StringIO(),
            )
            new = json.loads(out.getvalue())
            due = ApiKey.objects.get(pk=old.record.pk).revoke_scheduled_at
            assert due is not None

            # The new key works at once; the old one still works.
            assert _works(sb, new["keyId"], new["secret"])
            assert _works(sb, old.record.key_id, old.secret)

            # The periodic task before the time: nothing is revoked.
            client.send_task(TASK)
            _wait_for_runs(log_path, 1, worker)
            assert timezone.now() < due, "the overlap passed before the check: raise it"
            assert ApiKey.objects.get(pk=old.record.pk).revoked_at is None
            assert _works(sb, old.record.key_id, old.secret)

            # After the time: the worker's run revokes the old key only.
            time.sleep(max(0.0, (due - timezone.now()).total_seconds()) + 0.5)
            client.send_task(TASK)
            _wait_for_runs(log_path, 2, worker)

        row = ApiKey.objects.get(pk=old.record.pk)
        assert row.revoked_at is not None and row.revoke_scheduled_at is None
        assert sb.plugipay.records[old.record.record_id]["revokedAt"] is not None
        assert not _works(sb, old.record.key_id, old.secret)
        assert _works(sb, new["keyId"], new["secret"])
        assert "Revoked 1 API key(s) as scheduled" in log_path.read_text()
