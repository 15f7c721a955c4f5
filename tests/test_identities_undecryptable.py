"""A token no configured key can decrypt is a state, not a crash: it reads as
missing, the admin says so (200, never 500), the identities sync replaces it
from PluginLab, and a system check names it."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.urls import reverse

from pluginlab_django import sync
from pluginlab_django.fields import Undecryptable, current_fingerprint
from pluginlab_django.models import Identity
from tests.member_rows import mirrored_member_with

pytestmark = pytest.mark.django_db

NOTE = "cannot be decrypted (key not configured)"


def use_keys(settings, *keys: str) -> None:
    settings.PLUGINLAB = {**settings.PLUGINLAB, "FIELD_ENCRYPTION_KEYS": list(keys)}


def key_warnings() -> list[str]:
    return [
        m.id
        for m in run_checks(databases=["default"])
        if m.id in ("pluginlab.W012", "pluginlab.W013")
    ]


@pytest.fixture
def replaced_key(sandbox, settings):
    """A google member mirrored under one key, which is then replaced (not kept)."""
    member = mirrored_member_with(sandbox, "google")
    use_keys(settings, Fernet.generate_key().decode())
    return member


def test_an_undecryptable_token_reads_as_missing(replaced_key):
    row = Identity.objects.get(member=replaced_key, provider="google")
    assert row.access_token == "" and not row.access_token
    assert isinstance(row.access_token, Undecryptable)
    assert row.token_undecryptable("access_token") and row.token_undecryptable("refresh_token")


def test_the_member_admin_page_answers_200_with_a_note(replaced_key, admin_client):
    url = reverse("admin:pluginlab_django_member_change", args=[replaced_key.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response.content.decode().count(NOTE) == 2  # access and refresh token


def test_the_refresh_action_does_not_500(replaced_key, admin_client):
    changelist = reverse("admin:pluginlab_django_member_changelist")
    data = {"action": "refresh_identity_tokens", "_selected_action": [replaced_key.pk]}
    response = admin_client.post(changelist, {**data, "confirm": "yes"}, follow=True)
    assert response.status_code == 200
    texts = [str(m) for m in response.context["messages"]]
    assert texts == [f"{replaced_key} / Google: token refreshed."]
    row = Identity.objects.get(member=replaced_key, provider="google")
    assert row.access_token and row.key_fingerprint == current_fingerprint()


def test_the_identities_sync_repairs_the_row(replaced_key, sandbox):
    assert key_warnings() == ["pluginlab.W012"]
    run = sync.sync_identities([replaced_key.remote_id])
    assert run.status == run.Status.SUCCEEDED, run.error
    row = Identity.objects.get(member=replaced_key, provider="google")
    remote = sandbox.store.identities(replaced_key.remote_id)["google"]
    assert (row.access_token, row.refresh_token) == (remote["accessToken"], remote["refreshToken"])
    assert row.key_fingerprint == current_fingerprint()
    assert key_warnings() == []


def test_saving_an_undecryptable_row_keeps_its_ciphertext(sandbox, settings):
    """Putting the old key back must still recover the token."""
    member = mirrored_member_with(sandbox, "google")
    old_key = settings.PLUGINLAB["FIELD_ENCRYPTION_KEYS"][0]
    original = Identity.objects.get(member=member, provider="google").access_token
    use_keys(settings, Fernet.generate_key().decode())
    row = Identity.objects.get(member=member, provider="google")
    row.needs_reauth = True
    row.save()
    row.save(update_fields=["access_token"])
    use_keys(settings, Fernet.generate_key().decode(), old_key)
    assert Identity.objects.get(pk=row.pk).access_token == original


def test_a_sync_rewrites_rows_under_an_old_key(sandbox, settings):
    """Keys rotated without the command: a sync moves rows to the first key."""
    member = mirrored_member_with(sandbox, "google")
    old_key = settings.PLUGINLAB["FIELD_ENCRYPTION_KEYS"][0]
    use_keys(settings, Fernet.generate_key().decode(), old_key)
    sync.sync_identities([member.remote_id])
    assert Identity.objects.get(member=member).key_fingerprint == current_fingerprint()
    use_keys(settings, settings.PLUGINLAB["FIELD_ENCRYPTION_KEYS"][0])
    assert Identity.objects.get(member=member).access_token


def test_the_check_is_silent_when_every_row_is_readable(sandbox):
    mirrored_member_with(sandbox, "gitlab")
    assert key_warnings() == []
