"""Token verification (pluginlab_django.tokens) against the live sandbox:
claim styles, the forged-token corpus, the JWKS cache (lifetime, sharing
between workers, rotation, single-flight refetch, stale-if-error) and the
verified-token cache."""

from __future__ import annotations

import json
import threading
import time

import jwt
import pytest
from django.core.cache import cache
from django.test import override_settings

from pluginlab_django import tokens
from pluginlab_django.tokens import (
    BadSignature,
    DisallowedAlgorithm,
    MalformedToken,
    SigningKeyStore,
    SigningKeysUnavailable,
    TokenExpired,
    TokenPayload,
    TokenTooLarge,
    TokenVerifier,
    UnknownSigningKey,
    WrongAudience,
    bearer_token,
    cache_lifetime,
    verify_token,
)
from tests.forged_tokens import (
    CERT_PATH,
    CORPUS,
    ISSUER,
    alg_none,
    forged_tokens,
    good_claims,
    sign,
    signing_key,
)

pytestmark = [pytest.mark.usefixtures("fresh_verifier"), pytest.mark.no_db]

# --- Accepted tokens -------------------------------------------------------


@pytest.mark.parametrize("claim_style", ["camel", "snake"])
def test_sandbox_tokens_are_accepted_in_both_claim_styles(sandbox, claim_style):
    member_id = sandbox.member_ids()[3]
    token = sandbox.mint_token(
        member_id, plan_id="plan_pro", price_id="price_1", claim_style=claim_style
    )
    payload = verify_token(token)
    assert isinstance(payload, TokenPayload)
    assert payload.uid == member_id
    assert payload.aud == f"plugin:{sandbox.plugin_id}:admin"
    assert payload.iss == ISSUER
    assert payload.exp > payload.iat
    assert payload.user.id == member_id
    assert payload.user.email
    assert payload.user.plan_id == "plan_pro"
    assert payload.user.price_id == "price_1"
    # Whichever spelling the token used, the names land in the same fields.
    raw_user = payload.claims["user"]
    given = raw_user.get("givenName", raw_user.get("given_name"))
    assert payload.user.given_name == given
    assert ("givenName" in raw_user) == (claim_style == "camel")


def test_token_without_kid_is_checked_against_each_key(sandbox):
    _, key = signing_key(sandbox)
    sandbox.rotate_signing_key()  # the JWKS now lists a new key first, the old one after
    token = jwt.encode(good_claims(sandbox), key, algorithm="PS256")  # old key, no kid
    assert "kid" not in jwt.get_unverified_header(token)
    assert verify_token(token).uid == sandbox.member_ids()[0]


def test_token_without_kid_signed_by_no_published_key_is_rejected(sandbox):
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(good_claims(sandbox), stranger, algorithm="PS256")
    with pytest.raises(BadSignature):
        verify_token(token)


# --- Forged tokens ---------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS)
def test_forged_tokens_are_rejected_with_the_failed_check(sandbox, name):
    verify_token(sandbox.mint_token(sandbox.member_ids()[0]))  # warm: keys are known
    token, expected = forged_tokens(sandbox)[name]
    with pytest.raises(expected) as excinfo:
        verify_token(token)
    assert token not in str(excinfo.value)


@pytest.mark.parametrize("field", ["jku", "x5u"])
def test_header_urls_are_never_followed(sandbox, field):
    verify_token(sandbox.mint_token(sandbox.member_ids()[0]))
    token = sign(sandbox, good_claims(sandbox), headers={field: f"{sandbox.url}/elsewhere/jwks"})
    assert verify_token(token).uid  # signed by the real key: accepted, and...
    assert sandbox.request_count("/elsewhere") == 0  # ...nothing fetched from the header's URL


def test_embedded_jwk_is_never_trusted(sandbox):
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAPSSAlgorithm

    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    embedded = json.loads(RSAPSSAlgorithm.to_jwk(attacker.public_key()))
    token = jwt.encode(good_claims(sandbox), attacker, algorithm="PS256", headers={"jwk": embedded})
    with pytest.raises(BadSignature):
        verify_token(token)


def test_corpus_names_cover_every_forgery(sandbox):
    assert sorted(forged_tokens(sandbox)) == sorted(CORPUS)


def test_oversized_token_is_refused_before_any_key_lookup(sandbox):
    with pytest.raises(TokenTooLarge):
        verify_token("a" * (tokens.MAX_TOKEN_LENGTH + 1))
    assert sandbox.request_count(CERT_PATH) == 0


