"""Settings that cannot be wrong silently (issue 14, item 1).

Each bad setting is refused twice: by ``manage.py check`` (a ``pluginlab.E…``
error whose hint names the key, the value and what is expected) and, on a
site served without ``check``, at run time with a clear error: 503 JSON on
API views, a message in the admin, an ``ImproperlyConfigured`` in the log;
never a 500.
"""

from __future__ import annotations

import json
import logging

import pytest
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import reverse

from pluginlab_django import checks, sync
from pluginlab_django.conf import (
    DEFAULTS,
    VALIDATORS,
    PluginLabImproperlyConfigured,
    pluginlab_settings,
)
from pluginlab_django.models import Identity, SyncRun
from tests.member_rows import make_members

pytestmark = pytest.mark.django_db

GOOD_FERNET = "bXQ0T2Z3b0dWc2x4V2hJbmZsY0lKc2xKc0RqS2V3Qmc="


def pluginlab_errors() -> list[Error]:
    found = checks.check_pluginlab_settings() + checks.check_pluginlab_credentials()
    return [m for m in found if isinstance(m, Error)]


def with_setting(settings, **values) -> None:
    settings.PLUGINLAB = {**settings.PLUGINLAB, **values}


def only_error(settings, key, value) -> Error:
    with_setting(settings, **{key: value})
    errors = [e for e in pluginlab_errors() if key in e.msg]
    assert len(errors) == 1, [str(e) for e in pluginlab_errors()]
    return errors[0]


# manage.py check ------------------------------------------------------------

BAD_VALUES = [
    ("TOKEN_LEEWAY", "30", "pluginlab.E005", "an integer"),
    ("TOKEN_LEEWAY", -1, "pluginlab.E005", "an integer from 0"),
    ("TOKEN_LEEWAY", True, "pluginlab.E005", "an integer"),
    ("CACHE_ALIAS", "nope", "pluginlab.E006", "'default'"),
    ("USER_RESOLVER", "nowhere.resolve_user", "pluginlab.E007", "importing it failed"),
    ("USER_RESOLVER", "pluginlab_django.conf.SETTINGS_NAME", "pluginlab.E007", "not callable"),
    ("WEBHOOK_MAX_BODY_BYTES", None, "pluginlab.E005", "an integer ≥ 1 (bytes)"),
    ("FIELD_ENCRYPTION_KEYS", [GOOD_FERNET, "not-a-fernet-key"], "pluginlab.E008", "position 1"),
    ("FIELD_ENCRYPTION_KEYS", GOOD_FERNET, "pluginlab.E008", "a list of Fernet keys"),
    ("QUOTA_WHEN_NO_SNAPSHOT", "Allow", "pluginlab.E005", "'allow' or 'deny'"),
    ("SYNC_PAGE_SIZE", 500, "pluginlab.E005", "from 1 to 100"),
    ("SYNC_PAGE_SIZE", 0, "pluginlab.E005", "from 1 to 100"),
    ("AUTH_URL", "https://auth.pluginlab.ai/admin/v1", "pluginlab.E003", "without /admin"),
    ("AUTH_URL", "ftp://auth.pluginlab.ai", "pluginlab.E003", "http(s) URL"),
    ("AUTH_URL", "auth.pluginlab.ai", "pluginlab.E003", "http(s) URL"),
    ("AUTH_URL", "https://auth.pluginlab.ai?x=1", "pluginlab.E003", "no query"),
    ("CERT_URL", "https://auth.pluginlab.ai", "pluginlab.E003", "the JWKS itself"),
    ("MONETIZATION_URL", "https://m.example/v1/admin/members", "pluginlab.E003", "without"),
    ("EVENT_URL", "https://event.pluginlab.ai/events/create-custom", "pluginlab.E003", "without"),
    ("PLUGIPAY_BASE_URL", "https://plugipay.com/api/v1", "pluginlab.E003", "without /api/v1"),
    ("PLUGIPAY_BASE_URL", "https://plugipay.com:99999", "pluginlab.E003", "http(s) URL"),
    ("CONNECT_TIMEOUT", 0, "pluginlab.E005", "a number > 0"),
    ("READ_TIMEOUT", "10", "pluginlab.E005", "a number > 0"),
    ("RETRY_TOTAL", 3.5, "pluginlab.E005", "an integer"),
    ("RETRY_STATUS_FORCELIST", (429, "503"), "pluginlab.E005", "HTTP status codes"),
    ("POOL_MAXSIZE", 0, "pluginlab.E005", "an integer ≥ 1"),
    ("TOKEN_ISSUER", "", "pluginlab.E005", "a non-empty string"),
    ("TOKEN_CACHE_SIZE", -5, "pluginlab.E005", "an integer ≥ 0"),
    ("JWKS_CACHE_MAX_SECONDS", 0, "pluginlab.E005", "an integer ≥ 1"),
    ("WEBHOOK_TOLERANCE_SECONDS", "300", "pluginlab.E005", "an integer ≥ 1"),
    ("DASHBOARD_CACHE_SECONDS", None, "pluginlab.E005", "an integer ≥ 0"),
    ("PLUGIN_ID", 42, "pluginlab.E005", "a non-empty string"),
]


