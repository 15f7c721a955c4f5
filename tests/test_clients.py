"""The clients against the sandbox over real HTTP: every call, and its errors."""

from __future__ import annotations

import logging
import time

import pytest

from pluginlab_django.clients import (
    PluginLabClient,
    PluginLabError,
    PluginLabUnavailable,
    PlugipayClient,
    PlugipayError,
    RefreshNotSupported,
    RefreshTokenFailed,
    get_pluginlab_client,
    get_plugipay_client,
)
from pluginlab_django.clients.types import EventLocation
from tests.sandbox_support import first_member_with

pytestmark = pytest.mark.no_db


@pytest.fixture
def client(sandbox) -> PluginLabClient:
    return get_pluginlab_client()


@pytest.fixture
def plugipay(sandbox) -> PlugipayClient:
    return get_plugipay_client()


# Members --------------------------------------------------------------------


def test_pages_cover_every_member_once_in_order(client, sandbox):
    seen = [m.id for page in client.iter_member_pages(limit=7) for m in page.items]
    assert seen == sandbox.member_ids()
    page = client.list_members(limit=7)
    assert page.total == len(sandbox.member_ids())
    assert len(page.items) == 7 and page.next_page_token


def test_member_fields_are_typed_and_snake_case(client, sandbox):
    member_id = sandbox.member_ids()[0]
    member = client.get_member(member_id)
    raw = sandbox.get_member(member_id)
    assert member.id == member_id
    assert member.email == raw["email"]
    assert member.auth.sign_in_method == raw["auth"]["signInMethod"]
    assert member.auth.is_verified == raw["auth"]["isVerified"]
    assert member.updated_at_ms == raw["updatedAtMs"]
    assert member.created_at.timestamp() == pytest.approx(raw["createdAtMs"] / 1000)
    assert member.raw == raw  # nothing the vendor adds is lost


def test_get_by_id_and_email_return_none_when_unknown(client, sandbox):
    member = client.get_member(sandbox.member_ids()[1])
    assert client.get_member_by_email(member.email).id == member.id
    assert client.get_member("mem_" + "0" * 40) is None
    assert client.get_member_by_email("nobody+tag@example.com") is None


def test_create_update_delete_round_trip(client, sandbox):
    created = client.create_member(
        "new.member+x@example.com", "s3cret-pass", is_verified=True, metadata={"origin": "t"}
    )
    assert created.id.startswith("mem_") and created.auth.is_verified
    assert sandbox.get_member(created.id)["metadata"] == {"origin": "t"}

    updated = client.update_member(created.id, name="New Name", metadata={"a": 1})
    assert updated.name == "New Name" and updated.metadata == {"a": 1}
    remote = sandbox.get_member(created.id)
    assert remote["name"] == "New Name" and remote["metadata"] == {"a": 1}
    # Only the given fields are sent: the email sign-up keeps its verification.
    assert remote["auth"]["isVerified"] is True

    client.delete_member(created.id)
    assert client.get_member(created.id) is None


def test_bad_admin_secret_is_401_without_the_secret_in_the_message(sandbox, caplog):
    bad = PluginLabClient(
        plugin_id=sandbox.plugin_id,
        admin_secret="wrong-secret-value",
        auth_url=sandbox.pluginlab_settings()["AUTH_URL"],
    )
    caplog.set_level(logging.DEBUG, logger="pluginlab_django")
    with pytest.raises(PluginLabError) as info:
        bad.list_members()
    assert info.value.status == 401
    assert info.value.code == "auth/unauthorized"
    for text in (str(info.value), repr(info.value), caplog.text):
        assert "wrong-secret-value" not in text
        assert sandbox.admin_secret not in text


def test_page_size_is_validated(client):
    with pytest.raises(ValueError):
        client.list_members(limit=101)


# Identities ------------------------------------------------------------------


