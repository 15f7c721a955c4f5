"""get_access_token against the sandbox: the stored token when it is valid,
one refresh when it is not, and a clear answer for every other case."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from pluginlab_django.clients import (
    PluginLabUnavailable,
    RefreshNotSupported,
    get_pluginlab_client,
)
from pluginlab_django.models import Identity, Member
from pluginlab_django.services.identities import (
    IdentityNotFound,
    ReauthenticationRequired,
    get_access_token,
    refresh_identity,
)
from pluginlab_django.tasks import refresh_identity_tokens_task
from tests.member_rows import mirrored_member_with

pytestmark = pytest.mark.django_db


def refresh_calls(sandbox) -> int:
    return sum(n for path, n in sandbox.faults.stats().items() if path.endswith("/refresh"))


def identity_of(member: Member, provider: str, *, expires_in: float | None) -> Identity:
    """The member's identity, its access token expiring ``expires_in`` seconds from now."""
    expires_at = None if expires_in is None else timezone.now() + timedelta(seconds=expires_in)
    Identity.objects.filter(member=member, provider=provider).update(
        access_token_expires_at=expires_at
    )
    return Identity.objects.get(member=member, provider=provider)


def test_a_valid_token_is_returned_without_a_remote_call(sandbox):
    member = mirrored_member_with(sandbox, "google")
    identity = identity_of(member, "google", expires_in=3600)
    before = sandbox.request_count()
    assert get_access_token(member, "google") == identity.access_token
    assert get_access_token(member.remote_id, "google") == identity.access_token
    assert sandbox.request_count() == before


@pytest.mark.parametrize("expires_in", [-60, 30])  # expired; valid for less than 60 s
def test_an_expired_or_expiring_token_is_refreshed_once(sandbox, expires_in):
    member = mirrored_member_with(sandbox, "google")
    old = identity_of(member, "google", expires_in=expires_in).access_token
    token = get_access_token(member, "google", min_valid_seconds=60)
    assert token != old
    assert token == sandbox.store.identities(member.remote_id)["google"]["accessToken"]
    assert get_access_token(member, "google") == token  # stored: no second refresh
    assert refresh_calls(sandbox) == 1
    row = Identity.objects.get(member=member, provider="google")
    assert row.access_token == token and row.refreshed_at is not None
    assert row.access_token_expires_at > timezone.now() + timedelta(minutes=50)
    assert row.refresh_lease_expires_at is None  # the claim is released


def test_min_valid_seconds_decides(sandbox):
    member = mirrored_member_with(sandbox, "gitlab")
    old = identity_of(member, "gitlab", expires_in=120).access_token
    assert get_access_token(member, "gitlab", min_valid_seconds=60) == old
    assert refresh_calls(sandbox) == 0
    assert get_access_token(member, "gitlab", min_valid_seconds=300) != old
    assert refresh_calls(sandbox) == 1


def test_revoked_refresh_token_marks_needs_reauth_and_raises(sandbox):
    member = mirrored_member_with(sandbox, "google", revoked=True)
    identity_of(member, "google", expires_in=-60)
    with pytest.raises(ReauthenticationRequired) as info:
        get_access_token(member, "google")
    assert (info.value.member_id, info.value.provider) == (member.remote_id, "google")
    assert "sign in again" in info.value.message and "auth portal" in info.value.message
    assert info.value.status == 422
    row = Identity.objects.get(member=member, provider="google")
    assert row.needs_reauth and row.refresh_lease_expires_at is None


@pytest.mark.parametrize("provider", ["github", "microsoft"])
def test_unrefreshable_providers_give_their_stored_token_or_a_clear_error(sandbox, provider):
    member = mirrored_member_with(sandbox, provider)
    stored = identity_of(member, provider, expires_in=None).access_token
    assert get_access_token(member, provider) == stored
    identity_of(member, provider, expires_in=-60)
    with pytest.raises(RefreshNotSupported, match="cannot be refreshed"):
        get_access_token(member, provider)
    Identity.objects.filter(member=member, provider=provider).update(access_token=None)
    with pytest.raises(RefreshNotSupported, match="no usable one stored"):
        get_access_token(member, provider)
    assert refresh_calls(sandbox) == 0


def test_no_identity_for_the_provider(sandbox):
    member = mirrored_member_with(sandbox, "google")
    with pytest.raises(IdentityNotFound):
        get_access_token(member, "gitlab")
    with pytest.raises(IdentityNotFound):
        get_access_token("mem_" + "0" * 40, "google")
    with pytest.raises(ValueError, match="Unknown identity provider"):
        get_access_token(member, "myspace")


