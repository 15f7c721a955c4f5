"""One write path: the statement decides "newer wins" (lost-update regression),
and only PluginLab's own "no such member" marks a member deleted."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection

from pluginlab_django import signals, sync
from pluginlab_django.clients import types as remote
from pluginlab_django.clients.exceptions import MemberNotFound, UnexpectedNotFound
from pluginlab_django.models import ApiKey, Identity, Member, SyncRun
from pluginlab_django.services import members as member_services
from pluginlab_django.sync.row_upsert import Outcome, upsert_row
from tests.signal_recorder import SignalRecorder

pytestmark = pytest.mark.django_db

MEMBER_TABLE = Member._meta.db_table


class BeforeFirstMemberInsert:
    """Runs ``action`` once, just before the first INSERT into the member
    table: the moment between a page's fetch (and any pre-SELECT) and its
    write, when another writer may store a newer copy."""

    def __init__(self, action) -> None:
        self.action = action
        self.fired = False

    def __call__(self, execute, sql, params, many, context):
        # The member INSERT, alone or as the page statement's first CTE.
        head = sql.lstrip().upper()[:40]
        if not self.fired and ("INSERT INTO" in head) and MEMBER_TABLE in sql:
            self.fired = True
            self.action()
        return execute(sql, params, many, context)


def newer_copy(wire: dict, *, name: str, later_ms: int) -> remote.Member:
    return remote.Member.from_json({**wire, "name": name, "updatedAtMs": later_ms})


# Defect 1: the lost update ---------------------------------------------------------


def test_a_newer_row_stored_during_a_page_write_is_not_rolled_back(sandbox):
    """Red on the old code: the page decided from an unlocked SELECT and then
    upserted unconditionally, overwriting the webhook's newer copy."""
    sync.sync_members(page_size=10)
    member_id = sandbox.member_ids()[3]
    sandbox.update_member(member_id, name="Page copy")  # the page will carry this
    page_ms = sandbox.get_member(member_id)["updatedAtMs"]
    webhook_copy = newer_copy(
        sandbox.get_member(member_id), name="Webhook copy", later_ms=page_ms + 60_000
    )
    race = BeforeFirstMemberInsert(lambda: sync.store_member(webhook_copy))
    with connection.execute_wrapper(race):
        run = sync.sync_members(page_size=10)
    assert race.fired
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    row = Member.objects.get(remote_id=member_id)
    assert (row.name, row.remote_updated_at_ms) == ("Webhook copy", page_ms + 60_000)
    assert row.remote_data["name"] == "Webhook copy"
    # The page did not write it: it counts as unchanged, not updated.
    assert (run.created, run.updated) == (0, 0)


def test_an_older_copy_never_overwrites_a_newer_one_through_store_member(sandbox):
    wire = sandbox.get_member(sandbox.member_ids()[0])
    newer = newer_copy(wire, name="Newer", later_ms=wire["updatedAtMs"] + 10)
    assert sync.store_member(newer).outcome is Outcome.CREATED
    older = remote.Member.from_json(wire)
    write = sync.store_member(older)
    assert write.outcome is Outcome.UNCHANGED
    assert Member.objects.get(remote_id=wire["id"]).name == "Newer"


def test_a_row_marked_deleted_is_rewritten_even_by_equal_data(sandbox):
    wire = sandbox.get_member(sandbox.member_ids()[1])
    sync.store_member(remote.Member.from_json(wire))
    sync.mark_member_deleted(wire["id"])
    write = sync.store_member(remote.Member.from_json(wire))
    assert write.outcome is Outcome.UPDATED
    assert write.row.deleted_remotely_at is None


def test_without_timestamps_the_write_happens(sandbox):
    wire = sandbox.get_member(sandbox.member_ids()[2])
    sync.store_member(remote.Member.from_json(wire))
    untimed = remote.Member.from_json({**wire, "name": "Untimed", "updatedAtMs": None})
    assert sync.store_member(untimed).outcome is Outcome.UPDATED
    assert Member.objects.get(remote_id=wire["id"]).name == "Untimed"
    Member.objects.filter(remote_id=wire["id"]).update(remote_updated_at_ms=None)
    assert sync.store_member(remote.Member.from_json(wire)).outcome is Outcome.UPDATED


