"""Member actions: each asks first, reports per object, and is gated by its
own permission; with the remote down each fails clearly and changes nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from pluginlab_django import sync
from pluginlab_django.models import CustomEvent, Identity, Member, QuotaSnapshot
from tests.member_rows import mirrored_member_with

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:pluginlab_django_member_changelist")


def run_action(client, action: str, members, **extra):
    """Post the action twice, as a user would: ask, then confirm."""
    data = {"action": action, "_selected_action": [m.pk for m in members]}
    asked = client.post(CHANGELIST, data)
    assert asked.status_code == 200 and "Yes, go ahead" in asked.content.decode()
    done = client.post(CHANGELIST, {**data, "confirm": "yes", **extra}, follow=True)
    return done, [str(m) for m in done.context["messages"]]


def staff(django_user_model, client, *perms: str):
    user = django_user_model.objects.create_user("staff", "s@example.com", "pw", is_staff=True)
    codenames = ["view_member", "view_apikey", *perms]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def test_sync_action_asks_then_reports_each_member(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    sandbox.update_member(member.remote_id, name="Renamed Remotely")
    _, texts = run_action(admin_client, "sync_from_pluginlab", [member])
    assert texts == [f"{member}: synced."]
    member.refresh_from_db()
    assert member.name == "Renamed Remotely"


def test_sync_action_marks_a_member_gone_remotely(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    sandbox.delete_member(member.remote_id)
    _, texts = run_action(admin_client, "sync_from_pluginlab", [member])
    assert "marked as deleted remotely" in texts[0]


def test_snapshot_action_records_usage(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    _, texts = run_action(admin_client, "snapshot_quota_usage", [member])
    assert "1 taken, 0 failed" in texts[0]
    member.refresh_from_db()
    assert member.latest_quota is not None


def test_refresh_action_reports_each_provider(admin_client, sandbox):
    google = mirrored_member_with(sandbox, "google")
    github = mirrored_member_with(sandbox, "github")
    revoked = mirrored_member_with(sandbox, "google", revoked=True)
    _, texts = run_action(admin_client, "refresh_identity_tokens", [google, github, revoked])
    joined = "\n".join(texts)
    assert f"{google} / Google: token refreshed." in joined
    assert f"{github} / GitHub: GitHub tokens cannot be refreshed." in joined
    assert f"{revoked} / Google: the provider refused the refresh token" in joined
    assert "must sign in again" in joined
    assert Identity.objects.get(member=revoked, provider="google").needs_reauth


def test_custom_event_action_uses_an_intermediate_form(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    data = {"action": "create_custom_event", "_selected_action": [member.pk], "confirm": "yes"}
    invalid = admin_client.post(CHANGELIST, {**data, "event_source": "x" * 11})
    assert invalid.status_code == 200 and invalid.context["form"].errors
    assert not CustomEvent.objects.exists()
    done = admin_client.post(
        CHANGELIST,
        {**data, "event_source": "ADMIN", "country_code": "fr", "is_in_quota": "on"},
        follow=True,
    )
    assert [str(m) for m in done.context["messages"]] == [f"{member}: event ADMIN sent."]
    event = CustomEvent.objects.get()
    assert (event.member, event.country_code, event.status) == (member, "FR", "sent")


@pytest.mark.parametrize(
    "action", ["sync_from_pluginlab", "snapshot_quota_usage", "refresh_identity_tokens"]
)
def test_actions_with_the_remote_down_fail_clearly_and_change_nothing(
    admin_client, sandbox, action
):
    member = mirrored_member_with(sandbox, "google")
    before = (
        Member.objects.values().get(pk=member.pk),
        list(Identity.objects.filter(member=member).values()),
        QuotaSnapshot.objects.count(),
    )
    sandbox.set_faults(drop_rate=1.0)
    _, texts = run_action(admin_client, action, [member])
    assert any("fail" in t or "nothing changed" in t for t in texts), texts
    after = (
        Member.objects.values().get(pk=member.pk),
        list(Identity.objects.filter(member=member).values()),
        QuotaSnapshot.objects.count(),
    )
    assert after == before


def test_custom_event_with_the_remote_down_is_logged_as_failed(admin_client, sandbox):
    member = sync.sync_member(sandbox.member_ids()[0])
    sandbox.set_faults(drop_rate=1.0, path_prefix="/event")
    done = admin_client.post(
        CHANGELIST,
        {
            "action": "create_custom_event",
            "_selected_action": [member.pk],
            "confirm": "yes",
            "event_source": "ADMIN",
            "is_in_quota": "on",
        },
        follow=True,
    )
    assert "event not recorded" in str(next(iter(done.context["messages"])))
    assert CustomEvent.objects.get().status == "failed"


# Permissions ---------------------------------------------------------------------


def test_view_only_staff_sees_read_only_pages_and_no_actions(client, django_user_model, sandbox):
    staff(django_user_model, client)
    member = sync.sync_member(sandbox.member_ids()[0])
    assert client.get(CHANGELIST).context["action_form"] is None  # no action at all
    page = client.get(reverse("admin:pluginlab_django_member_change", args=[member.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    client.post(
        CHANGELIST,
        {"action": "sync_from_pluginlab", "_selected_action": [member.pk], "confirm": "yes"},
    )
    assert sandbox.request_count("/auth") == 1  # only the sync_member above: refused


def test_each_action_needs_its_own_permission(client, django_user_model, sandbox):
    staff(django_user_model, client, "sync")
    sync.sync_member(sandbox.member_ids()[0])
    actions = {
        name for name, _ in client.get(CHANGELIST).context["action_form"].fields["action"].choices
    }
    assert {"sync_from_pluginlab", "snapshot_quota_usage"} <= actions
    assert not actions & {"refresh_identity_tokens", "create_custom_event", "delete_selected"}


# The standalone custom event form -----------------------------------------------


def test_standalone_custom_event_form_sends_and_logs(admin_client, sandbox):
    url = reverse("admin:pluginlab_django_customevent_add")
    member_id = sandbox.member_ids()[0]
    refused = admin_client.post(
        url,
        {
            "member_id": member_id,
            "event_source": "WEB",
            "country_code": "US",
            "subdivision_code": "toolong!",
        },
    )
    assert refused.status_code == 200 and not CustomEvent.objects.exists()
    sent = admin_client.post(
        url,
        {
            "member_id": member_id,
            "event_source": "WEB",
            "country_code": "US",
            "subdivision_code": "CA",
            "is_in_quota": "on",
        },
    )
    assert sent.status_code == 302
    event = CustomEvent.objects.get()
    assert (event.member_remote_id, event.subdivision_code, event.status) == (
        member_id,
        "CA",
        "sent",
    )


def test_standalone_custom_event_needs_the_permission(client, django_user_model):
    staff(django_user_model, client, "view_customevent")
    response = client.get(reverse("admin:pluginlab_django_customevent_add"))
    assert response.status_code == 302
