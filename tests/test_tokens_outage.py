"""Tokens during a JWKS outage: a key PluginLab rotated to while the cert URL
is down is "retry later" (503), never "invalid" (401), and is accepted as
soon as the cert URL answers again (a failed refetch starts no cool-down)."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from pluginlab_django import tokens
from pluginlab_django.conf import pluginlab_settings
from pluginlab_django.tokens import SigningKeysUnavailable, UnknownSigningKey, verify_token
from tests.auth_headers import bearer

pytestmark = pytest.mark.usefixtures("fresh_verifier")

WHOAMI = "/auth/whoami/"  # tests/urls.py mounts tests.views under auth/
CERT_PATH = "/auth/admin/v1/cert"


def skip_failure_backoff() -> None:
    """The few seconds' back-off after a failed fetch (which spares a down
    cert URL a request per token) is not what these tests are about."""
    tokens.get_verifier().keys._retry_not_before = float("-inf")


@pytest.mark.no_db
def test_a_key_rotated_during_the_outage_is_unavailable_not_invalid(sandbox):
    ids = sandbox.member_ids()
    verify_token(sandbox.mint_token(ids[0]))  # warm: the old key is known
    sandbox.set_cert_down(True)
    sandbox.rotate_signing_key()
    rotated = sandbox.mint_token(ids[1])
    with pytest.raises(SigningKeysUnavailable) as excinfo:
        verify_token(rotated)
    assert not isinstance(excinfo.value, tokens.InvalidToken)
    assert excinfo.value.retry_after > 0
    # During the back-off the same answer comes without another fetch.
    fetches = sandbox.request_count(CERT_PATH)
    with pytest.raises(SigningKeysUnavailable):
        verify_token(rotated)
    assert sandbox.request_count(CERT_PATH) == fetches


@pytest.mark.no_db
def test_the_rotated_key_is_accepted_as_soon_as_the_cert_url_answers(sandbox):
    ids = sandbox.member_ids()
    verify_token(sandbox.mint_token(ids[0]))
    sandbox.set_cert_down(True)
    sandbox.rotate_signing_key()
    rotated = sandbox.mint_token(ids[1])
    with pytest.raises(SigningKeysUnavailable):
        verify_token(rotated)
    # The failed refetch left no cool-down marker for the other workers either.
    cooldown_key = tokens.get_verifier().keys.cooldown_key
    assert caches[pluginlab_settings.CACHE_ALIAS].get(cooldown_key) is None

    sandbox.set_cert_down(False)
    skip_failure_backoff()
    assert verify_token(rotated).uid == ids[1]  # not 60 s of UnknownSigningKey


@pytest.mark.no_db
def test_an_unknown_kid_with_the_cert_url_up_is_still_invalid(sandbox):
    ids = sandbox.member_ids()
    verify_token(sandbox.mint_token(ids[0]))
    forged = sandbox.mint_token(ids[1], kid="never-published")
    with pytest.raises(UnknownSigningKey):
        verify_token(forged)
    # ... and the cool-down after a successful refetch still holds.
    fetches = sandbox.request_count(CERT_PATH)
    with pytest.raises(UnknownSigningKey):
        verify_token(forged)
    assert sandbox.request_count(CERT_PATH) == fetches


@pytest.mark.django_db
def test_through_the_view_503_with_retry_after_then_200(sandbox, client):
    ids = sandbox.member_ids()
    assert client.get(WHOAMI, **bearer(sandbox.mint_token(ids[0]))).status_code == 200
    sandbox.set_cert_down(True)
    sandbox.rotate_signing_key()
    rotated = sandbox.mint_token(ids[1])
    response = client.get(WHOAMI, **bearer(rotated))
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "WWW-Authenticate" not in response
    sandbox.set_cert_down(False)
    skip_failure_backoff()
    assert client.get(WHOAMI, **bearer(rotated)).status_code == 200
