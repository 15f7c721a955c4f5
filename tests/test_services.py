"""Services write through: the remote first, then the mirror; a remote
failure changes nothing locally."""

from __future__ import annotations

import pytest
from django.db import connection

from pluginlab_django import sync
from pluginlab_django.clients import (
    PluginLabError,
    PluginLabUnavailable,
    RefreshNotSupported,
    RefreshTokenFailed,
    RemoteError,
)
from pluginlab_django.models import ApiKey, CustomEvent, Member
from pluginlab_django.services import apikeys, events, identities, members
from tests.member_rows import mirrored_member_with

pytestmark = pytest.mark.django_db


def mirrored(sandbox, index: int = 0) -> Member:
    return sync.sync_member(sandbox.member_ids()[index])


# Members -----------------------------------------------------------------------


def test_update_writes_through_and_stores_the_answer(sandbox):
    member = mirrored(sandbox)
    row = members.update_member(member, {"name": "Ada L.", "metadata": {"tier": "gold"}})
    assert sandbox.get_member(member.remote_id)["name"] == "Ada L."
    assert sandbox.get_member(member.remote_id)["metadata"] == {"tier": "gold"}
    row.refresh_from_db()
    assert (row.name, row.metadata) == ("Ada L.", {"tier": "gold"})
    assert row.remote_updated_at_ms == sandbox.get_member(member.remote_id)["updatedAtMs"]


def test_update_failure_leaves_the_row_unchanged(sandbox):
    member = mirrored(sandbox)
    before = Member.objects.values().get(pk=member.pk)
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth")
    with pytest.raises(PluginLabUnavailable):
        members.update_member(member, {"name": "Never stored"})
    assert Member.objects.values().get(pk=member.pk) == before
    sandbox.clear_faults()
    assert sandbox.get_member(member.remote_id)["name"] != "Never stored"


def test_update_refuses_fields_pluginlab_does_not_edit(sandbox):
    with pytest.raises(ValueError):
        members.update_member(mirrored(sandbox), {"email": "x@example.com"})


def test_create_member_goes_through_the_api(sandbox):
    row = members.create_member(
        email="created@example.com", password="pw-123456", is_verified=True, metadata={"a": 1}
    )
    assert row.remote_id.startswith("mem_") and row.is_verified and row.metadata == {"a": 1}
    assert sandbox.get_member(row.remote_id)["email"] == "created@example.com"


def test_create_member_refused_remotely_creates_nothing(sandbox):
    existing = sandbox.get_member(sandbox.member_ids()[0])["email"]
    with pytest.raises(PluginLabError) as info:
        members.create_member(email=existing, password="pw-123456")
    assert info.value.status == 409
    assert not Member.objects.exists()


def test_delete_reports_partial_failures_and_keeps_the_failed(sandbox):
    first, second = mirrored(sandbox, 0), mirrored(sandbox, 1)
    sandbox.delete_member(second.remote_id)  # already gone remotely: counts as deleted
    result = members.delete_members([first, second])
    assert sorted(result.deleted) == sorted([first.remote_id, second.remote_id])
    assert not Member.objects.filter(pk__in=[first.pk, second.pk]).exists()
    assert sandbox.get_member(first.remote_id) is None

    third = mirrored(sandbox, 2)
    sandbox.set_faults(drop_rate=1.0, path_prefix="/auth")
    result = members.delete_members([third])
    assert result.deleted == [] and result.failed[0][0] == third and result.failed[0][1]
    assert Member.objects.filter(pk=third.pk).exists()


# Identities ----------------------------------------------------------------------


def test_refresh_stores_the_new_token_encrypted(sandbox):
    member = mirrored_member_with(sandbox, "google")
    identity = member.identities.get(provider="google")
    old = identity.access_token
    row = identities.refresh_identity(identity)
    row.refresh_from_db()
    assert row.access_token and row.access_token != old
    assert row.refreshed_at is not None and not row.needs_reauth
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token FROM pluginlab_django_identity WHERE id = %s", [row.pk])
        (stored,) = cursor.fetchone()
    assert stored and row.access_token not in stored  # encrypted at rest