def test_identities_and_refresh(client, sandbox):
    member_id = first_member_with(sandbox, "google")
    if member_id in sandbox.revoked_refresh_member_ids():
        member_id = next(
            m
            for m in sandbox.member_ids()
            if sandbox.get_member(m)["auth"]["signInMethod"] == "google"
            and m not in sandbox.revoked_refresh_member_ids()
        )
    identities = client.get_member_identities(member_id)
    assert "google" in identities
    before = identities["google"].access_token
    fresh = client.refresh_identity_token(member_id, "google")
    assert fresh.provider == "google" and fresh.access_token and fresh.access_token != before
    assert "access_token" not in repr(fresh) and before not in repr(fresh)


def test_refresh_of_github_is_not_supported(client, sandbox):
    member_id = first_member_with(sandbox, "github")
    with pytest.raises(RefreshNotSupported) as info:
        client.refresh_identity_token(member_id, "github")
    assert info.value.status == 400


def test_revoked_refresh_token_raises_refresh_token_failed(client, sandbox):
    member_id = sandbox.revoked_refresh_member_ids()[0]
    provider = next(p for p in ("google", "gitlab") if p in client.get_member_identities(member_id))
    with pytest.raises(RefreshTokenFailed) as info:
        client.refresh_identity_token(member_id, provider)
    assert info.value.status == 422
    assert sandbox.request_count("/auth") >= 1


def test_member_without_identities_gets_an_empty_dict(client, sandbox):
    member_id = first_member_with(sandbox, "email-and-password")
    assert client.get_member_identities(member_id) == {}


# Quota and events ----------------------------------------------------------


def test_custom_event_counts_in_quota(client, sandbox):
    member_id = sandbox.member_ids()[2]
    before = client.get_quota_usage(member_id).usage_count
    client.create_custom_event("WEB_UI", member_id=member_id, location=EventLocation("US", "CA"))
    client.create_custom_event("WEB_UI", member_id=member_id, is_in_quota=False)
    assert client.get_quota_usage(member_id).usage_count == before + 1
    assert client.get_quota_usage("mem_" + "f" * 40) is None


def test_custom_event_validation_errors(client):
    with pytest.raises(PluginLabError) as info:
        client.create_custom_event("MUCH_TOO_LONG_SOURCE")
    assert info.value.status == 400 and info.value.code
    with pytest.raises(PluginLabError) as info:
        client.create_custom_event("WEB", location=EventLocation("USA"))
    assert info.value.status == 400


# Plugipay ----------------------------------------------------------------------


def test_api_keys_list_create_revoke(plugipay, sandbox):
    before = {k.id for k in plugipay.list_api_keys()}
    created = plugipay.create_api_key(description="ci", scope="plugipay:checkout:*")
    assert created.secret.startswith("sk_test_") and created.mode == "test"
    listed = {k.id: k for k in plugipay.list_api_keys()}
    assert set(listed) == before | {created.id}
    assert listed[created.id].secret is None  # never returned again
    plugipay.revoke_api_key(created.id)
    assert {k.id: k for k in plugipay.list_api_keys()}[created.id].revoked_at is not None
    with pytest.raises(PlugipayError) as info:
        plugipay.revoke_api_key(created.id)
    assert (info.value.status, info.value.code) == (409, "conflict")
    assert info.value.request_id


def test_plugipay_validation_and_not_found(plugipay):
    with pytest.raises(PlugipayError) as info:
        plugipay.create_api_key(description="x" * 256)
    assert (info.value.status, info.value.code) == (400, "validation_error")
    with pytest.raises(PlugipayError) as info:
        plugipay.revoke_api_key("apk_doesnotexist")
    assert (info.value.status, info.value.code) == (404, "not_found")


def test_plugipay_bad_signature_and_stale_timestamp(sandbox):
    settings = sandbox.pluginlab_settings()
    wrong = PlugipayClient(
        key_id=settings["PLUGIPAY_KEY_ID"],
        secret="sk_test_wrong",
        base_url=settings["PLUGIPAY_BASE_URL"],
    )
    with pytest.raises(PlugipayError) as info:
        wrong.list_api_keys()
    assert (info.value.status, info.value.code) == (401, "invalid_signature")
    assert "sk_test_wrong" not in str(info.value)

    stale = PlugipayClient(
        key_id=settings["PLUGIPAY_KEY_ID"],
        secret=settings["PLUGIPAY_SECRET"],
        base_url=settings["PLUGIPAY_BASE_URL"],
        clock=lambda: time.time() - 301,
    )
    with pytest.raises(PlugipayError) as info:
        stale.list_api_keys()
    assert info.value.status == 401