def test_a_page_counts_created_updated_and_unchanged_from_the_statement(sandbox):
    ids = sandbox.member_ids()[:3]
    wires = [sandbox.get_member(mid) for mid in ids]
    sync.store_member(remote.Member.from_json(wires[0]))
    sync.store_member(remote.Member.from_json(wires[1]))
    page = [
        remote.Member.from_json(wires[0]),  # same: unchanged
        newer_copy(wires[1], name="B2", later_ms=wires[1]["updatedAtMs"] + 1),  # newer
        remote.Member.from_json(wires[2]),  # new
    ]
    from django.utils import timezone

    from pluginlab_django.sync.members import store_member_page

    result = store_member_page(page, now=timezone.now(), want_rows=True)
    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    assert sorted((w.row.remote_id, w.outcome) for w in result.written) == sorted(
        [(ids[1], Outcome.UPDATED), (ids[2], Outcome.CREATED)]
    )


def test_store_member_signals_only_what_it_wrote(sandbox):
    wire = sandbox.get_member(sandbox.member_ids()[4])
    with SignalRecorder(signals.member_synced) as synced:
        sync.store_member(remote.Member.from_json(wire))
        sync.store_member(remote.Member.from_json(wire))
        sync.store_member(newer_copy(wire, name="X", later_ms=wire["updatedAtMs"] + 1))
    calls = [(call["member"].remote_id, call["created"]) for call in synced.calls]
    assert calls == [(wire["id"], True), (wire["id"], False)]


# The shared per-row upsert (identities, API key records) ---------------------------


def test_upsert_row_creates_updates_only_changed_fields_and_leaves_equal_rows(sandbox):
    from django.utils import timezone

    first = upsert_row(
        ApiKey,
        {"record_id": "apk_test"},
        {"account_id": "acc_1", "key_id": "pk_test_1", "description": "one", "scope": []},
        touch={"last_synced_at": timezone.now()},
    )
    assert first.outcome is Outcome.CREATED and first.row.pk
    same = upsert_row(
        ApiKey,
        {"record_id": "apk_test"},
        {"account_id": "acc_1", "description": "one"},
        touch={"last_synced_at": timezone.now()},
    )
    assert same.outcome is Outcome.UNCHANGED and same.changed == ()
    changed = upsert_row(
        ApiKey,
        {"record_id": "apk_test"},
        {"account_id": "acc_1", "description": "two"},
        touch={"last_synced_at": timezone.now()},
    )
    assert changed.outcome is Outcome.UPDATED and changed.changed == ("description",)
    assert ApiKey.objects.get(record_id="apk_test").description == "two"
    assert ApiKey.objects.count() == 1