@pytest.mark.parametrize(("key", "value", "check_id", "expected"), BAD_VALUES)
def test_check_names_key_value_and_what_is_expected(settings, key, value, check_id, expected):
    error = only_error(settings, key, value)
    assert error.id == check_id
    assert key in error.hint and "expected" in error.hint and expected in error.hint
    if key != "FIELD_ENCRYPTION_KEYS":
        assert repr(value)[:40] in error.hint


def test_manage_py_check_fails_on_a_bad_value(settings):
    with_setting(settings, TOKEN_LEEWAY="30")
    with pytest.raises(SystemCheckError, match=r"pluginlab\.E005.*TOKEN_LEEWAY"):
        call_command("check")


def test_secrets_and_keys_are_never_shown(settings):
    error = only_error(settings, "FIELD_ENCRYPTION_KEYS", [GOOD_FERNET, "not-a-fernet-key"])
    assert GOOD_FERNET not in error.hint and "not-a-fernet-key" not in error.hint
    error = only_error(settings, "ADMIN_SECRET", ["sekrit-in-a-list"])
    assert "sekrit" not in error.hint and "not shown" in error.hint


def test_every_key_has_a_validator_and_every_default_passes():
    assert set(DEFAULTS) <= set(VALIDATORS), "give each new key a line in conf.VALIDATORS"
    for key, default in DEFAULTS.items():
        assert VALIDATORS[key](default) is None, key


def test_the_test_and_sandbox_settings_pass(sandbox):
    assert pluginlab_errors() == []


def test_ordered_pairs_are_checked(settings):
    with_setting(settings, JWKS_CACHE_MIN_SECONDS=600, JWKS_CACHE_MAX_SECONDS=60)
    (error,) = [
        e
        for e in pluginlab_errors()
        if "larger than" in e.msg and "MIN" in e.msg and "MAX" in e.msg
    ]
    assert error.id == "pluginlab.E005" and "600" in error.hint and "60" in error.hint


def test_settings_not_a_dict(settings):
    settings.PLUGINLAB = ["PLUGIN_ID"]
    assert [e.id for e in pluginlab_errors()] == ["pluginlab.E000"]
    with pytest.raises(ImproperlyConfigured, match="must be a dict"):
        pluginlab_settings.PLUGIN_ID  # noqa: B018


def test_a_key_without_validator_is_read_as_it_is(settings, monkeypatch):
    monkeypatch.setitem(DEFAULTS, "SOME_NEW_KEY", 1)
    with_setting(settings, SOME_NEW_KEY="anything")
    assert pluginlab_settings.SOME_NEW_KEY == "anything"
    assert pluginlab_errors() == []


def test_a_validator_that_breaks_is_a_problem_not_a_crash(settings, monkeypatch):
    from pluginlab_django.setting_validators import Validator

    monkeypatch.setitem(VALIDATORS, "TOKEN_LEEWAY", Validator(lambda value: 1 / 0))
    error = only_error(settings, "TOKEN_LEEWAY", 30)
    assert "ZeroDivisionError" in error.hint


# Run time: no 500 ------------------------------------------------------------


def token_get(client, sandbox, url_name="auth-whoami", **extra):
    token = sandbox.mint_token(sandbox.member_ids()[0], plan_id="plan_pro")
    return client.get(reverse(url_name), HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


def assert_misconfigured(response, key=None):
    assert response.status_code == 503, response.content[:300]
    body = json.loads(response.content)
    assert body["detail"] == PluginLabImproperlyConfigured.default_detail
    assert body.get("code", "pluginlab_misconfigured") == "pluginlab_misconfigured"
    if key:  # the details are for the log, not for API clients
        assert key not in body["detail"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("TOKEN_LEEWAY", "30"),
        ("USER_RESOLVER", "nowhere.resolve_user"),
        ("CERT_URL", "https://auth.pluginlab.ai"),
    ],
)
@pytest.mark.parametrize("url_name", ["auth-whoami", "auth-plain"])
def test_token_views_answer_503_and_log_the_setting(
    sandbox, client, settings, caplog, fresh_verifier, key, value, url_name
):
    with_setting(settings, **{key: value})
    with caplog.at_level(logging.ERROR, logger="pluginlab_django.conf"):
        response = token_get(client, sandbox, url_name)
    assert_misconfigured(response, key)
    logged = [r.getMessage() for r in caplog.records if r.name == "pluginlab_django.conf"]
    assert logged and "ImproperlyConfigured" in logged[0] and key in logged[0]


