"""A members run's progress is written with each page, never apart from it.

On PostgreSQL the ``SyncRun`` UPDATE (counters, cursor, heartbeat) is a
second CTE of the page statement; on SQLite it follows the upsert in the
page's transaction. Either way: the recorded progress is exactly what was
stored, a page that fails leaves the cursor on the last stored page, and a
run taken over mid-walk stores nothing more.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from pluginlab_django import sync
from pluginlab_django.models import Member, SyncRun
from pluginlab_django.sync import member_upsert, members
from pluginlab_django.sync.runs import start_exclusive_run

pytestmark = pytest.mark.django_db

Status = SyncRun.Status


def tokens(page_size: int) -> list[str]:
    """The cursor after each page, as the client walks them."""
    from pluginlab_django.clients import get_pluginlab_client

    pages = get_pluginlab_client().iter_member_pages(limit=page_size)
    return [page.next_page_token or "" for page in pages]


def test_the_recorded_progress_is_what_was_stored(sandbox):
    run = sync.sync_members(page_size=10)
    assert run.status == Status.SUCCEEDED, run.error
    stored = SyncRun.objects.get(pk=run.pk)
    total = len(sandbox.member_ids())
    assert (stored.created, stored.updated, stored.unchanged) == (total, 0, 0)
    assert stored.pages == run.pages == -(-total // 10)
    assert stored.cursor == run.cursor == ""
    assert stored.heartbeat_at is not None and stored.heartbeat_at >= stored.started_at
    changed = sandbox.member_ids()[:3]
    for member_id in changed:
        sandbox.update_member(member_id, name="Changed")
    again = sync.sync_members(page_size=10)
    stored = SyncRun.objects.get(pk=again.pk)
    assert (stored.created, stored.updated, stored.unchanged) == (0, 3, total - 3)
    assert (again.created, again.updated, again.unchanged) == (0, 3, total - 3)


def test_a_page_that_fails_to_store_leaves_the_cursor_on_the_last_stored_page(sandbox, monkeypatch):
    """Red if the run's cursor moved with the failed page: ``--resume`` would
    then skip it."""
    real = member_upsert.upsert_members
    calls = []

    def fail_third(rows, update_fields, **kwargs):
        calls.append(len(rows))
        if len(calls) == 3:
            raise OperationalError("the database went away")
        return real(rows, update_fields, **kwargs)

    monkeypatch.setattr(members, "upsert_members", fail_third)
    run = sync.sync_members(page_size=10)
    assert run.status == Status.FAILED and "went away" in run.error
    after_two = tokens(10)[1]
    stored = SyncRun.objects.get(pk=run.pk)
    assert (stored.pages, stored.created, stored.cursor) == (2, 20, after_two)
    assert (run.pages, run.created, run.cursor) == (2, 20, after_two)
    assert Member.objects.count() == 20
    monkeypatch.setattr(members, "upsert_members", real)
    resumed = sync.sync_members(page_size=10, resume=True)
    assert resumed.status == Status.SUCCEEDED, resumed.error
    assert Member.objects.count() == len(sandbox.member_ids())
    assert resumed.created == len(sandbox.member_ids()) - 20


def test_a_run_taken_over_mid_walk_stores_nothing_more(sandbox, settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "SYNC_HEARTBEAT_TIMEOUT": 120}
    taker: list[SyncRun] = []

    def taken_over_after_two(done, total):
        if done == 20:  # another sync decides this one is dead
            SyncRun.objects.filter(status=Status.RUNNING).update(
                heartbeat_at=timezone.now() - timedelta(hours=1)
            )
            taker.append(start_exclusive_run(SyncRun.Kind.MEMBERS))

    run = sync.sync_members(page_size=10, progress=taken_over_after_two)
    assert run.status == Status.FAILED and "taken over" in run.error
    # The third page was rolled back with its progress write.
    assert Member.objects.count() == 20
    assert SyncRun.objects.get(pk=run.pk).pages == 2
    assert SyncRun.objects.get(pk=taker[0].pk).status == Status.RUNNING


def test_on_postgresql_the_progress_rides_in_the_page_statement(sandbox):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no data-modifying CTEs: the UPDATE is its own statement")
    seen: list[str] = []

    def record(execute, sql, params, many, context):
        seen.append(sql.lstrip()[:200].upper())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        run = sync.sync_members(page_size=10)
    assert run.status == Status.SUCCEEDED, run.error
    page_statements = [sql for sql in seen if sql.startswith("WITH WRITTEN AS (INSERT")]
    assert len(page_statements) == run.pages
    run_updates = [sql for sql in seen if sql.startswith('UPDATE "PLUGINLAB_DJANGO_SYNCRUN"')]
    assert len(run_updates) == 1  # the outcome only, not one per page


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pluginlab-prefetch" and t.is_alive()]


@pytest.mark.parametrize("ending", ["succeeds", "fails-storing", "fails-in-progress"])
def test_no_prefetch_thread_outlives_the_run(sandbox, monkeypatch, ending):
    """Red when the walk left its generator to the garbage collector: a failed
    run keeps its exception, the traceback keeps the generator, and the
    producer thread waited forever with the next page in hand."""
    assert prefetch_threads() == []
    real = member_upsert.upsert_members
    calls = []

    def fail_third(rows, update_fields, **kwargs):
        calls.append(len(rows))
        if ending == "fails-storing" and len(calls) == 3:
            raise OperationalError("the database went away")
        return real(rows, update_fields, **kwargs)

    def progress(done, total):
        if ending == "fails-in-progress" and done == 20:
            raise RuntimeError("the progress bar broke")

    monkeypatch.setattr(members, "upsert_members", fail_third)
    run = sync.sync_members(page_size=10, progress=progress)
    assert (run.status == Status.SUCCEEDED) == (ending == "succeeds"), run.error
    assert prefetch_threads() == []