def test_store_identity_clears_needs_reauth_when_the_refresh_token_changes(sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    identity = remote.Identity.from_json(
        {"provider": "google", "providerUserId": "g-1", "refreshToken": "r-1"}
    )
    row = sync.store_identity(member, identity)
    Identity.objects.filter(pk=row.pk).update(needs_reauth=True)
    again = sync.store_identity(member, identity)  # same token: still needs re-auth
    assert again.needs_reauth
    renewed = remote.Identity.from_json(
        {"provider": "google", "providerUserId": "g-1", "refreshToken": "r-2"}
    )
    assert not sync.store_identity(member, renewed).needs_reauth
    assert Identity.objects.get(pk=row.pk).refresh_token == "r-2"


# Defect 3: only PluginLab's "no such member" marks ---------------------------------


@pytest.fixture
def html_404_server() -> Iterator[str]:
    """A server answering every request with an HTML 404, like a proxy."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html><body>Not Found</body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_DELETE = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _state(member_id: str) -> tuple:
    return tuple(
        Member.objects.filter(remote_id=member_id).values_list(
            "deleted_remotely_at", "last_synced_at", "remote_updated_at_ms"
        )
    )


def test_a_wrong_auth_url_path_marks_nothing_and_names_the_url(sandbox, settings):
    """Red on the old code: any 404 returned None and the member was marked."""
    member_id = sandbox.member_ids()[0]
    sync.sync_member(member_id)
    before = _state(member_id)
    wrong = f"{sandbox.url}/wrong-prefix"
    settings.PLUGINLAB = {**settings.PLUGINLAB, "AUTH_URL": wrong}
    with pytest.raises(UnexpectedNotFound) as excinfo:
        sync.sync_member(member_id)
    assert excinfo.value.code == "request/not-found"  # the sandbox's unknown-route answer
    assert excinfo.value.url.startswith(wrong)
    assert wrong in str(excinfo.value) and sandbox.admin_secret not in str(excinfo.value)
    assert _state(member_id) == before


def test_an_html_404_marks_nothing(sandbox, settings, html_404_server):
    member_id = sandbox.member_ids()[1]
    sync.sync_member(member_id)
    before = _state(member_id)
    settings.PLUGINLAB = {**settings.PLUGINLAB, "AUTH_URL": html_404_server}
    with pytest.raises(UnexpectedNotFound) as excinfo:
        sync.sync_member(member_id)
    assert excinfo.value.code is None and html_404_server in str(excinfo.value)
    assert _state(member_id) == before


def test_member_not_found_still_marks_the_member(sandbox):
    member_id = sandbox.member_ids()[2]
    sync.sync_member(member_id)
    sandbox.delete_member(member_id)
    row = sync.sync_member(member_id)
    assert row is not None and row.deleted_remotely_at is not None


def test_identities_and_quota_tell_member_not_found_from_a_wrong_url(sandbox, settings):
    from pluginlab_django.clients import get_pluginlab_client

    unknown = "mem_" + "0" * 40
    client = get_pluginlab_client()
    with pytest.raises(MemberNotFound):
        client.get_member_identities(unknown)
    assert client.get_quota_usage(unknown) is None
    settings.PLUGINLAB = {
        **settings.PLUGINLAB,
        "AUTH_URL": f"{sandbox.url}/nope",
        "MONETIZATION_URL": f"{sandbox.url}/nope",
    }
    client = get_pluginlab_client()
    with pytest.raises(UnexpectedNotFound):
        client.get_member_identities(unknown)
    with pytest.raises(UnexpectedNotFound):
        client.get_quota_usage(unknown)


def test_admin_delete_with_a_wrong_auth_url_keeps_the_row(sandbox, settings):
    member = sync.sync_member(sandbox.member_ids()[3])
    settings.PLUGINLAB = {**settings.PLUGINLAB, "AUTH_URL": f"{sandbox.url}/wrong"}
    result = member_services.delete_members([member])
    assert result.deleted == [] and len(result.failed) == 1
    assert "request/not-found" in result.failed[0][1]
    assert Member.objects.filter(pk=member.pk).exists()


def test_the_locked_per_row_path_applies_the_same_rule(sandbox):
    """The path for backends without ON CONFLICT ... DO UPDATE ... WHERE."""
    from django.db import transaction
    from django.utils import timezone

    from pluginlab_django.sync.member_upsert import _upsert_per_row
    from pluginlab_django.sync.members import UPDATE_FIELDS, member_row_values

    wires = [sandbox.get_member(mid) for mid in sandbox.member_ids()[:3]]

    def rows(*members):
        now = timezone.now()
        return [{"remote_id": m.id, **member_row_values(m, now)} for m in members]

    with transaction.atomic():
        first = _upsert_per_row(rows(*map(remote.Member.from_json, wires[:2])), UPDATE_FIELDS)
    assert sorted(first.created) == sorted(w["id"] for w in wires[:2])
    sync.mark_member_deleted(wires[1]["id"])
    page = [
        newer_copy(wires[0], name="older", later_ms=wires[0]["updatedAtMs"] - 1),  # skipped
        remote.Member.from_json(wires[1]),  # marked deleted: rewritten
        remote.Member.from_json(wires[2]),  # new
    ]
    with transaction.atomic():
        second = _upsert_per_row(rows(*page), UPDATE_FIELDS)
    assert list(second.created) == [wires[2]["id"]]
    assert list(second.updated) == [wires[1]["id"]]
    assert Member.objects.get(remote_id=wires[0]["id"]).name != "older"
    assert Member.objects.get(remote_id=wires[1]["id"]).deleted_remotely_at is None


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_uncommitted_newer_write_wins_over_the_page(sandbox):
    """Two real connections: a webhook's transaction stores a newer copy and
    commits while the page is being written. On PostgreSQL the page's
    statement waits for that row's lock and then judges the committed row
    (red on the old code, whose unlocked pre-SELECT had seen the old one);
    on SQLite the page waits for the write lock."""
    from django.db import connections, transaction

    sync.sync_members(page_size=10)
    member_id = sandbox.member_ids()[4]
    sandbox.update_member(member_id, name="Page copy")
    page_ms = sandbox.get_member(member_id)["updatedAtMs"]
    webhook_copy = newer_copy(
        sandbox.get_member(member_id), name="Webhook copy", later_ms=page_ms + 60_000
    )
    stored = threading.Event()
    failures: list[BaseException] = []

    def webhook() -> None:
        try:
            with transaction.atomic():
                sync.store_member(webhook_copy)
                stored.set()
                time.sleep(1.0)  # the page's write starts meanwhile and waits
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)
            stored.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=webhook)
    thread.start()
    assert stored.wait(10)
    run = sync.sync_members(page_size=10)
    thread.join(10)
    assert not failures, failures
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    row = Member.objects.get(remote_id=member_id)
    assert (row.name, row.remote_updated_at_ms) == ("Webhook copy", page_ms + 60_000)