@pytest.mark.parametrize("url_name", ["auth-whoami", "auth-plain"])
def test_unknown_cache_alias_answers_503_for_an_unknown_kid(
    sandbox, client, settings, fresh_verifier, url_name
):
    """The shared JWKS cache is best effort (a known key still verifies), but
    the refetch cool-down needs the cache: 503, not 500."""
    token = sandbox.mint_token(sandbox.member_ids()[0])
    assert client.get(reverse(url_name), HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    with_setting(settings, CACHE_ALIAS="nope")
    unknown = sandbox.mint_token(sandbox.member_ids()[0], kid="kid-nobody-knows")
    response = client.get(reverse(url_name), HTTP_AUTHORIZATION=f"Bearer {unknown}")
    assert_misconfigured(response, "CACHE_ALIAS")


def test_quota_setting_answers_503_not_a_silent_refusal(sandbox, client, settings):
    with_setting(settings, QUOTA_WHEN_NO_SNAPSHOT="Allow")
    assert_misconfigured(token_get(client, sandbox, "auth-quota"), "QUOTA_WHEN_NO_SNAPSHOT")


def test_webhook_with_no_body_limit_answers_503(client, settings):
    with_setting(settings, WEBHOOK_MAX_BODY_BYTES=None)
    body = b'{"event": "member.updated"}'
    response = client.post(reverse("pluginlab:webhook"), body, content_type="application/json")
    assert_misconfigured(response)


def test_sync_with_a_bad_page_size_fails_at_once_and_clearly(settings):
    with_setting(settings, SYNC_PAGE_SIZE=500)
    with pytest.raises(ImproperlyConfigured, match=r"SYNC_PAGE_SIZE.*500.*from 1 to 100"):
        sync.sync_members()
    assert not SyncRun.objects.exists()


def test_admin_page_with_a_bad_fernet_key_shows_the_error(admin_client, settings):
    (member,) = make_members(1)
    Identity.objects.create(member=member, provider="google", access_token="ya29.secret")
    with_setting(settings, FIELD_ENCRYPTION_KEYS=["not-a-fernet-key"])
    url = reverse("admin:pluginlab_django_member_change", args=[member.pk])
    response = admin_client.get(url)
    assert response.status_code == 503
    page = response.content.decode()
    assert "FIELD_ENCRYPTION_KEYS" in page and "not a Fernet key" in page
    assert "not-a-fernet-key" not in page


def test_admin_dashboard_with_an_unknown_cache_alias_shows_the_error(admin_client, settings):
    with_setting(settings, CACHE_ALIAS="nope")
    response = admin_client.get(reverse("admin:pluginlab_django_dashboard_changelist"))
    assert response.status_code == 503
    assert "CACHE_ALIAS" in response.content.decode()


def test_admin_action_without_admin_secret_is_a_message(admin_client, settings):
    (member,) = make_members(1)
    settings.PLUGINLAB = {k: v for k, v in settings.PLUGINLAB.items() if k != "ADMIN_SECRET"}
    changelist = reverse("admin:pluginlab_django_member_changelist")
    data = {"action": "sync_from_pluginlab", "_selected_action": [member.pk], "confirm": "yes"}
    response = admin_client.post(changelist, data, follow=True)
    assert response.status_code == 200
    texts = [str(m) for m in response.context["messages"]]
    assert any("ADMIN_SECRET" in text and "not set" in text for text in texts), texts


def test_admin_action_with_a_pasted_endpoint_as_auth_url_is_a_message(admin_client, settings):
    (member,) = make_members(1)
    with_setting(settings, AUTH_URL="https://auth.pluginlab.ai/admin/v1")
    changelist = reverse("admin:pluginlab_django_member_changelist")
    data = {"action": "sync_from_pluginlab", "_selected_action": [member.pk], "confirm": "yes"}
    response = admin_client.post(changelist, data, follow=True)
    assert response.status_code == 200
    texts = [str(m) for m in response.context["messages"]]
    assert any("AUTH_URL" in text for text in texts), texts


def test_clients_without_credentials_raise_a_clear_error(settings):
    from pluginlab_django.clients import get_pluginlab_client, get_plugipay_client

    settings.PLUGINLAB = {k: v for k, v in settings.PLUGINLAB.items() if k != "ADMIN_SECRET"}
    with pytest.raises(PluginLabImproperlyConfigured, match=r"ADMIN_SECRET.*not set"):
        get_pluginlab_client()
    with pytest.raises(PluginLabImproperlyConfigured, match="PLUGIPAY_KEY_ID"):
        get_plugipay_client()


def test_a_fixed_setting_works_again(sandbox, client, settings, fresh_verifier):
    with_setting(settings, TOKEN_LEEWAY="30")
    assert token_get(client, sandbox).status_code == 503
    with_setting(settings, TOKEN_LEEWAY=30)
    assert token_get(client, sandbox).status_code == 200
