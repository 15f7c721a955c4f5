"""Metering views: MeteredQuota, @metered, record_usage and the fresh quota
count, against the sandbox (tokens) with the outbox flushed by hand."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from pluginlab_django import sync
from pluginlab_django.clients import get_pluginlab_client
from pluginlab_django.metering import check_quota
from pluginlab_django.models import CustomEvent, Member, QuotaSnapshot
from pluginlab_django.permissions import IsWithinQuota, MeteredQuota
from pluginlab_django.services import outbox
from pluginlab_django.services.events import CustomEventInvalid, record_usage

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_verifier")]

VIEWS = ["metering-drf", "metering-plain", "metering-plain-outside"]


@pytest.fixture
def client():
    return APIClient()


def call(client, name, token, **query):
    return client.get(reverse(name), query, HTTP_AUTHORIZATION=f"Bearer {token}")


def with_snapshot(member: Member, used: int, limit: int = 100, **extra) -> QuotaSnapshot:
    snapshot = QuotaSnapshot.objects.create(
        member=member, usage_count=used, usage_limit=limit, interval="month", **extra
    )
    Member.objects.filter(pk=member.pk).update(latest_quota=snapshot)
    return snapshot


def remote_usage(member_id: str) -> int:
    return get_pluginlab_client().get_quota_usage(member_id).usage_count


@pytest.fixture
def member(sandbox) -> Member:
    return sync.sync_member(sandbox.member_ids()[0])


@pytest.fixture
def token(sandbox, member) -> str:
    return sandbox.mint_token(member.remote_id)


# --- recording -------------------------------------------------------------


@pytest.mark.parametrize("name", VIEWS)
def test_a_successful_call_records_one_pending_use_and_calls_nobody(
    sandbox, client, member, token, name
):
    with_snapshot(member, used=10)
    before = sandbox.request_count("/event")
    response = call(client, name, token)
    assert response.status_code == 200, response.content
    event = CustomEvent.objects.get()
    assert event.status == CustomEvent.Status.PENDING
    assert event.member_remote_id == member.remote_id and event.member_id == member.pk
    assert event.event_source == ("API" if name == "metering-drf" else "WEB_UI")
    assert event.is_in_quota
    assert sandbox.request_count("/event") == before  # no network call in the request
    assert check_quota(member.remote_id).used == 11  # counted at once


@pytest.mark.parametrize("name", VIEWS)
@pytest.mark.parametrize("status", [400, 404, 500, 503, 302])
def test_a_non_2xx_response_records_nothing(sandbox, client, member, token, name, status):
    response = call(client, name, token, status=status)
    assert response.status_code == status
    assert not CustomEvent.objects.exists()


def test_an_exception_in_a_drf_view_records_nothing(sandbox, member, token):
    client = APIClient(raise_request_exception=False)
    response = call(client, "metering-drf", token, **{"raise": "1"})
    assert response.status_code == 500
    assert not CustomEvent.objects.exists()


@pytest.mark.parametrize("name", VIEWS)
def test_no_token_is_401_and_records_nothing(sandbox, client, name):
    assert client.get(reverse(name)).status_code == 401
    assert not CustomEvent.objects.exists()


# --- the fresh quota count ------------------------------------------------------


@pytest.mark.parametrize("name", VIEWS)
def test_limit_100_with_99_used_allows_exactly_one_more_call(sandbox, client, member, token, name):
    with_snapshot(member, used=99, limit=100)
    assert call(client, name, token).status_code == 200
    refused = call(client, name, token)
    assert refused.status_code == 403
    assert refused.json()["detail"] == IsWithinQuota.message
    assert CustomEvent.objects.count() == 1  # the refused call recorded nothing
    assert call(client, name, token).status_code == 403  # and stays refused


def test_is_within_quota_counts_local_uses_since_the_snapshot(sandbox, client, member, token):
    """Regression: IsWithinQuota read the snapshot alone, so a member at 99/100
    with a use still pending got in."""
    with_snapshot(member, used=99, limit=100)
    assert call(client, "auth-quota", token).status_code == 200
    record_usage(member, "API")
    refused = call(client, "auth-quota", token)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "The quota of your plan is used up."


def test_a_new_snapshot_supersedes_the_local_count(sandbox, member):
    start = remote_usage(member.remote_id)
    snapshot = sync.snapshot_quotas([member.remote_id])
    assert snapshot.status == "succeeded"
    for _ in range(3):
        record_usage(member, "API")
    assert check_quota(member.remote_id).used == start + 3  # pending
    summary = outbox.send_pending()
    assert (summary.sent, summary.still_pending) == (3, 0)
    assert check_quota(member.remote_id).used == start + 3  # sent after the snapshot
    sync.snapshot_quotas([member.remote_id])  # PluginLab now says start + 3
    assert check_quota(member.remote_id).used == start + 3  # not counted twice
    assert remote_usage(member.remote_id) == start + 3


def test_failed_and_out_of_quota_events_do_not_count(sandbox, member):
    with_snapshot(member, used=5)
    record_usage(member, "API", is_in_quota=False)
    CustomEvent.objects.create(member=member, member_remote_id=member.remote_id,
                               event_source="API", status="failed")  # fmt: skip
    assert check_quota(member.remote_id).used == 5


def test_events_sent_before_the_snapshot_are_not_counted_again(sandbox, member):
    snapshot = with_snapshot(member, used=7)
    CustomEvent.objects.create(
        member=member,
        member_remote_id=member.remote_id,
        event_source="API",
        status="sent",
        sent_at=snapshot.taken_at - timezone.timedelta(seconds=1),
    )
    assert check_quota(member.remote_id).used == 7


@pytest.mark.parametrize("name", [*VIEWS, "auth-quota"])
def test_a_member_deleted_remotely_is_refused_and_nothing_recorded(
    sandbox, client, member, token, name
):
    with_snapshot(member, used=1)
    Member.objects.filter(pk=member.pk).update(deleted_remotely_at=timezone.now())
    response = call(client, name, token)
    assert response.status_code == 403
    assert response.json()["detail"] == "This PluginLab account was deleted."
    assert not CustomEvent.objects.exists()


def test_unlimited_members_are_never_refused(sandbox, client, member, token):
    with_snapshot(member, used=10_000, limit=0, is_unlimited=True)
    assert call(client, "metering-drf", token).status_code == 200


@pytest.mark.parametrize(("policy", "status"), [("allow", 200), ("deny", 403)])
def test_no_snapshot_follows_the_setting(sandbox, client, settings, policy, status):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "QUOTA_WHEN_NO_SNAPSHOT": policy}
    member_id = sandbox.member_ids()[1]  # not mirrored at all
    token = sandbox.mint_token(member_id)
    assert call(client, "metering-drf", token).status_code == status
    recorded = list(CustomEvent.objects.values_list("member_remote_id", "member_id"))
    assert recorded == ([(member_id, None)] if status == 200 else [])


# --- record_usage ---------------------------------------------------------------


def test_record_usage_by_id_finds_the_member_row(sandbox, member):
    event = record_usage(member.remote_id, "batch", country_code="us", subdivision_code="CA")
    assert (event.member_id, event.status) == (member.pk, "pending")
    assert (event.event_source, event.country_code, event.subdivision_code) == ("batch", "US", "CA")


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("mem_x", "ELEVENCHARS"), {}, "at most 10 characters"),
        (("mem_x", ""), {}, "required"),
        (("mem_x", "API"), {"country_code": "USA"}, "two letters"),
        (("mem_x", "API"), {"subdivision_code": "CA"}, "needs a country code"),
        (("", "API"), {}, "member"),
    ],
)
def test_record_usage_validates_like_pluginlab(args, kwargs, message):
    with pytest.raises(CustomEventInvalid, match=message):
        record_usage(*args, **kwargs)
    assert not CustomEvent.objects.exists()


def test_record_usage_refuses_a_deleted_member(sandbox, member):
    Member.objects.filter(pk=member.pk).update(deleted_remotely_at=timezone.now())
    with pytest.raises(CustomEventInvalid, match="deleted"):
        record_usage(member.remote_id, "API")
    assert not CustomEvent.objects.exists()


def test_metered_quota_validates_its_event_source_when_the_view_is_defined():
    with pytest.raises(CustomEventInvalid):
        MeteredQuota(event_source="MUCH-TOO-LONG")
    permission = MeteredQuota(event_source="api ")
    assert permission.meter.event_source == "api"
    assert permission.__name__ == "MeteredQuota('api')"
