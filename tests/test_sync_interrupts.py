"""Ctrl-C, SIGTERM and SIGKILL during a real ``manage.py pluginlab_sync members``.

The command runs as a subprocess on the test's own database (SQLite file or
PostgreSQL, see ``tests.subprocess_env``) against a sandbox that adds latency
to every request, so the signal lands mid-run. After the interruption,
``--resume`` and then a full run must leave the mirror identical to a clean
run's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import IntegrityError
from django.utils import timezone

from pluginlab_django import sync
from pluginlab_django.models import Member, SyncRun
from pluginlab_django.sync.runs import SyncRunTakenOver, save_progress, start_exclusive_run
from pluginlab_django.testing import Sandbox
from tests.celery_worker import client_app, start_worker, stop_worker, wait_until_ready, worker_env
from tests.subprocess_env import subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
MEMBERS = 300
PAGE_SIZE = 10
PAGES = MEMBERS // PAGE_SIZE
LATENCY_MS = 60
#: Hang guards, not speed assertions.
DEADLINE_SECONDS = 120
Status = SyncRun.Status


@pytest.fixture(scope="module")
def big_sandbox():
    with Sandbox(members=MEMBERS, seed=7) as sb:
        yield sb


@pytest.fixture
def pluginlab(big_sandbox, settings):
    big_sandbox.reset()
    big_sandbox.set_faults(latency_ms=LATENCY_MS)
    settings.PLUGINLAB = {**settings.PLUGINLAB, **big_sandbox.pluginlab_settings()}
    yield settings.PLUGINLAB
    big_sandbox.clear_faults()


COMMAND = [sys.executable, "manage.py", "pluginlab_sync", "members", "--page-size", str(PAGE_SIZE)]


def start_sync(pluginlab: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*COMMAND, *args],
        cwd=REPO,
        env=subprocess_env(pluginlab),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as under a supervisor
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"pluginlab_sync hung:\n{out}\n{err}") from None
    return process.returncode, out, err


def run_sync(pluginlab: dict, *args: str) -> tuple[int, str, str]:
    return finish(start_sync(pluginlab, *args))


def wait_for_pages(process: subprocess.Popen, pages: int) -> SyncRun:
    """The running members run once it stored ``pages`` pages."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"pluginlab_sync ended early ({process.returncode}):\n{out}{err}")
        run = SyncRun.objects.filter(kind=SyncRun.Kind.MEMBERS, status=Status.RUNNING).first()
        if run is not None and run.pages >= pages:
            return run
        time.sleep(0.02)
    raise AssertionError("the sync never got going")


def mirror() -> list[tuple]:
    """The mirrored rows, minus what differs between any two runs (when)."""
    return list(
        Member.objects.order_by("remote_id").values_list(
            "remote_id",
            "email",
            "name",
            "given_name",
            "family_name",
            "is_verified",
            "custom_fields",
            "metadata",
            "remote_updated_at_ms",
            "remote_data",
            "deleted_remotely_at",
        )
    )


def clean_mirror() -> list[tuple]:
    """What a clean, uninterrupted run mirrors (in this process, no latency)."""
    Member.objects.all().delete()
    SyncRun.objects.all().delete()
    run = sync.sync_members(page_size=PAGE_SIZE)
    assert run.status == Status.SUCCEEDED, run.error
    return mirror()


