"""The member admin: list, write-through edit/add/delete, inline identities."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from pluginlab_django import sync
from pluginlab_django.models import Identity, Member
from tests.member_rows import make_members

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:pluginlab_django_member_changelist")


def change_url(member: Member) -> str:
    return reverse("admin:pluginlab_django_member_change", args=[member.pk])


def form_data(member: Member, **changes) -> dict:
    data = {
        "name": member.name,
        "given_name": member.given_name,
        "family_name": member.family_name,
        "picture_url": member.picture_url,
        "metadata": json.dumps(member.metadata),
        "identities-TOTAL_FORMS": "0",
        "identities-INITIAL_FORMS": "0",
        "_save": "Save",
    }
    if member.is_verified:
        data["is_verified"] = "on"
    data.update(changes)
    return data


# The list ---------------------------------------------------------------------


def test_changelist_shows_the_quota_bar_red_when_over(admin_client):
    make_members(6)
    page = admin_client.get(CHANGELIST).content.decode()
    assert "user0@example.com" in page
    assert "pl-usage-over" in page and "120 / 100" in page
    assert "pl-usage-ok" in page and "10 / 100" in page


def test_queries_per_page_do_not_depend_on_the_row_count(admin_client, settings):
    counts = {}
    for total in (20, 200):
        Member.objects.all().delete()
        make_members(total)
        admin_client.get(CHANGELIST)  # warm caches (session, content types)
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(CHANGELIST, {"all": ""})
        assert response.status_code == 200
        counts[total] = len(queries)
    assert counts[20] == counts[200]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"sign_in_method": "google"}, {"user1@example.com", "user3@example.com"}),
        ({"is_verified__exact": "0"}, {"user0@example.com", "user2@example.com"}),
        ({"plan_id": "plan_pro"}, {"user0@example.com"}),
        ({"quota": "over"}, {"user0@example.com", "user3@example.com"}),
        ({"q": "user2@"}, {"user2@example.com"}),
        ({"q": "User 3"}, {"user3@example.com"}),
        ({"q": f"mem_{1:040x}"}, {"user1@example.com"}),
    ],
)
def test_filters_and_search(admin_client, query, expected):
    make_members(4)
    response = admin_client.get(CHANGELIST, query)
    shown = {m.email for m in response.context["cl"].result_list}
    assert shown == expected


def test_deleted_remotely_filter(admin_client):
    members = make_members(3)
    Member.objects.filter(pk=members[1].pk).update(deleted_remotely_at=timezone.now())
    response = admin_client.get(CHANGELIST, {"deleted": "yes"})
    assert [m.pk for m in response.context["cl"].result_list] == [members[1].pk]


# The change page ----------------------------------------------------------------


def test_identities_inline_masks_tokens_and_shows_expiry(admin_client):
    (member,) = make_members(1)
    Identity.objects.create(
        member=member,
        provider="google",
        provider_user_id="g-1",
        access_token="ya29.full-secret-access-token-value",
        access_token_expires_at=timezone.now() - timedelta(hours=1),
        refresh_token="1//full-secret-refresh-token",
        needs_reauth=True,
    )
    page = admin_client.get(change_url(member)).content.decode()
    assert "full-secret" not in page
    assert "ya29…lue" in page
    assert "(expired)" in page
    assert "quota history" in page.lower()


def test_edit_writes_through_then_stores_the_answer(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    data = form_data(member, name="Written Through", metadata='{"tier": "gold"}')
    response = admin_client.post(change_url(member), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    remote = sandbox.get_member(member.remote_id)
    assert remote["name"] == "Written Through" and remote["metadata"] == {"tier": "gold"}
    member.refresh_from_db()
    assert member.name == "Written Through"
    assert member.remote_updated_at_ms == remote["updatedAtMs"]


def test_invalid_json_metadata_is_refused_and_nothing_is_sent(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    calls = sandbox.request_count("/auth")
    response = admin_client.post(change_url(member), form_data(member, metadata="{not json"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["metadata"]
    assert sandbox.request_count("/auth") == calls


def test_remote_failure_shows_why_and_leaves_the_row(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    before = Member.objects.values().get(pk=member.pk)
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth")
    response = admin_client.post(change_url(member), form_data(member, name="Lost Edit"))
    assert response.status_code == 200
    assert "PluginLab refused the change, nothing was saved" in response.content.decode()
    assert Member.objects.values().get(pk=member.pk) == before


def test_a_failing_inline_after_a_valid_form_makes_no_remote_call(admin_client, sandbox):
    """Django validates the inlines after the form: PluginLab must not have
    been changed by then (it was, when the form's clean() called it)."""
    member = sync.sync_member(sandbox.member_ids()[0])
    remote_before = sandbox.get_member(member.remote_id)
    before = Member.objects.values().get(pk=member.pk)
    calls = sandbox.request_count()
    data = form_data(member, name="Never Sent")
    del data["identities-TOTAL_FORMS"]  # the inline's management form is broken
    response = admin_client.post(change_url(member), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.is_valid()  # the form itself was fine
    assert any(
        formset.formset.non_form_errors() for formset in response.context["inline_admin_formsets"]
    )
    assert sandbox.request_count() == calls  # no remote call at all
    assert sandbox.get_member(member.remote_id) == remote_before
    assert Member.objects.values().get(pk=member.pk) == before


def test_a_refusal_keeps_what_was_typed_and_calls_pluginlab_once(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    sandbox.set_faults(error_rate=1.0, error_status=400, path_prefix="/auth")
    calls = sandbox.request_count("/auth")
    response = admin_client.post(change_url(member), form_data(member, name="Typed Name"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "PluginLab refused the change, nothing was saved" in page
    assert 'value="Typed Name"' in page
    assert sandbox.request_count("/auth") == calls + 1  # the re-render sends nothing


def test_add_creates_the_member_through_the_api(admin_client, sandbox):
    response = admin_client.post(
        reverse("admin:pluginlab_django_member_add"),
        {
            "email": "added@example.com",
            "password": "pw-123456",
            "metadata": '{"a": 1}',
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    member = Member.objects.get(email="added@example.com")
    assert sandbox.get_member(member.remote_id)["metadata"] == {"a": 1}


def test_add_of_an_existing_email_shows_pluginlabs_refusal(admin_client, sandbox):
    taken = sandbox.get_member(sandbox.member_ids()[0])["email"]
    response = admin_client.post(
        reverse("admin:pluginlab_django_member_add"),
        {"email": taken, "password": "pw-123456", "metadata": "{}", "_save": "Save"},
    )
    assert response.status_code == 200
    assert "PluginLab refused to create the member" in response.content.decode()
    assert not Member.objects.exists()


# Delete ------------------------------------------------------------------------


def test_delete_goes_to_pluginlab_first(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    url = reverse("admin:pluginlab_django_member_delete", args=[member.pk])
    assert admin_client.get(url).status_code == 200  # the confirmation page
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Member.objects.filter(pk=member.pk).exists()
    assert sandbox.get_member(member.remote_id) is None


def test_delete_failure_keeps_the_row_and_says_why(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    sandbox.set_faults(drop_rate=1.0, path_prefix="/auth")
    url = reverse("admin:pluginlab_django_member_delete", args=[member.pk])
    response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert Member.objects.filter(pk=member.pk).exists()
    assert any("was not deleted" in str(m) for m in response.context["messages"])


def test_bulk_delete_partial_failure_names_and_keeps_the_failed(admin_client, sandbox):
    kept = sync.sync_member(sandbox.member_ids()[0])
    gone = sync.sync_member(sandbox.member_ids()[1])
    # PluginLab answers 503 for the first member only.
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth", count=4)
    response = admin_client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [kept.pk, gone.pk], "post": "yes"},
        follow=True,
    )
    texts = [str(m) for m in response.context["messages"]]
    assert Member.objects.filter(pk=kept.pk).exists()
    assert not Member.objects.filter(pk=gone.pk).exists()
    assert any(kept.email in t and "not deleted" in t for t in texts)
    assert any("Deleted 1 member" in t for t in texts)
