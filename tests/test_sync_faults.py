"""Syncs under faults the sandbox injects (5xx, 429, dropped connections),
and syncs racing each other.

Either a run retries through the faults and ends with exactly the data of a
clean run, or it fails cleanly: a ``failed`` SyncRun with an error and
nothing marked deleted.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import OperationalError, close_old_connections, connection

from pluginlab_django import sync
from pluginlab_django.models import Member, SyncRun

Status = SyncRun.Status
MEMBERS_PREFIX = "/auth"


def _state() -> dict[str, tuple]:
    return {
        m.remote_id: (
            m.email,
            m.name,
            m.given_name,
            m.family_name,
            m.picture_url,
            m.sign_in_method,
            m.is_verified,
            m.has_password,
            m.custom_fields,
            m.metadata,
            m.remote_created_at,
            m.remote_updated_at_ms,
            m.deleted_remotely_at,
            m.remote_data,
        )
        for m in Member.objects.all()
    }


def _clean_state(sandbox) -> dict[str, tuple]:
    """What a clean run stores (then wiped, so the faulty run starts alike)."""
    run = sync.sync_members(page_size=8)
    assert run.status == Status.SUCCEEDED, run.error
    state = _state()
    Member.objects.all().delete()
    SyncRun.objects.all().delete()
    return state


@pytest.mark.django_db
@pytest.mark.parametrize(
    "faults",
    [
        {"error_rate": 0.3, "error_status": 503},
        {"error_rate": 0.3, "error_status": 502},
        {"error_rate": 0.3, "error_status": 429},
        {"drop_rate": 0.3},
    ],
    ids=["503", "502", "429", "dropped"],
)
def test_transient_faults_are_retried_to_the_same_data(sandbox, faults):
    clean = _clean_state(sandbox)
    before = sandbox.request_count(MEMBERS_PREFIX)
    sandbox.set_faults(path_prefix=MEMBERS_PREFIX, **faults)
    run = sync.sync_members(page_size=8)
    sandbox.clear_faults()
    assert run.status == Status.SUCCEEDED, run.error
    assert _state() == clean
    assert run.created == len(clean)
    # The faults really happened: more requests than pages.
    assert sandbox.request_count(MEMBERS_PREFIX) - before > run.pages


@pytest.mark.django_db
def test_a_burst_of_faults_is_absorbed_by_the_transport_retries(sandbox):
    clean = _clean_state(sandbox)
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix=MEMBERS_PREFIX, count=2)
    run = sync.sync_members(page_size=8)
    assert run.status == Status.SUCCEEDED, run.error
    assert _state() == clean


@pytest.mark.django_db
@pytest.mark.parametrize(
    "faults",
    [{"error_rate": 1.0, "error_status": 503}, {"drop_rate": 1.0}],
    ids=["503", "dropped"],
)
def test_persistent_faults_fail_cleanly_and_mark_nothing(sandbox, faults):
    sync.sync_members()
    gone = sandbox.member_ids()[0]
    sandbox.delete_member(gone)
    pages_seen: list[int] = []  # pages stored (a prefetched one may follow the first)

    def fail_after_first_page(done, total):
        pages_seen.append(done)
        sandbox.set_faults(path_prefix=MEMBERS_PREFIX, **faults)

    run = sync.sync_members(page_size=10, progress=fail_after_first_page)
    assert run.status == Status.FAILED
    assert run.error and run.finished_at
    assert sandbox.admin_secret not in run.error
    assert run.pages == len(pages_seen) >= 1
    assert run.marked_deleted == 0
    assert not Member.objects.filter(deleted_remotely_at__isnull=False).exists()
    assert not SyncRun.objects.filter(status=Status.RUNNING).exists()


@pytest.mark.django_db
def test_a_failing_chunk_of_quotas_fails_cleanly(sandbox):
    sync.sync_members()
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/monetization")
    run = sync.snapshot_quotas()
    assert run.status == Status.FAILED
    assert "503" in run.error or "Unavailable" in run.error
    assert sandbox.admin_secret not in run.error
    assert run.created == 0


@pytest.mark.django_db
def test_an_unreachable_plugipay_fails_the_api_key_sync_cleanly(sandbox):
    sandbox.set_faults(drop_rate=1.0, path_prefix="/plugipay")
    run = sync.sync_api_keys()
    assert run.status == Status.FAILED and run.error
    assert sandbox.plugipay_secret not in run.error


# Races ------------------------------------------------------------------------


def _in_thread(target, results: dict, key: str) -> threading.Thread:
    def run():
        try:
            results[key] = target()
        except Exception as exc:  # reported to the test
            results[key] = exc
        finally:
            close_old_connections()
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _assert_no_duplicate_and_no_lost_row(sandbox) -> None:
    ids = list(Member.objects.values_list("remote_id", flat=True))
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert set(ids) == set(sandbox.member_ids())


@pytest.mark.django_db(transaction=True)
def test_two_full_syncs_started_together_run_once(sandbox):
    """The second is refused while the first holds the lock; no duplicate, no lost row."""
    first_page_stored = threading.Event()
    second_tried = threading.Event()
    results: dict = {}

    def first_progress(done, total):
        if not first_page_stored.is_set():
            first_page_stored.set()
            second_tried.wait(30)  # hold the lock until the second one tried

    def second():
        first_page_stored.wait(30)
        try:
            return sync.sync_members(page_size=10)
        finally:
            second_tried.set()

    a = _in_thread(lambda: sync.sync_members(page_size=10, progress=first_progress), results, "a")
    b = _in_thread(second, results, "b")
    a.join(60)
    b.join(60)
    assert isinstance(results["a"], SyncRun), results["a"]
    assert results["a"].status == Status.SUCCEEDED, results["a"].error
    assert isinstance(results["b"], sync.SyncAlreadyRunning), results["b"]
    assert SyncRun.objects.filter(kind=SyncRun.Kind.MEMBERS).count() == 1
    _assert_no_duplicate_and_no_lost_row(sandbox)


@pytest.mark.django_db(transaction=True)
def test_syncs_started_at_the_same_instant_never_run_twice(sandbox):
    barrier = threading.Barrier(3)
    results: dict = {}

    def racer():
        barrier.wait(30)
        return sync.sync_members(page_size=10)

    threads = [_in_thread(racer, results, key) for key in "abc"]
    for thread in threads:
        thread.join(60)
    outcomes = list(results.values())
    succeeded = [r for r in outcomes if isinstance(r, SyncRun)]
    refused = [
        r
        for r in outcomes
        if isinstance(r, sync.SyncAlreadyRunning)
        or (isinstance(r, OperationalError) and _sqlite_table_locked(r))
    ]
    assert len(succeeded) + len(refused) == 3, outcomes
    assert succeeded and all(r.status == Status.SUCCEEDED for r in succeeded)
    assert SyncRun.objects.filter(kind=SyncRun.Kind.MEMBERS).count() == len(succeeded)
    _assert_no_duplicate_and_no_lost_row(sandbox)


def _sqlite_table_locked(exc: BaseException | str) -> bool:
    """SQLite's shared in-memory test database answers a concurrent writer
    "database table is locked" at once instead of waiting. Production
    callers retry such failures (a webhook task, the next sync); so do the
    racing tests, on SQLite only."""
    return connection.vendor == "sqlite" and "is locked" in str(exc)


@pytest.mark.django_db(transaction=True)
def test_a_full_sync_racing_single_member_syncs_stores_each_member_once(sandbox):
    """Webhooks (sync_member) insert members while pages are being written."""
    ids = sandbox.member_ids()
    results: dict = {}
    retries = Counter()

    def webhooks():
        rows = []
        for member_id in reversed(ids):
            for _attempt in range(50):
                try:
                    rows.append(sync.sync_member(member_id))
                    break
                except OperationalError as exc:
                    if not _sqlite_table_locked(exc):
                        raise
                    retries["webhook"] += 1
        return rows

    def full_sync():
        resume = False
        for _attempt in range(50):
            try:
                run = sync.sync_members(page_size=5, resume=resume)
            except OperationalError as exc:  # recording the run itself was refused
                if not _sqlite_table_locked(exc):
                    raise
            else:
                if not (run.status == Status.FAILED and _sqlite_table_locked(run.error)):
                    return run
            retries["full"] += 1
            resume = True
        raise AssertionError("the full sync never got through")

    a = _in_thread(full_sync, results, "full")
    b = _in_thread(webhooks, results, "webhooks")
    a.join(120)
    b.join(120)
    assert isinstance(results["full"], SyncRun), results["full"]
    assert results["full"].status == Status.SUCCEEDED, results["full"].error
    assert not isinstance(results["webhooks"], Exception), results["webhooks"]
    assert len(results["webhooks"]) == len(ids)
    if connection.vendor == "postgresql":
        assert not retries  # PostgreSQL makes the writers wait, never fail
    _assert_no_duplicate_and_no_lost_row(sandbox)
    assert not Member.objects.filter(deleted_remotely_at__isnull=False).exists()
