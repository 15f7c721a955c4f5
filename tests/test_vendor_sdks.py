"""The vendors' official Python clients, unchanged, against a live sandbox.

The sandbox is only worth having if real clients cannot tell it from the
real services (spec, "Compatibility target"). These tests drive
``pluginlab_admin`` 0.4.1 and ``plugipay`` 0.1.0 exactly as a site would.

``pluginlab_admin`` 0.4.1 has no ``refresh_member_identity_token`` (its docs
describe one; the release does not ship it), so identity refresh is covered
over raw HTTP in test_sandbox_members.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import jwt
import pytest
from plugipay import PlugipayClient, PlugipayError

from tests.sandbox_support import first_member_with

pytestmark = pytest.mark.no_db

HAS_PLUGINLAB_ADMIN = sys.version_info >= (3, 11)  # the SDK requires Python >= 3.11
if HAS_PLUGINLAB_ADMIN:
    # On 3.11+ a missing SDK is a collection error, never a skip.
    from pluginlab_admin import App, EventLocation, Webhook, WebhookHeaders

# On 3.10 only the pluginlab_admin tests skip; the Plugipay ones still run.
needs_pluginlab_admin = pytest.mark.skipif(
    not HAS_PLUGINLAB_ADMIN, reason="pluginlab_admin requires Python >= 3.11"
)


# Fixtures -------------------------------------------------------------------


@pytest.fixture
def app(sandbox) -> App:
    urls = sandbox.pluginlab_settings()
    return App(
        secret_key=sandbox.admin_secret,
        plugin_id=sandbox.plugin_id,
        auth_url=urls["AUTH_URL"],
        auth_cert_url=urls["CERT_URL"],
        event_url=urls["EVENT_URL"],
        monetization_url=urls["MONETIZATION_URL"],
    )


@pytest.fixture
def plugipay(sandbox) -> Iterator[PlugipayClient]:
    with PlugipayClient(
        key_id=sandbox.plugipay_key_id,
        secret=sandbox.plugipay_secret,
        base_url=f"{sandbox.url}/plugipay",
    ) as client:
        yield client


# pluginlab_admin: members ---------------------------------------------------


@needs_pluginlab_admin
def test_get_members_pages_through_to_the_end(app, sandbox):
    """The SDK sends ``startAfter=None`` first and the raw cursor after."""
    auth = app.get_auth()
    seen, cursor, pages = [], None, 0
    while True:
        page = auth.get_members(limit=7, start_after=cursor)
        pages += 1
        assert page.total == 50
        seen += [member.id for member in page.items]
        cursor = page.next_page_cursor
        if cursor is None:
            break
    assert pages == 8
    assert seen == sandbox.member_ids()


@needs_pluginlab_admin
def test_get_member_by_id_and_by_email(app, sandbox):
    auth = app.get_auth()
    member_id = sandbox.member_ids()[0]
    wire = sandbox.get_member(member_id)

    by_id = auth.get_member_by_id(member_id)
    by_email = auth.get_member_by_email(wire["email"])

    assert by_id == by_email
    assert by_id.id == member_id
    assert by_id.auth.email == wire["auth"]["email"]
    assert by_id.auth.sign_in_method == wire["auth"]["signInMethod"]
    assert by_id.given_name == wire["givenName"]
    assert by_id.updated_at_ms == wire["updatedAtMs"]


@needs_pluginlab_admin
def test_unknown_member_is_none(app):
    auth = app.get_auth()
    assert auth.get_member_by_id("mem_" + "0" * 40) is None
    assert auth.get_member_by_email("nobody@example.com") is None


@needs_pluginlab_admin
def test_wrong_admin_secret_raises_with_the_unauthorized_code(sandbox):
    urls = sandbox.pluginlab_settings()
    auth = App(
        secret_key="wrong", plugin_id=sandbox.plugin_id, auth_url=urls["AUTH_URL"]
    ).get_auth()
    with pytest.raises(Exception, match="auth/unauthorized"):
        auth.get_member_by_id(sandbox.member_ids()[0])


@needs_pluginlab_admin
def test_create_update_delete_member(app, sandbox):
    auth = app.get_auth()

    created = auth.create_member(
        "vendor.sdk@example.com", "s3cret-pass", is_verified=True, metadata={"team": "a"}
    )
    assert created.id.startswith("mem_")
    assert created.auth.is_verified is True
    assert created.metadata == {"team": "a"}
    assert sandbox.get_member(created.id)["email"] == "vendor.sdk@example.com"

    updated = auth.update_member(created.id, name="Vendor Sdk", metadata={"plan": "pro"})
    assert updated.name == "Vendor Sdk"
    assert updated.metadata == {"plan": "pro"}
    assert updated.updated_at_ms > created.updated_at_ms
    assert sandbox.get_member(created.id)["name"] == "Vendor Sdk"

    auth.delete_member(created.id)
    assert auth.get_member_by_id(created.id) is None
    assert sandbox.get_member(created.id) is None
    with pytest.raises(Exception, match="auth/member-not-found"):
        auth.delete_member(created.id)


@needs_pluginlab_admin
def test_get_member_identities(app, sandbox):
    auth = app.get_auth()
    google_id = first_member_with(sandbox, "google")
    github_id = first_member_with(sandbox, "github")
    email_id = first_member_with(sandbox, "email-and-password")

    google = auth.get_member_identities(google_id)
    assert google.google.provider == "google"
    assert google.google.access_token
    assert google.google.refresh_token
    assert (google.github, google.gitlab, google.microsoft) == (None, None, None)

    github = auth.get_member_identities(github_id).github
    assert github.provider == "github"
    assert github.refresh_token is None

    none = auth.get_member_identities(email_id)
    assert (none.google, none.github, none.gitlab, none.microsoft) == (None, None, None, None)


# pluginlab_admin: monetization and events -----------------------------------


@needs_pluginlab_admin
def test_custom_event_counts_toward_quota_usage(app, sandbox):
    monetization, events = app.get_monetization(), app.get_event()
    member_id = sandbox.member_ids()[0]
    before = monetization.get_member_quota_usage(member_id)
    assert before.usage_count == sandbox.store.quota(member_id)["usageCount"]

    events.create_custom("chat", member_id=member_id, location=EventLocation("FR", "IDF"))
    after = monetization.get_member_quota_usage(member_id)
    assert after.usage_count == before.usage_count + 1
    assert (after.usage_limit, after.interval) == (before.usage_limit, before.interval)

    events.create_custom("chat", member_id=member_id, is_in_quota=False)
    assert monetization.get_member_quota_usage(member_id).usage_count == after.usage_count


@needs_pluginlab_admin
def test_custom_event_validation_error_reaches_the_sdk(app, sandbox):
    with pytest.raises(ValueError) as raised:
        app.get_event().create_custom("x" * 11, member_id=sandbox.member_ids()[0])
    assert raised.value.args[0]["code"] == "event/invalid-event-source"


@needs_pluginlab_admin
def test_quota_of_unknown_member_raises(app):
    with pytest.raises(Exception, match="auth/member-not-found"):
        app.get_monetization().get_member_quota_usage("mem_" + "0" * 40)


# pluginlab_admin: tokens and webhooks ---------------------------------------


@needs_pluginlab_admin
def test_verify_token_of_a_sandbox_minted_token(app, sandbox):
    member_id = sandbox.member_ids()[0]
    token = sandbox.mint_token(member_id, plan_id="plan_pro", price_id="price_pro_monthly")

    payload = app.get_auth().verify_token(token)

    assert payload.uid == member_id
    assert payload.aud == f"plugin:{sandbox.plugin_id}:admin"
    assert payload.user.id == member_id
    assert payload.user.email == sandbox.get_member(member_id)["email"]
    assert (payload.user.plan_id, payload.user.price_id) == ("plan_pro", "price_pro_monthly")


@needs_pluginlab_admin
def test_verify_token_after_rotation_uses_the_new_first_key(app, sandbox):
    """The SDK ignores ``kid`` and takes the first JWKS key: it must be the current one."""
    auth = app.get_auth()
    member_id = sandbox.member_ids()[0]
    old_token = sandbox.mint_token(member_id)

    sandbox.rotate_signing_key()
    new_token = sandbox.mint_token(member_id)

    assert auth.verify_token(new_token).uid == member_id
    # Only because the SDK never looks past the first key (our own verifier does).
    with pytest.raises(jwt.InvalidSignatureError):
        auth.verify_token(old_token)


@needs_pluginlab_admin
def test_webhook_signature_of_a_real_delivery_is_valid(app, sandbox, webhook_receiver):
    sandbox.set_webhook_url(webhook_receiver.url)
    created = app.get_auth().create_member("hooked@example.com", "pw-hooked")

    records = sandbox.wait_for_deliveries(1)
    assert [r["ok"] for r in records] == [True]
    (headers, body), *_ = webhook_receiver.received
    assert headers[WebhookHeaders.Event.value] == "member.created"
    assert headers[WebhookHeaders.PluginId.value] == sandbox.plugin_id
    assert created.id in body.decode()

    webhook = Webhook(sandbox.webhook_secret)
    signature = headers[WebhookHeaders.Signature.value]
    assert webhook.is_signature_valid(body.decode(), signature) is True
    assert webhook.is_signature_valid(body.decode() + " ", signature) is False
    assert Webhook("another-secret").is_signature_valid(body.decode(), signature) is False


# plugipay: API keys ---------------------------------------------------------


def test_api_keys_list_create_revoke(plugipay, sandbox):
    listed = plugipay.api_keys.list()
    assert sandbox.plugipay_key_id in {key["keyId"] for key in listed}
    assert all("secret" not in key.raw for key in listed)

    created = plugipay.api_keys.create(description="ci", scope="plugipay:apikey:read")
    assert created["id"].startswith("apk_")
    assert created["keyId"].startswith("pk_test_")
    assert created["secret"].startswith("sk_test_")
    assert (created["description"], created["scope"], created["revokedAt"]) == (
        "ci",
        "plugipay:apikey:read",
        None,
    )

    relisted = {key["id"]: key for key in plugipay.api_keys.list()}
    assert len(relisted) == len(listed) + 1
    assert "secret" not in relisted[created["id"]].raw

    assert plugipay.api_keys.revoke(created["id"]) is None
    revoked = {key["id"]: key for key in plugipay.api_keys.list()}[created["id"]]
    assert revoked["revokedAt"]


def test_created_key_signs_requests_until_revoked(plugipay, sandbox):
    created = plugipay.api_keys.create(description="second key")
    base_url = f"{sandbox.url}/plugipay"
    with PlugipayClient(
        key_id=created["keyId"], secret=created["secret"], base_url=base_url
    ) as second:
        assert created["id"] in {key["id"] for key in second.api_keys.list()}
        plugipay.api_keys.revoke(created["id"])
        with pytest.raises(PlugipayError) as raised:
            second.api_keys.list()
    assert (raised.value.status, raised.value.code) == (401, "key_revoked")


def test_second_revoke_is_a_conflict(plugipay):
    created = plugipay.api_keys.create(description="twice")
    plugipay.api_keys.revoke(created["id"])
    with pytest.raises(PlugipayError) as raised:
        plugipay.api_keys.revoke(created["id"])
    assert (raised.value.status, raised.value.code) == (409, "conflict")
    assert raised.value.request_id


def test_revoke_of_unknown_id_is_not_found(plugipay):
    with pytest.raises(PlugipayError) as raised:
        plugipay.api_keys.revoke("apk_doesnotexist")
    assert (raised.value.status, raised.value.code) == (404, "not_found")


@pytest.mark.parametrize("scope", ["everything", "plugipay:apikey", "plugipay:ApiKey:write"])
def test_bad_scope_is_a_validation_error(plugipay, scope):
    with pytest.raises(PlugipayError) as raised:
        plugipay.api_keys.create(scope=scope)
    assert (raised.value.status, raised.value.code) == (400, "validation_error")


def test_narrow_key_is_forbidden_to_create_keys(plugipay, sandbox):
    narrow = plugipay.api_keys.create(scope="plugipay:apikey:read")
    with PlugipayClient(
        key_id=narrow["keyId"], secret=narrow["secret"], base_url=f"{sandbox.url}/plugipay"
    ) as client:
        assert client.api_keys.list()
        with pytest.raises(PlugipayError) as raised:
            client.api_keys.create(description="nope")
    assert (raised.value.status, raised.value.code) == (403, "forbidden")


def test_wrong_secret_is_an_invalid_signature(sandbox):
    with (
        PlugipayClient(
            key_id=sandbox.plugipay_key_id,
            secret="sk_test_wrong",
            base_url=f"{sandbox.url}/plugipay",
        ) as client,
        pytest.raises(PlugipayError) as raised,
    ):
        client.api_keys.list()
    assert (raised.value.status, raised.value.code) == (401, "invalid_signature")
