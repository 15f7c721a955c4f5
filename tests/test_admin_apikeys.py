"""API keys in the admin: the secret is shown once and kept nowhere."""

from __future__ import annotations

import logging

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse

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


def test_add_shows_the_secret_once_and_stores_it_nowhere(admin_client, sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    response = admin_client.post(ADD, {"description": "ci deploy", "scope": "*"})
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
    response = admin_client.post(ADD, {"description": "x", "scope": "not a scope"})
    assert response.status_code == 200
    assert "Plugipay refused to create the key" in response.content.decode()
    assert not ApiKey.objects.filter(description="x").exists()


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


def test_rotate_shows_the_new_secret_and_revokes_the_old(admin_client, sandbox):
    old = apikey_service.create_api_key(description="svc", scope="plugipay:checkout:*").record
    data = {"action": "rotate_keys", "_selected_action": [old.pk]}
    assert "Yes, go ahead" in admin_client.post(CHANGELIST, data).content.decode()
    response = admin_client.post(CHANGELIST, {**data, "confirm": "yes"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    (created,) = response.context["created"]
    assert created.secret in response.content.decode()
    assert (created.record.description, created.record.scope) == ("svc", "plugipay:checkout:*")
    old.refresh_from_db()
    assert old.revoked_at is not None


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
    assert {name for name, _ in actions} == {"", "revoke_keys"}
