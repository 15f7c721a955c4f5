"""API keys in the admin: the secret is shown once and kept nowhere."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from pluginlab_django import sync
from pluginlab_django.models import ApiKey
from pluginlab_django.services import apikeys as apikey_service

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:pluginlab_django_apikey_changelist")
ADD = reverse("admin:pluginlab_django_apikey_add")
SYNC = reverse("admin:pluginlab_django_apikey_sync")


def test_list_shows_keys_with_mode_age_and_state(admin_client, sandbox):
    sync.sync_api_keys()
    page = admin_client.get(CHANGELIST).content.decode()
    for key in ApiKey.objects.all():
        assert key.key_id in page
    assert "revoked" in page and "active" in page
    active = admin_client.get(CHANGELIST, {"state": "active"}).context["cl"].result_list
    assert all(key.revoked_at is None for key in active)


def form_token(client, url=ADD, data=None) -> str:
    """The one-time token of the add form (GET) or rotate confirmation (POST)."""
    response = client.get(url) if data is None else client.post(url, data)
    return response.context["form"]["once"].value()


def sandbox_record_count(sandbox) -> int:
    return len(sandbox.plugipay.records)


def test_add_shows_the_secret_once_and_stores_it_nowhere(admin_client, sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    once = form_token(admin_client)
    response = admin_client.post(ADD, {"description": "ci deploy", "scope": "*", "once": once})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = response.context["created"][0].secret
    page = response.content.decode()
    assert secret.startswith("sk_test_") and secret in page and "pl-copy" in page

    row = ApiKey.objects.get(description="ci deploy")
    assert secret not in str(ApiKey.objects.filter(pk=row.pk).values().get())
    assert all(secret not in (e.change_message + e.object_repr) for e in LogEntry.objects.all())
    assert secret not in caplog.text
    for url in (CHANGELIST, ADD, reverse("admin:pluginlab_django_apikey_change", args=[row.pk])):
        assert secret not in admin_client.get(url).content.decode()
    session = admin_client.session
    assert all(secret not in str(value) for value in session.values())


def test_add_refused_by_plugipay_shows_why(admin_client, sandbox):
    once = form_token(admin_client)
    data = {"description": "x", "scope": "not a scope", "once": once}
    response = admin_client.post(ADD, data)
    assert response.status_code == 200
    assert "Plugipay refused to create the key" in response.content.decode()
    assert not ApiKey.objects.filter(description="x").exists()
    # ... and the form shown again carries a fresh token to retry with.
    assert response.context["form"]["once"].value() != once


def test_resent_add_post_creates_exactly_one_key(admin_client, sandbox):
    """Regression: the POST answered with the secret page used to mint a
    second key when re-sent (reload, back button, double click)."""
    before = sandbox_record_count(sandbox)
    data = {"description": "once only", "scope": "*", "once": form_token(admin_client)}
    first = admin_client.post(ADD, data)
    assert first.status_code == 200 and first.context["created"][0].secret
    again = admin_client.post(ADD, data, follow=True)
    assert again.redirect_chain[-1][0] == CHANGELIST
    (message,) = [str(m) for m in again.context["messages"]]
    assert "already submitted" in message and first.context["created"][0].record.key_id in message
    assert first.context["created"][0].secret not in again.content.decode()
    assert sandbox_record_count(sandbox) == before + 1
    assert ApiKey.objects.filter(description="once only").count() == 1


def test_add_without_a_valid_token_creates_nothing(admin_client, sandbox):
    before = sandbox_record_count(sandbox)
    for once in ("", "forged"):
        admin_client.post(ADD, {"description": "no token", "scope": "*", "once": once})
    assert sandbox_record_count(sandbox) == before


def test_revoke_asks_then_revokes_and_reports_already_revoked(admin_client, sandbox):
    key = apikey_service.create_api_key(description="to revoke").record
    data = {"action": "revoke_keys", "_selected_action": [key.pk]}
    assert "Yes, go ahead" in admin_client.post(CHANGELIST, data).content.decode()
    done = admin_client.post(CHANGELIST, {**data, "confirm": "yes"}, follow=True)
    assert [str(m) for m in done.context["messages"]] == [f"{key}: revoked."]
    key.refresh_from_db()
    assert key.revoked_at is not None
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=None)  # a stale mirror
    again = admin_client.post(CHANGELIST, {**data, "confirm": "yes"}, follow=True)
    assert again.status_code == 200
    assert [str(m) for m in again.context["messages"]] == [f"{key}: was already revoked."]


def rotate(client, key, **fields):
    data = {"action": "rotate_keys", "_selected_action": [key.pk]}
    once = form_token(client, CHANGELIST, data)
    return client.post(CHANGELIST, {**data, "confirm": "yes", "once": once, **fields})


def test_rotate_schedules_the_old_key_after_a_24h_overlap(admin_client, sandbox):
    old = apikey_service.create_api_key(description="svc", scope="plugipay:checkout:*").record
    data = {"action": "rotate_keys", "_selected_action": [old.pk]}
    confirm = admin_client.post(CHANGELIST, data)
    assert "Yes, go ahead" in confirm.content.decode()
    assert confirm.context["form"]["overlap"].value() == "24h"
    response = rotate(admin_client, old, overlap="24h")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    (created,) = response.context["created"]
    assert created.secret in response.content.decode()
    assert created.record.scope == "plugipay:checkout:*"
    assert created.record.description.startswith("svc (rotation 20")
    old.refresh_from_db()
    assert old.revoked_at is None and old.revoke_scheduled_at is not None
    hours = (old.revoke_scheduled_at - timezone.now()).total_seconds() / 3600
    assert 23.9 < hours <= 24
    assert sandbox.plugipay.records[old.record_id]["revokedAt"] is None
    assert "revocation scheduled" in admin_client.get(CHANGELIST).content.decode()


def test_rotate_with_no_overlap_revokes_now_and_a_resent_post_mints_nothing(admin_client, sandbox):
    old = apikey_service.create_api_key(description="svc").record
    data = {"action": "rotate_keys", "_selected_action": [old.pk]}
    once = form_token(admin_client, CHANGELIST, data)
    confirmed = {**data, "confirm": "yes", "once": once, "overlap": "0"}
    assert admin_client.post(CHANGELIST, confirmed).context["created"]
    old.refresh_from_db()
    assert old.revoked_at is not None
    before = sandbox_record_count(sandbox)
    again = admin_client.post(CHANGELIST, confirmed, follow=True)
    assert "already submitted" in " ".join(str(m) for m in again.context["messages"])
    assert sandbox_record_count(sandbox) == before


def test_rotate_with_a_bad_overlap_asks_again(admin_client, sandbox):
    old = apikey_service.create_api_key(description="svc").record
    before = sandbox_record_count(sandbox)
    response = rotate(admin_client, old, overlap="soon")
    assert response.status_code == 200 and "not a duration" in response.content.decode()
    assert sandbox_record_count(sandbox) == before


def test_rotate_refused_without_revoke_apikey(client, django_user_model, sandbox):
    """Regression: Rotate needed create_apikey alone, yet it revokes."""
    user = django_user_model.objects.create_user("c", "c@example.com", "pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_apikey", "create_apikey"])
    )
    client.force_login(user)
    old = apikey_service.create_api_key(description="svc").record
    assert client.get(CHANGELIST).context["action_form"] is None  # no action at all
    before = sandbox_record_count(sandbox)
    data = {"action": "rotate_keys", "_selected_action": [old.pk], "confirm": "yes"}
    client.post(CHANGELIST, {**data, "overlap": "0", "once": "x"}, follow=True)
    assert sandbox_record_count(sandbox) == before
    old.refresh_from_db()
    assert old.revoked_at is None and old.revoke_scheduled_at is None

    user.user_permissions.add(Permission.objects.get(codename="revoke_apikey"))
    client.force_login(django_user_model.objects.get(pk=user.pk))
    actions = client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert "rotate_keys" in {name for name, _ in actions}


def test_the_sites_own_key_cannot_be_revoked_or_rotated(admin_client, sandbox):
    sync.sync_api_keys()
    own = ApiKey.objects.get(key_id=sandbox.plugipay_key_id)
    before = sandbox_record_count(sandbox)
    data = {"action": "revoke_keys", "_selected_action": [own.pk], "confirm": "yes"}
    done = admin_client.post(CHANGELIST, data, follow=True)
    (message,) = [str(m) for m in done.context["messages"]]
    assert "own key" in message and "mint a successor" in message
    done = rotate(admin_client, own, overlap="24h")
    assert done.status_code == 302
    assert "own key" in str(next(iter(admin_client.get(CHANGELIST).context["messages"])))
    own.refresh_from_db()
    assert own.revoked_at is None and own.revoke_scheduled_at is None
    assert sandbox.plugipay.records[own.record_id]["revokedAt"] is None
    assert sandbox_record_count(sandbox) == before


def test_scheduled_revocation_revoke_now_and_cancel(admin_client, sandbox):
    first = apikey_service.create_api_key(description="a").record
    second = apikey_service.create_api_key(description="b").record
    later = timezone.now() + timedelta(hours=5)
    for key in (first, second):
        apikey_service.schedule_revocation(key, later)
    listed = admin_client.get(CHANGELIST, {"state": "scheduled"})
    assert {k.pk for k in listed.context["cl"].result_list} == {first.pk, second.pk}
    choices = dict(listed.context["action_form"].fields["action"].choices)
    assert choices["revoke_keys"] == "Revoke now"
    assert choices["cancel_scheduled_revocations"] == "Cancel scheduled revocation"

    admin_client.post(
        CHANGELIST,
        {"action": "revoke_keys", "_selected_action": [first.pk], "confirm": "yes"},
    )
    admin_client.post(
        CHANGELIST, {"action": "cancel_scheduled_revocations", "_selected_action": [second.pk]}
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.revoked_at is not None and first.revoke_scheduled_at is None
    assert sandbox.plugipay.records[first.record_id]["revokedAt"] is not None
    assert second.state == "active" and second.revoke_scheduled_at is None


def test_a_key_plugipay_no_longer_lists_is_shown_gone(admin_client, sandbox):
    key = apikey_service.create_api_key(description="vanishing").record
    with sandbox.plugipay.lock:
        del sandbox.plugipay.records[key.record_id]
    sync.sync_api_keys()
    page = admin_client.get(CHANGELIST, {"state": "gone"})
    assert [k.pk for k in page.context["cl"].result_list] == [key.pk]
    assert "gone (Plugipay no longer lists it)" in page.content.decode()
    assert key.pk not in {
        k.pk for k in admin_client.get(CHANGELIST, {"state": "active"}).context["cl"].result_list
    }


def test_revoke_with_plugipay_down_changes_nothing(admin_client, sandbox):
    key = apikey_service.create_api_key(description="kept").record
    sandbox.set_faults(drop_rate=1.0, path_prefix="/plugipay")
    done = admin_client.post(
        CHANGELIST,
        {"action": "revoke_keys", "_selected_action": [key.pk], "confirm": "yes"},
        follow=True,
    )
    assert "not revoked, nothing changed" in str(next(iter(done.context["messages"])))
    key.refresh_from_db()
    assert key.revoked_at is None


def test_sync_button_posts_and_get_is_refused(admin_client, sandbox):
    assert admin_client.get(SYNC).status_code == 405
    done = admin_client.post(SYNC, follow=True)
    assert "API keys synced" in str(next(iter(done.context["messages"])))
    assert ApiKey.objects.count() == len(sandbox_keys(sandbox))


def sandbox_keys(sandbox) -> list:
    from pluginlab_django.clients import get_plugipay_client

    return get_plugipay_client().list_api_keys()


def test_permissions_gate_add_revoke_and_rotate(client, django_user_model, sandbox):
    user = django_user_model.objects.create_user("s", "s@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_apikey"]))
    client.force_login(user)
    sync.sync_api_keys()
    response = client.get(CHANGELIST)
    assert response.context["action_form"] is None
    assert ADD not in response.content.decode()
    assert client.get(ADD).status_code == 302
    assert client.post(ADD, {"description": "no", "scope": "*"}).status_code == 302
    assert not ApiKey.objects.filter(description="no").exists()

    user.user_permissions.add(Permission.objects.get(codename="revoke_apikey"))
    client.force_login(django_user_model.objects.get(pk=user.pk))
    actions = client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert {name for name, _ in actions} == {"", "revoke_keys", "cancel_scheduled_revocations"}