def test_disallowed_algorithm_is_refused_before_any_key_lookup(sandbox):
    with pytest.raises(DisallowedAlgorithm):
        verify_token(alg_none(sandbox))
    assert sandbox.request_count(CERT_PATH) == 0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Token abc", None),
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer   abc.def.ghi  ", "abc.def.ghi"),
    ],
)
def test_bearer_token_parsing(header, expected):
    assert bearer_token(header) == expected


@pytest.mark.parametrize("header", ["Bearer", "Bearer   ", "Bearer a b"])
def test_empty_or_spaced_bearer_is_malformed(header):
    with pytest.raises(MalformedToken):
        bearer_token(header)


# --- The JWKS cache --------------------------------------------------------


def test_after_warm_up_verification_makes_no_network_call(sandbox):
    ids = sandbox.member_ids()
    verify_token(sandbox.mint_token(ids[0]))
    assert sandbox.request_count(CERT_PATH) == 1
    for member_id in ids[1:20]:
        verify_token(sandbox.mint_token(member_id))
    assert sandbox.request_count(CERT_PATH) == 1


def test_workers_share_the_jwks_through_the_django_cache(sandbox):
    verify_token(sandbox.mint_token(sandbox.member_ids()[0]))
    assert sandbox.request_count(CERT_PATH) == 1
    # A second worker: its own in-process state, the same Django cache.
    other = TokenVerifier(
        SigningKeyStore(tokens.get_verifier().keys.cert_url),
        audience=f"plugin:{sandbox.plugin_id}:admin",
        issuer=ISSUER,
    )
    assert other.verify(sandbox.mint_token(sandbox.member_ids()[1])).uid
    assert sandbox.request_count(CERT_PATH) == 1


@pytest.mark.parametrize(
    ("cache_control", "expected"),
    [
        ("public, max-age=600", 600),
        ("max-age=5", 60),  # clamped to JWKS_CACHE_MIN_SECONDS
        ("max-age=9999999", 86400),  # clamped to JWKS_CACHE_MAX_SECONDS
        ("no-cache", 3600),  # JWKS_CACHE_DEFAULT_SECONDS
        (None, 3600),
    ],
)
def test_jwks_lifetime_follows_cache_control_within_bounds(cache_control, expected):
    assert cache_lifetime(cache_control) == expected


def test_jwks_lifetime_comes_from_the_cert_response(sandbox):
    import requests

    verify_token(sandbox.mint_token(sandbox.member_ids()[0]))
    key_set = tokens.get_verifier().keys.current()
    response = requests.get(sandbox.url + CERT_PATH, timeout=5)
    expected = cache_lifetime(response.headers.get("Cache-Control"))
    assert key_set.expires_at - key_set.fetched_at == pytest.approx(expected)


def test_key_rotation_new_kid_accepted_after_one_refetch(sandbox):
    ids = sandbox.member_ids()
    verify_token(sandbox.mint_token(ids[0]))
    assert sandbox.request_count(CERT_PATH) == 1
    new_kid = sandbox.rotate_signing_key()
    token = sandbox.mint_token(ids[1])
    assert jwt.get_unverified_header(token)["kid"] == new_kid
    assert verify_token(token).uid == ids[1]
    assert sandbox.request_count(CERT_PATH) == 2
    # Old and new keys both work now, with no further fetch.
    assert verify_token(sandbox.mint_token(ids[2])).uid == ids[2]
    assert sandbox.request_count(CERT_PATH) == 2


def test_unknown_kid_refetch_is_rate_limited(sandbox):
    verify_token(sandbox.mint_token(sandbox.member_ids()[0]))
    forged = sign(sandbox, good_claims(sandbox), headers={"kid": "unknown-kid"})
    for _ in range(5):
        with pytest.raises(UnknownSigningKey):
            verify_token(forged)
    assert sandbox.request_count(CERT_PATH) == 2  # warm-up + one refetch


def test_100_concurrent_unknown_kid_requests_cause_one_fetch(sandbox):
    verify_token(sandbox.mint_token(sandbox.member_ids()[0]))
    before = sandbox.request_count(CERT_PATH)
    forged = sign(sandbox, good_claims(sandbox), headers={"kid": "rotated-away"})
    barrier = threading.Barrier(100)
    outcomes: list[str] = []

    def attempt():
        barrier.wait()
        try:
            verify_token(forged)
            outcomes.append("accepted")
        except Exception as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=attempt) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["UnknownSigningKey"] * 100
    assert sandbox.request_count(CERT_PATH) - before == 1