def test_revoked_refresh_token_marks_needs_reauth(sandbox):
    member = mirrored_member_with(sandbox, "google", revoked=True)
    identity = member.identities.get(provider="google")
    with pytest.raises(RefreshTokenFailed):
        identities.refresh_identity(identity)
    identity.refresh_from_db()
    assert identity.needs_reauth


def test_github_cannot_be_refreshed_and_pluginlab_is_not_called(sandbox):
    member = mirrored_member_with(sandbox, "github")
    identity = member.identities.get(provider="github")
    calls = sandbox.request_count("/auth")
    with pytest.raises(RefreshNotSupported):
        identities.refresh_identity(identity)
    assert sandbox.request_count("/auth") == calls


# API keys ------------------------------------------------------------------------


def test_create_returns_the_secret_once_and_stores_no_secret(sandbox):
    created = apikeys.create_api_key(description="svc", scope="plugipay:checkout:*")
    assert created.secret.startswith("sk_test_")
    assert created.secret not in repr(created)
    row = ApiKey.objects.get(pk=created.record.pk)
    assert created.secret not in str(ApiKey.objects.filter(pk=row.pk).values().get())
    assert (row.description, row.scope, row.mode) == ("svc", "plugipay:checkout:*", "test")


def test_revoke_twice_reports_already_revoked(sandbox):
    row = apikeys.create_api_key(description="tmp").record
    assert apikeys.revoke_api_key(row).already_revoked is False
    assert row.revoked_at is not None
    ApiKey.objects.filter(pk=row.pk).update(revoked_at=None)  # a stale mirror
    row.refresh_from_db()
    result = apikeys.revoke_api_key(row)
    assert result.already_revoked is True and result.record.revoked_at is not None


def test_rotate_creates_same_description_and_scope_then_revokes(sandbox):
    old = apikeys.create_api_key(description="rotating", scope="plugipay:webhook:read").record
    new = apikeys.rotate_api_key(old).created
    old.refresh_from_db()
    assert old.revoked_at is not None
    assert new.record.scope == "plugipay:webhook:read"
    assert new.record.description == apikeys.rotation_description("rotating")
    assert new.record.description.startswith("rotating (rotation 20")
    assert new.secret and new.record.revoked_at is None


def test_revoke_when_plugipay_is_down_changes_nothing(sandbox):
    row = apikeys.create_api_key(description="kept").record
    sandbox.set_faults(drop_rate=1.0, path_prefix="/plugipay")
    with pytest.raises(RemoteError):
        apikeys.revoke_api_key(row)
    row.refresh_from_db()
    assert row.revoked_at is None


# Custom events -------------------------------------------------------------------


def test_event_is_sent_counted_and_logged(sandbox):
    member = mirrored(sandbox, 3)
    event = events.send_custom_event(
        event_source="web_ui", member=member, country_code="us", subdivision_code="ca"
    )
    assert event.status == CustomEvent.Status.SENT
    assert (event.event_source, event.country_code, event.subdivision_code) == (
        "web_ui",
        "US",
        "CA",
    )
    assert event.member == member and event.member_remote_id == member.remote_id


@pytest.mark.parametrize(
    ("source", "country", "subdivision"),
    [
        ("", "", ""),
        ("x" * 11, "", ""),
        ("ok", "USA", ""),
        ("ok", "US", "toolong!"),
        ("ok", "", "CA"),
    ],
)
def test_invalid_events_are_refused_before_sending(sandbox, source, country, subdivision):
    calls = sandbox.request_count("/event")
    with pytest.raises(events.CustomEventInvalid):
        events.send_custom_event(
            event_source=source, country_code=country, subdivision_code=subdivision
        )
    assert sandbox.request_count("/event") == calls


def test_failed_event_is_logged_with_its_error(sandbox):
    sandbox.set_faults(drop_rate=1.0, path_prefix="/event")
    with pytest.raises(RemoteError) as info:
        events.send_custom_event(event_source="api", member_id=sandbox.member_ids()[0])
    logged = CustomEvent.objects.get()
    assert logged.status == CustomEvent.Status.FAILED and logged.error
    assert info.value.custom_event == logged