def resume_then_full_run(pluginlab: dict, interrupted: SyncRun) -> None:
    code, out, err = run_sync(pluginlab, "--resume")
    assert code == 0, out + err
    resumed = SyncRun.objects.latest()
    assert resumed.status == Status.SUCCEEDED and not resumed.complete
    # It continued from the cursor: only the pages not stored before.
    assert resumed.pages == PAGES - interrupted.pages
    assert resumed.created == MEMBERS - interrupted.created
    assert Member.objects.count() == MEMBERS

    code, out, err = run_sync(pluginlab)
    assert code == 0, out + err
    full = SyncRun.objects.latest()
    assert full.status == Status.SUCCEEDED and full.complete
    assert full.created == 0 and full.marked_deleted == 0


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (signal.SIGINT, None),  # Ctrl-C
        (signal.SIGTERM, None),  # a deploy stopping the process
        # A supervisor and the process group both deliver one.
        (signal.SIGTERM, signal.SIGTERM),
        (signal.SIGINT, signal.SIGTERM),
    ],
    ids=["ctrl-c", "sigterm", "sigterm-twice", "ctrl-c-then-sigterm"],
)
def test_a_signal_ends_the_run_failed_with_its_cursor_and_frees_the_lock(pluginlab, first, second):
    process = start_sync(pluginlab)
    wait_for_pages(process, 3)
    process.send_signal(first)
    if second is not None:
        time.sleep(0.005)
        os.killpg(process.pid, second)
    code, out, err = finish(process)

    assert code == 128 + first, out + err
    assert "Traceback" not in err, err
    assert "--resume" in err
    interrupted = SyncRun.objects.get(kind=SyncRun.Kind.MEMBERS)
    assert interrupted.status == Status.FAILED, interrupted.error
    assert f"Interrupted by {signal.Signals(first).name}" in interrupted.error
    assert interrupted.finished_at is not None
    assert 3 <= interrupted.pages < PAGES
    assert interrupted.cursor  # the last stored page's token
    assert Member.objects.count() == interrupted.created == interrupted.pages * PAGE_SIZE
    assert "failed (sync run" in out  # the summary was printed
    # The lock is free at once: no run is left running.
    assert not SyncRun.objects.filter(status=Status.RUNNING).exists()

    resume_then_full_run(pluginlab, interrupted)
    after = mirror()
    assert after == clean_mirror()


def test_sigkill_is_detected_by_the_heartbeat_not_the_lock_timeout(pluginlab):
    process = start_sync(pluginlab)
    early = wait_for_pages(process, 2)
    later = wait_for_pages(process, early.pages + 2)
    assert later.heartbeat_at > early.heartbeat_at  # refreshed as pages are stored
    process.send_signal(signal.SIGKILL)
    code, _out, _err = finish(process)
    assert code == -signal.SIGKILL

    killed = SyncRun.objects.get(kind=SyncRun.Kind.MEMBERS)
    assert killed.status == Status.RUNNING  # nobody could clean up
    # While the heartbeat is fresh the lock holds.
    with pytest.raises(sync.SyncAlreadyRunning):
        sync.sync_members()
    code, out, err = run_sync(pluginlab, "--resume")
    assert code == 1 and "already running" in err, out + err
    assert "Traceback" not in err

    # SYNC_HEARTBEAT_TIMEOUT (120 s) later, far short of SYNC_LOCK_TIMEOUT:
    SyncRun.objects.filter(pk=killed.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=121),
        started_at=timezone.now() - timedelta(seconds=200),
    )
    killed.refresh_from_db()
    code, out, err = run_sync(pluginlab, "--resume")
    assert code == 0, out + err
    killed.refresh_from_db()
    assert killed.status == Status.FAILED and "no heartbeat" in killed.error
    resumed = SyncRun.objects.latest()
    assert resumed.status == Status.SUCCEEDED and not resumed.complete
    assert resumed.pages == PAGES - killed.pages  # from the killed run's cursor

    code, out, err = run_sync(pluginlab)
    assert code == 0, out + err
    assert mirror() == clean_mirror()


def test_a_fresh_heartbeat_keeps_the_lock_whatever_the_start(settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "SYNC_HEARTBEAT_TIMEOUT": 120}
    SyncRun.objects.create(
        kind=SyncRun.Kind.MEMBERS,
        status=Status.RUNNING,
        started_at=timezone.now() - timedelta(minutes=30),
        heartbeat_at=timezone.now() - timedelta(seconds=30),
    )
    with pytest.raises(sync.SyncAlreadyRunning):
        start_exclusive_run(SyncRun.Kind.MEMBERS)


def test_an_insert_refused_with_no_lock_holder_raises_the_databases_error(monkeypatch):
    """Not the lock (no run is running): the IntegrityError itself, after the
    retries, not a crash naming a holder that does not exist."""
    from pluginlab_django.sync import runs

    attempts = []

    def refused(kind, **fields):
        attempts.append(kind)
        raise IntegrityError("null value in column violates not-null constraint")

    monkeypatch.setattr(runs, "start_run", refused)
    with pytest.raises(IntegrityError, match="not-null"):
        start_exclusive_run(SyncRun.Kind.MEMBERS)
    assert len(attempts) == 3
    assert not SyncRun.objects.exists()