# Retries -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_transient_errors_are_retried_until_success(client, sandbox, settings, status):
    sandbox.set_faults(error_rate=1.0, error_status=status, path_prefix="/auth", count=2)
    page = client.list_members(limit=5)
    assert len(page.items) == 5
    assert sandbox.request_count("/auth") == 3  # two faulted attempts, then success


def test_exhausted_retries_raise_unavailable_after_the_configured_attempts(client, sandbox):
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth")
    with pytest.raises(PluginLabUnavailable) as info:
        client.get_member(sandbox.member_ids()[0])
    assert info.value.status == 503
    assert sandbox.request_count("/auth") == 1 + 3  # RETRY_TOTAL = 3 in tests.settings


def test_retry_total_setting_is_honoured(sandbox, settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "RETRY_TOTAL": 1}
    sandbox.set_faults(error_rate=1.0, error_status=502, path_prefix="/auth")
    with pytest.raises(PluginLabUnavailable):
        get_pluginlab_client().list_members()
    assert sandbox.request_count("/auth") == 2


def test_post_without_idempotency_key_is_never_sent_twice(client, sandbox):
    sandbox.set_faults(drop_rate=1.0, path_prefix="/event")
    with pytest.raises(PluginLabUnavailable):
        client.create_custom_event("WEB_UI", member_id=sandbox.member_ids()[0])
    assert sandbox.request_count("/event") == 1


def test_post_without_idempotency_key_is_not_retried_on_503_either(client, sandbox):
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/auth", count=1)
    with pytest.raises(PluginLabUnavailable):
        client.create_member("once@example.com", "pw-123456")
    assert sandbox.request_count("/auth") == 1


def test_plugipay_post_with_idempotency_key_is_retried_and_creates_one_key(plugipay, sandbox):
    before = len(plugipay.list_api_keys())
    sandbox.set_faults(drop_rate=1.0, path_prefix="/plugipay", count=2)
    created = plugipay.create_api_key(description="retried")
    assert created.secret
    keys = plugipay.list_api_keys()
    assert len(keys) == before + 1
    assert [k.description for k in keys].count("retried") == 1


@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_beyond_backoff_max_fails_at_once_and_says_so(client, sandbox, status):
    # tests.settings: RETRY_BACKOFF_MAX = 0.2 s. Waiting 20 s then succeeding
    # (the second attempt is not faulted) is what urllib3 alone would do.
    sandbox.set_faults(
        error_rate=1.0, error_status=status, path_prefix="/auth", count=1, retry_after=20
    )
    with pytest.raises(PluginLabUnavailable) as info:
        client.list_members(limit=5)
    assert "retry after 20 s, longer than RETRY_BACKOFF_MAX (0.2 s)" in str(info.value)
    assert sandbox.request_count("/auth") == 1  # no second attempt either


def test_plugipay_retry_after_beyond_backoff_max_fails_at_once(plugipay, sandbox):
    sandbox.set_faults(
        error_rate=1.0, error_status=429, path_prefix="/plugipay", count=1, retry_after=60
    )
    with pytest.raises(PlugipayError) as info:
        plugipay.list_api_keys()
    assert "RETRY_BACKOFF_MAX" in str(info.value)


def test_a_retry_after_within_backoff_max_is_waited_for(sandbox, settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "RETRY_BACKOFF_MAX": 2}
    sandbox.set_faults(
        error_rate=1.0, error_status=503, path_prefix="/auth", count=1, retry_after=1
    )
    started = time.monotonic()
    assert len(get_pluginlab_client().list_members(limit=5).items) == 5
    assert time.monotonic() - started >= 0.9  # it did wait as asked
    assert sandbox.request_count("/auth") == 2


def test_get_survives_dropped_connections(client, sandbox):
    sandbox.set_faults(drop_rate=1.0, path_prefix="/monetization", count=2)
    assert client.get_quota_usage(sandbox.member_ids()[0]) is not None
    assert sandbox.request_count("/monetization") == 3