def test_refetch_cooldown_is_shared_between_workers(sandbox):
    verify_token(sandbox.mint_token(sandbox.member_ids()[0]))
    forged = sign(sandbox, good_claims(sandbox), headers={"kid": "unknown-kid"})
    with pytest.raises(UnknownSigningKey):
        verify_token(forged)
    assert sandbox.request_count(CERT_PATH) == 2
    other = TokenVerifier(
        SigningKeyStore(tokens.get_verifier().keys.cert_url),
        audience=f"plugin:{sandbox.plugin_id}:admin",
        issuer=ISSUER,
    )
    with pytest.raises(UnknownSigningKey):
        other.verify(forged)
    assert sandbox.request_count(CERT_PATH) == 2


def test_cert_down_after_warm_up_keeps_accepting(sandbox, settings):
    settings.PLUGINLAB = {
        **settings.PLUGINLAB,
        "JWKS_CACHE_MIN_SECONDS": 1,
        "JWKS_CACHE_MAX_SECONDS": 1,
    }
    ids = sandbox.member_ids()
    verify_token(sandbox.mint_token(ids[0]))
    sandbox.set_cert_down(True)
    assert verify_token(sandbox.mint_token(ids[1])).uid == ids[1]
    time.sleep(1.2)  # the cached JWKS is now past its lifetime, and the cert URL is down
    assert verify_token(sandbox.mint_token(ids[2])).uid == ids[2]
    assert sandbox.request_count(CERT_PATH) >= 2  # a refresh was tried, and failed
    # A worker starting during the outage falls back on the shared stale copy.
    other = TokenVerifier(
        SigningKeyStore(tokens.get_verifier().keys.cert_url),
        audience=f"plugin:{sandbox.plugin_id}:admin",
        issuer=ISSUER,
    )
    assert other.verify(sandbox.mint_token(ids[3])).uid == ids[3]


def test_cert_down_from_cold_is_unavailable_not_invalid(sandbox):
    sandbox.set_cert_down(True)
    token = sandbox.mint_token(sandbox.member_ids()[0])
    with pytest.raises(SigningKeysUnavailable) as excinfo:
        verify_token(token)
    assert not isinstance(excinfo.value, tokens.InvalidToken)
    assert excinfo.value.retry_after > 0
    # Requests during the back-off get the same answer without hammering the URL.
    fetches = sandbox.request_count(CERT_PATH)
    with pytest.raises(SigningKeysUnavailable):
        verify_token(token)
    assert sandbox.request_count(CERT_PATH) == fetches


def test_cert_url_recovery_after_cold_outage(sandbox):
    sandbox.set_cert_down(True)
    token = sandbox.mint_token(sandbox.member_ids()[0])
    with pytest.raises(SigningKeysUnavailable):
        verify_token(token)
    sandbox.set_cert_down(False)
    tokens.get_verifier().keys._retry_not_before = float("-inf")  # skip the back-off wait
    assert verify_token(token).uid == sandbox.member_ids()[0]


# --- The verified-token cache ----------------------------------------------


def test_repeated_token_is_served_from_the_verified_cache(sandbox):
    token = sandbox.mint_token(sandbox.member_ids()[0])
    first = verify_token(token)
    assert verify_token(token) is first


def test_verified_cache_never_outlives_exp(sandbox, settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "TOKEN_LEEWAY": 0}
    token = sandbox.mint_token(sandbox.member_ids()[0], expires_in=2)
    assert verify_token(token).uid
    time.sleep(
        max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time()) + 0.1
    )
    with pytest.raises(TokenExpired):
        verify_token(token)


def test_verified_cache_is_bounded(sandbox, settings):
    settings.PLUGINLAB = {**settings.PLUGINLAB, "TOKEN_CACHE_SIZE": 3}
    for member_id in sandbox.member_ids()[:10]:
        verify_token(sandbox.mint_token(member_id))
    assert len(tokens.get_verifier()._verified) == 3


def test_token_audience_follows_settings(sandbox, settings):
    token = sandbox.mint_token(sandbox.member_ids()[0])
    assert verify_token(token)
    other_audience = {**settings.PLUGINLAB, "TOKEN_AUDIENCE": "plugin:x:admin"}
    with override_settings(PLUGINLAB=other_audience), pytest.raises(WrongAudience):
        verify_token(token)


def test_reset_clears_the_shared_copy(sandbox):
    verify_token(sandbox.mint_token(sandbox.member_ids()[0]))
    store = tokens.get_verifier().keys
    assert cache.get(store.shared_key) is not None
    tokens.reset_verifier()
    assert cache.get(store.shared_key) is None