def test_pluginlab_down_raises_the_clients_error_and_stores_nothing(sandbox):
    member = mirrored_member_with(sandbox, "google")
    identity_of(member, "google", expires_in=-60)
    before = Identity.objects.values().get(member=member, provider="google")
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth")
    with pytest.raises(PluginLabUnavailable):
        get_access_token(member, "google")
    assert Identity.objects.values().get(member=member, provider="google") == before
    sandbox.clear_faults()
    assert get_access_token(member, "google") != before["access_token"]  # and it recovers


def test_a_refresh_answer_without_a_token_is_an_error_and_stores_nothing(sandbox, monkeypatch):
    member = mirrored_member_with(sandbox, "google")
    identity_of(member, "google", expires_in=-60)
    before = Identity.objects.values().get(member=member, provider="google")
    client_type = type(get_pluginlab_client())
    real_refresh = client_type.refresh_identity_token

    def refresh_without_token(self, *args, **kwargs):
        return dataclasses.replace(real_refresh(self, *args, **kwargs), access_token=None)

    monkeypatch.setattr(client_type, "refresh_identity_token", refresh_without_token)
    with pytest.raises(PluginLabUnavailable, match="without an access token") as raised:
        get_access_token(member, "google")
    assert raised.value.code == "identity/refresh-without-token"
    assert Identity.objects.values().get(member=member, provider="google") == before


def test_an_undecryptable_token_counts_as_absent_and_is_refreshed(sandbox, settings):
    member = mirrored_member_with(sandbox, "google")
    identity_of(member, "google", expires_in=3600)
    lost_key = Fernet.generate_key().decode()
    settings.PLUGINLAB = {**settings.PLUGINLAB, "FIELD_ENCRYPTION_KEYS": [lost_key]}
    Identity.objects.get(member=member, provider="google").save()  # written under the lost key
    settings.PLUGINLAB = {
        **settings.PLUGINLAB,
        "FIELD_ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
    }
    token = get_access_token(member, "google")
    assert token == sandbox.store.identities(member.remote_id)["google"]["accessToken"]
    assert refresh_calls(sandbox) == 1


def test_a_dead_claimers_lease_expires(sandbox):
    member = mirrored_member_with(sandbox, "google")
    identity = identity_of(member, "google", expires_in=-60)
    Identity.objects.filter(pk=identity.pk).update(
        refresh_lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert get_access_token(member, "google") != identity.access_token
    assert refresh_calls(sandbox) == 1


def test_a_live_claim_is_waited_for_not_duplicated(sandbox, settings):
    """Another process holds the claim and never finishes: we wait, then take
    over once its lease expires (a crashed worker), and refresh once."""
    settings.PLUGINLAB = {**settings.PLUGINLAB, "IDENTITY_REFRESH_LEASE_SECONDS": 1}
    member = mirrored_member_with(sandbox, "google")
    identity = identity_of(member, "google", expires_in=-60)
    Identity.objects.filter(pk=identity.pk).update(
        refresh_lease_expires_at=timezone.now() + timedelta(seconds=0.5)
    )
    started = timezone.now()
    assert get_access_token(member, "google") != identity.access_token
    assert timezone.now() - started >= timedelta(seconds=0.4)
    assert refresh_calls(sandbox) == 1


def test_admin_style_refresh_shares_the_service(sandbox):
    member = mirrored_member_with(sandbox, "google")
    identity = identity_of(member, "google", expires_in=3600)
    row = refresh_identity(identity)  # forced, even though valid
    assert row.access_token != identity.access_token and refresh_calls(sandbox) == 1
    assert get_access_token(member, "google") == row.access_token
    assert refresh_calls(sandbox) == 1


def test_the_periodic_task_refreshes_tokens_expiring_within_the_window(sandbox, celery_eager):
    soon = mirrored_member_with(sandbox, "google")
    later = mirrored_member_with(sandbox, "gitlab")
    revoked = mirrored_member_with(sandbox, "google", revoked=True)
    github = mirrored_member_with(sandbox, "github")
    old_soon = identity_of(soon, "google", expires_in=120).access_token
    old_later = identity_of(later, "gitlab", expires_in=3600).access_token
    identity_of(revoked, "google", expires_in=60)
    identity_of(github, "github", expires_in=60)
    Identity.objects.filter(member=revoked).update(needs_reauth=True)  # skipped

    summary = refresh_identity_tokens_task.delay().get()
    assert summary["identities"] == 1
    assert Identity.objects.get(member=soon).access_token != old_soon
    assert Identity.objects.get(member=later).access_token == old_later
    assert refresh_calls(sandbox) == 1

    chunk = refresh_identity_tokens_task.delay(
        identity_ids=[Identity.objects.get(member=soon).pk], within_seconds=600
    ).get()
    assert chunk == {"refreshed": 0, "still_valid": 1, "needs_reauth": 0, "failed": 0}
    assert refresh_calls(sandbox) == 1