def test_a_run_taken_over_stops_writing_progress(settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "SYNC_HEARTBEAT_TIMEOUT": 120}
    slow = start_exclusive_run(SyncRun.Kind.MEMBERS)
    SyncRun.objects.filter(pk=slow.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    taker = start_exclusive_run(SyncRun.Kind.MEMBERS)
    slow.pages = 5
    with pytest.raises(SyncRunTakenOver):
        save_progress(slow)
    # Its late outcome does not overwrite the takeover nor steal the lock.
    sync.runs.finish_run(slow)
    slow.refresh_from_db()
    assert slow.status == Status.FAILED and slow.pages == 0
    taker.refresh_from_db()
    assert taker.status == Status.RUNNING


def test_a_worker_shutdown_interrupts_the_members_task(pluginlab, settings, celery_eager):
    from celery.signals import worker_shutting_down
    from django.db import connection

    from pluginlab_django import tasks

    settings.PLUGINLAB = {**pluginlab, "SYNC_PAGE_SIZE": PAGE_SIZE}

    def shut_down_when_going() -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        try:
            while not SyncRun.objects.filter(status=Status.RUNNING, pages__gte=2).exists():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
            worker_shutting_down.send(sender="test-worker", sig="SIGTERM", how="Warm", exitcode=0)
        finally:
            connection.close()

    watcher = threading.Thread(target=shut_down_when_going)
    watcher.start()
    try:
        summary = tasks.sync_members_task.delay().get()
    finally:
        watcher.join()
    assert summary["status"] == Status.FAILED
    assert "Interrupted by SIGTERM" in summary["error"]
    run = SyncRun.objects.get(pk=summary["sync_run"])
    assert run.cursor and 2 <= run.pages < PAGES
    assert not SyncRun.objects.filter(status=Status.RUNNING).exists()


# A real Celery worker (prefork) stopped by SIGTERM to its process group ------


@pytest.mark.celery_worker
def test_a_worker_stopped_mid_sync_requeues_it_and_the_next_worker_resumes(
    pluginlab, redis_url, tmp_path
):
    env = worker_env({**pluginlab, "SYNC_PAGE_SIZE": PAGE_SIZE}, redis_url)
    log_path = tmp_path / "worker.log"
    client = client_app(redis_url)
    first = start_worker(env, log_path, name=f"first-{os.getpid()}", concurrency=1)
    try:
        wait_until_ready(client, first, log_path)
        client.send_task("pluginlab_django.tasks.sync_members_task")
        wait_for_pages(first, 3)
        os.killpg(first.pid, signal.SIGTERM)  # as docker stop / systemd do
        first.wait(60)
    finally:
        stop_worker(first, whole_group=True, grace=60)
    interrupted = SyncRun.objects.get(kind=SyncRun.Kind.MEMBERS)
    log = log_path.read_text()
    assert interrupted.status == Status.FAILED, log[-4000:]
    assert "Interrupted by SIGTERM" in interrupted.error
    assert interrupted.cursor and interrupted.pages < PAGES
    assert not SyncRun.objects.filter(status=Status.RUNNING).exists()

    second = start_worker(env, log_path, name=f"second-{os.getpid()}", concurrency=1)
    try:
        wait_until_ready(client, second, log_path)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not SyncRun.objects.filter(status=Status.SUCCEEDED).exists():
            assert time.monotonic() < deadline, log_path.read_text()[-4000:]
            assert second.poll() is None, log_path.read_text()[-4000:]
            time.sleep(0.2)
    finally:
        stop_worker(second, whole_group=True, grace=60)
        client.close()
    resumed = SyncRun.objects.get(status=Status.SUCCEEDED)
    assert not resumed.complete  # the re-queued task resumed from the cursor
    assert resumed.pages == PAGES - interrupted.pages
    assert Member.objects.count() == MEMBERS
