"""The sync service against the sandbox over real HTTP: members, identities,
quota snapshots and API key records."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from pluginlab_django import signals, sync
from pluginlab_django.clients import get_pluginlab_client, get_plugipay_client
from pluginlab_django.clients import types as remote
from pluginlab_django.models import ApiKey, Identity, Member, QuotaSnapshot, SyncRun
from tests.signal_recorder import SignalRecorder

pytestmark = pytest.mark.django_db

Status = SyncRun.Status


TRANSACTION_CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "COMMIT", "ROLLBACK")


class StatementCounter:
    """Counts SQL statements through ``connection.execute_wrapper``, leaving
    out transaction control (SQLite issues BEGIN as a statement, PostgreSQL
    implicitly)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        if not sql.lstrip().upper().startswith(TRANSACTION_CONTROL):
            self.statements.append(sql)
        return execute(sql, params, many, context)

    def writes_to(self, table: str) -> list[str]:
        return [
            sql
            for sql in self.statements
            if table in sql and sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        ]


def live_member_ids(sandbox) -> list[str]:
    """Members the sandbox still has (``member_ids()`` is the seeded order)."""
    return [mid for mid in sandbox.member_ids() if sandbox.get_member(mid) is not None]


# Members ------------------------------------------------------------------


def test_sync_members_mirrors_every_member_from_every_page(sandbox):
    ids = sandbox.member_ids()
    run = sync.sync_members(page_size=7)

    assert run.status == Status.SUCCEEDED, run.error
    assert (run.created, run.updated, run.unchanged, run.marked_deleted) == (len(ids), 0, 0, 0)
    assert run.pages == -(-len(ids) // 7)
    assert run.complete and run.finished_at and run.cursor == ""
    assert sorted(Member.objects.values_list("remote_id", flat=True)) == sorted(ids)

    wire = sandbox.get_member(ids[3])
    row = Member.objects.get(remote_id=ids[3])
    assert row.email == wire["email"]
    assert row.name == (wire.get("name") or "")
    assert row.given_name == (wire.get("givenName") or "")
    assert row.family_name == (wire.get("familyName") or "")
    assert row.sign_in_method == wire["auth"]["signInMethod"]
    assert row.is_verified == wire["auth"]["isVerified"]
    assert row.has_password == wire["auth"]["hasPassword"]
    assert row.custom_fields == wire.get("customFields", {})
    assert row.metadata == wire.get("metadata", {})
    assert row.remote_updated_at_ms == wire["updatedAtMs"]
    assert row.remote_created_at == remote.ms_to_datetime(wire["createdAtMs"])
    assert row.remote_updated_at == remote.ms_to_datetime(wire["updatedAtMs"])
    assert row.remote_created_at.tzinfo is not None
    assert row.remote_data == wire
    assert row.last_synced_at is not None and row.deleted_remotely_at is None


def xmins() -> list[str] | None:
    """PostgreSQL's row versions (a rewritten row gets a new ``xmin``)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute('SELECT xmin::text FROM "pluginlab_django_member" ORDER BY id')
        return [xmin for (xmin,) in cursor.fetchall()]


def test_second_sync_with_nothing_changed_writes_no_member_row(sandbox):
    sync.sync_members(page_size=10)
    before = dict(Member.objects.values_list("remote_id", "last_synced_at"))
    xmins_before = xmins()
    counter = StatementCounter()
    with connection.execute_wrapper(counter):
        run = sync.sync_members(page_size=10)
    assert run.status == Status.SUCCEEDED
    assert (run.created, run.updated, run.unchanged) == (0, 0, len(before))
    # Every write sets last_synced_at: unchanged values mean no row was written.
    assert dict(Member.objects.values_list("remote_id", "last_synced_at")) == before
    assert xmins() == xmins_before


def test_a_changed_member_is_updated_alone_and_signalled(sandbox):
    sync.sync_members()
    changed_id = sandbox.member_ids()[5]
    sandbox.update_member(changed_id, name="Renamed Remotely")
    with SignalRecorder(signals.member_synced) as synced:
        run = sync.sync_members()
    assert (run.created, run.updated, run.unchanged) == (0, 1, len(sandbox.member_ids()) - 1)
    row = Member.objects.get(remote_id=changed_id)
    assert row.name == "Renamed Remotely"
    assert row.remote_data["name"] == "Renamed Remotely"
    assert [(c["member"].remote_id, c["created"]) for c in synced.calls] == [(changed_id, False)]
    assert synced.calls[0]["member"].pk == row.pk
    assert synced.calls[0]["sender"] is Member


def test_created_members_are_signalled_with_saved_rows(sandbox):
    with SignalRecorder(signals.member_synced) as synced:
        sync.sync_members(page_size=20)
    assert len(synced.calls) == len(sandbox.member_ids())
    assert all(c["created"] and c["member"].pk for c in synced.calls)


@pytest.mark.parametrize("writes", [True, False], ids=["creating", "unchanged"])
def test_statements_per_page_do_not_depend_on_page_size(sandbox, writes):
    """Per page: one upsert (whatever it writes) and the SyncRun update, which
    on PostgreSQL are one statement."""
    per_page: dict[int, set[int]] = {}
    for page_size in (10, 40):
        if writes:
            Member.objects.all().delete()
        else:
            sync.sync_members(page_size=page_size)
        counter = StatementCounter()
        marks: list[int] = []

        def mark(done, total, marks=marks, counter=counter):
            marks.append(len(counter.statements))

        with connection.execute_wrapper(counter):
            sync.sync_members(page_size=page_size, progress=mark)
        per_page[page_size] = {b - a for a, b in itertools.pairwise(marks)}
    # The same few statements for 10 or 40 members a page, written or not
    # (the upsert statement decides): PostgreSQL the upsert carrying the
    # SyncRun update; SQLite its write lock, the read of existing ids, the
    # upsert and the SyncRun update.
    assert per_page[10] == per_page[40]
    assert per_page[10] == ({1} if connection.vendor == "postgresql" else {4})


def test_member_deleted_remotely_is_marked_not_dropped(sandbox):
    sync.sync_members()
    gone = sandbox.member_ids()[0]
    sandbox.delete_member(gone)
    with SignalRecorder(signals.member_deleted_remotely) as deleted:
        run = sync.sync_members(page_size=15)
    assert run.status == Status.SUCCEEDED
    assert run.marked_deleted == 1
    row = Member.objects.get(remote_id=gone)  # still there
    assert row.deleted_remotely_at is not None
    assert [c["member"].remote_id for c in deleted.calls] == [gone]
    assert Member.objects.active().count() == len(live_member_ids(sandbox))
    # Marked once: the next complete run does not mark or signal it again.
    with SignalRecorder(signals.member_deleted_remotely) as again:
        assert sync.sync_members().marked_deleted == 0
    assert again.calls == []


def test_a_member_listed_again_is_unmarked(sandbox):
    sync.sync_members()
    member_id = sandbox.member_ids()[2]
    sync.mark_member_deleted(member_id)
    run = sync.sync_members()
    assert run.updated == 1
    assert Member.objects.get(remote_id=member_id).deleted_remotely_at is None


def test_members_written_during_a_run_are_not_marked_by_it(sandbox):
    """A row a webhook wrote after the run started is not the run's to judge."""
    sync.sync_members()
    outsider = Member.objects.create(
        remote_id="mem_" + "f" * 40, email="late@example.com", last_synced_at=timezone.now()
    )
    Member.objects.filter(pk=outsider.pk).update(
        last_synced_at=timezone.now() + timedelta(minutes=5)
    )
    assert sync.sync_members().marked_deleted == 0
    assert Member.objects.get(pk=outsider.pk).deleted_remotely_at is None


def test_interrupted_run_fails_cleanly_keeps_cursor_and_resumes(sandbox):
    sync.sync_members()
    gone = sandbox.member_ids()[-1]
    sandbox.delete_member(gone)
    Member.objects.exclude(remote_id=gone).delete()  # so the resumed run has work to do
    total = len(live_member_ids(sandbox))

    stored: list[int] = []

    def break_after_two_pages(done, _total):
        stored.append(done)
        if done == 10:
            sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth")

    failed = sync.sync_members(page_size=5, progress=break_after_two_pages)
    assert failed.status == Status.FAILED
    assert failed.finished_at is not None
    # Pages already fetched when the faults began (up to PREFETCH_PAGES + 1
    # ahead) may still be stored.
    assert 2 <= failed.pages == len(stored) < -(-total // 5)
    assert failed.created == stored[-1] == failed.pages * 5
    assert failed.cursor  # the token after the last stored page
    assert failed.marked_deleted == 0
    assert "RemoteUnavailable" in failed.error or "503" in failed.error
    assert sandbox.admin_secret not in failed.error
    assert Member.objects.get(remote_id=gone).deleted_remotely_at is None
    assert not SyncRun.objects.filter(status=Status.RUNNING).exists()  # lock released

    sandbox.clear_faults()
    resumed = sync.sync_members(page_size=5, resume=True)
    assert resumed.status == Status.SUCCEEDED
    assert not resumed.complete
    assert resumed.created == total - failed.created
    assert resumed.pages == -(-total // 5) - failed.pages
    assert Member.objects.active().count() == total + 1
    # A resumed run saw only part of the list: it marks nothing ...
    assert resumed.marked_deleted == 0
    assert Member.objects.get(remote_id=gone).deleted_remotely_at is None
    # ... and the next full run does.
    full = sync.sync_members(resume=True)  # nothing failed last: a full run
    assert full.complete and full.marked_deleted == 1


def test_a_second_full_sync_is_refused_while_one_runs(sandbox):
    holder = SyncRun.objects.create(kind=SyncRun.Kind.MEMBERS, status=Status.RUNNING)
    with pytest.raises(sync.SyncAlreadyRunning) as excinfo:
        sync.sync_members()
    assert excinfo.value.run == holder
    assert SyncRun.objects.filter(kind=SyncRun.Kind.MEMBERS).count() == 1
    assert Member.objects.count() == 0


def test_an_abandoned_lock_is_taken_over(sandbox, settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "SYNC_LOCK_TIMEOUT": 60}
    abandoned = SyncRun.objects.create(
        kind=SyncRun.Kind.MEMBERS,
        status=Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=120),
        cursor="",
    )
    run = sync.sync_members()
    assert run.status == Status.SUCCEEDED
    abandoned.refresh_from_db()
    assert abandoned.status == Status.FAILED and "Abandoned" in abandoned.error


def test_sync_finished_is_sent_for_success_and_failure(sandbox):
    with SignalRecorder(signals.sync_finished) as finished:
        sync.sync_members()
        sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth")
        sync.sync_members()
    assert [c["run"].status for c in finished.calls] == [Status.SUCCEEDED, Status.FAILED]


# One member ---------------------------------------------------------------


def test_sync_member_creates_updates_and_marks(sandbox):
    member_id = sandbox.member_ids()[1]
    row = sync.sync_member(member_id)
    assert row.pk and row.remote_id == member_id
    assert row.email == sandbox.get_member(member_id)["email"]

    sandbox.update_member(member_id, given_name="Grace")
    assert sync.sync_member(member_id).given_name == "Grace"
    assert Member.objects.count() == 1

    sandbox.delete_member(member_id)
    with SignalRecorder(signals.member_deleted_remotely) as deleted:
        marked = sync.sync_member(member_id)
    assert marked.pk == row.pk and marked.deleted_remotely_at is not None
    assert len(deleted.calls) == 1


def test_sync_member_of_an_unknown_member_returns_none(sandbox):
    assert sync.sync_member("mem_" + "0" * 40) is None
    assert Member.objects.count() == 0


def test_store_member_skips_unchanged_and_older_data(sandbox):
    wire = sandbox.get_member(sandbox.member_ids()[0])
    current = remote.Member.from_json(wire)
    first = sync.store_member(current)
    assert first.created and first.outcome == "created"
    with SignalRecorder(signals.member_synced) as synced:
        same = sync.store_member(current)
        older = remote.Member.from_json(
            {**wire, "name": "Stale", "updatedAtMs": wire["updatedAtMs"] - 1}
        )
        stale = sync.store_member(older)
    assert same.outcome == stale.outcome == "unchanged"
    assert same.row.pk == stale.row.pk == first.row.pk
    assert stale.row.name == (wire.get("name") or "")
    assert synced.calls == []
    row = first.row
    assert Member.objects.get(pk=row.pk).name == (wire.get("name") or "")


def test_sync_keeps_plan_known_from_tokens(sandbox):
    sync.sync_members()
    member_id = sandbox.member_ids()[0]
    Member.objects.filter(remote_id=member_id).update(plan_id="plan_pro", price_id="price_1")
    sandbox.update_member(member_id, name="Changed")
    sync.sync_members()
    row = Member.objects.get(remote_id=member_id)
    assert (row.name, row.plan_id, row.price_id) == ("Changed", "plan_pro", "price_1")


# Identities -----------------------------------------------------------------


def _members_with_identities(sandbox) -> list[str]:
    client = get_pluginlab_client()
    return [mid for mid in sandbox.member_ids() if client.get_member_identities(mid)]


def test_sync_identities_mirrors_and_encrypts_tokens(sandbox):
    sync.sync_members()
    run = sync.sync_identities()
    assert run.status == Status.SUCCEEDED, run.error
    assert run.failed == 0
    client = get_pluginlab_client()
    with_identities = _members_with_identities(sandbox)
    assert with_identities, "the sandbox seeds some OAuth identities"
    expected = 0
    for member_id in with_identities:
        remote_identities = client.get_member_identities(member_id)
        expected += len(remote_identities)
        rows = {i.provider: i for i in Identity.objects.filter(member__remote_id=member_id)}
        assert set(rows) == set(remote_identities)
        for provider, identity in remote_identities.items():
            assert rows[provider].provider_user_id == identity.provider_user_id
            assert rows[provider].access_token == identity.access_token
            assert rows[provider].refresh_token == identity.refresh_token
            assert rows[provider].access_token_expires_at == remote.ms_to_datetime(
                identity.access_token_expires_at_ms
            )
    assert run.created == expected == Identity.objects.count()

    # Encrypted at rest: the column never holds the token itself.
    identity = Identity.objects.exclude(access_token=None).first()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token FROM pluginlab_django_identity WHERE id = %s", [identity.pk]
        )
        (stored,) = cursor.fetchone()
    assert stored and identity.access_token not in stored

    again = sync.sync_identities()
    assert (again.created, again.updated, again.unchanged) == (0, 0, expected)


def test_store_identities_upserts_and_removes_unlisted_providers(sandbox):
    sync.sync_members()
    member = Member.objects.first()
    google = remote.Identity(
        provider="google",
        provider_user_id="g-1",
        access_token="at-1",
        refresh_token="rt-1",
        access_token_expires_at_ms=1_900_000_000_000,
    )
    github = remote.Identity(provider="github", provider_user_id="gh-1", access_token="at-2")
    rows = sync.store_identities(member, {"google": google, "github": github})
    assert {r.provider for r in rows} == {"google", "github"}

    Identity.objects.filter(member=member, provider="google").update(needs_reauth=True)
    renewed = remote.Identity(
        provider="google", provider_user_id="g-1", access_token="at-3", refresh_token="rt-2"
    )
    with SignalRecorder(signals.identities_synced) as synced:
        rows = sync.store_identities(member, {"google": renewed})
    assert [r.provider for r in rows] == ["google"]
    google_row = Identity.objects.get(member=member, provider="google")
    assert google_row.access_token == "at-3" and google_row.refresh_token == "rt-2"
    assert google_row.needs_reauth is False  # a new refresh token: signed in again
    assert not Identity.objects.filter(member=member, provider="github").exists()
    assert synced.calls[0]["removed"] == ["github"]


def test_identities_of_unknown_members_are_counted_failed(sandbox):
    run = sync.sync_identities(["mem_" + "a" * 40])
    assert run.status == Status.SUCCEEDED
    assert run.failed == 1 and "not mirrored" in run.error


# Quotas ---------------------------------------------------------------------


def test_snapshot_quotas_takes_one_snapshot_per_active_member(sandbox):
    sync.sync_members()
    deleted = Member.objects.order_by("pk").first()
    sync.mark_member_deleted(deleted.remote_id)
    run = sync.snapshot_quotas()
    active = Member.objects.active().count()
    assert run.status == Status.SUCCEEDED, run.error
    assert run.created == active == QuotaSnapshot.objects.count()
    client = get_pluginlab_client()
    member = Member.objects.active().select_related("latest_quota").order_by("pk").first()
    usage = client.get_quota_usage(member.remote_id)
    assert member.latest_quota.usage_count == usage.usage_count
    assert member.latest_quota.usage_limit == usage.usage_limit
    assert member.latest_quota.interval == usage.interval
    assert member.latest_quota.is_unlimited == usage.is_unlimited
    assert Member.objects.get(pk=deleted.pk).latest_quota is None


def test_snapshot_history_is_kept_and_latest_moves(sandbox):
    sync.sync_members()
    member = Member.objects.order_by("pk").first()
    sync.snapshot_quotas([member.remote_id])
    first = Member.objects.get(pk=member.pk).latest_quota
    get_pluginlab_client().create_custom_event("tests", member_id=member.remote_id)
    sync.snapshot_quotas([member.remote_id])
    latest = Member.objects.get(pk=member.pk).latest_quota
    assert latest.pk != first.pk
    assert latest.usage_count == first.usage_count + 1
    assert member.quota_snapshots.count() == 2


def test_snapshot_quotas_skips_members_snapshotted_since(sandbox):
    sync.sync_members()
    ids = list(Member.objects.order_by("pk").values_list("remote_id", flat=True)[:6])
    since = timezone.now()
    sync.snapshot_quotas(ids[:3])
    run = sync.snapshot_quotas(ids, skip_taken_since=since)
    assert (run.created, run.unchanged) == (3, 3)
    assert QuotaSnapshot.objects.count() == 6


# API keys -------------------------------------------------------------------


def test_sync_api_keys_mirrors_records_without_secrets(sandbox):
    plugipay = get_plugipay_client()
    created = plugipay.create_api_key(description="for sync tests", scope="plugipay:apikey:*")
    assert created.secret
    run = sync.sync_api_keys()
    assert run.status == Status.SUCCEEDED, run.error
    listed = plugipay.list_api_keys()
    assert run.created == len(listed) == ApiKey.objects.count()
    row = ApiKey.objects.get(record_id=created.id)
    assert (row.key_id, row.description, row.scope) == (
        created.key_id,
        "for sync tests",
        "plugipay:apikey:*",
    )
    assert row.mode == "test" and row.revoked_at is None
    assert "secret" not in {f.name for f in ApiKey._meta.get_fields()}
    all_values = [str(v) for rowvals in ApiKey.objects.values_list() for v in rowvals]
    assert not any(created.secret in value for value in all_values)

    plugipay.revoke_api_key(created.id)
    again = sync.sync_api_keys()
    assert (again.created, again.updated) == (0, 1)
    assert ApiKey.objects.get(record_id=created.id).revoked_at is not None
