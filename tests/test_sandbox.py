"""The sandbox speaks the wire protocol: raw HTTP with ``requests``, no project client.

The project's clients are tested against the sandbox; these tests check the
sandbox itself against ``wire-protocol.md``, so a mistake cannot hide in
both at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import jwt
import pytest
import requests

from pluginlab_django.testing import Sandbox

pytestmark = pytest.mark.no_db

ISSUER = "https://auth.pluginlab.ai"
UNKNOWN_ID = "mem_" + "0" * 40
REPO = Path(__file__).resolve().parent.parent


# Helpers --------------------------------------------------------------------


def admin_headers(sb: Sandbox) -> dict[str, str]:
    return {"X-PluginLab-Admin-Sdk-Secret": sb.admin_secret, "X-PluginLab-Plugin-Id": sb.plugin_id}


def members_url(sb: Sandbox, rest: str = "/members") -> str:
    return f"{sb.url}/auth/admin/plugins/{sb.plugin_id}{rest}"


def quota_url(sb: Sandbox, member_id: str) -> str:
    return f"{sb.url}/monetization/v1/admin/members/{member_id}/quota-usage"


def event_url(sb: Sandbox) -> str:
    return f"{sb.url}/event/events/create-custom"


def cert_url(sb: Sandbox) -> str:
    return f"{sb.url}/auth/admin/v1/cert"


def first_member_with(sb: Sandbox, method: str) -> str:
    for member_id in sb.member_ids():
        if sb.get_member(member_id)["auth"]["signInMethod"] == method:
            return member_id
    raise AssertionError(f"the sandbox seeded no {method} member")


def plugipay_request(
    sb: Sandbox,
    method: str,
    path: str,
    body: object = None,
    *,
    key_id: str | None = None,
    secret: str | None = None,
    idempotency_key: str | None = None,
    timestamp: int | None = None,
) -> requests.Response:
    """A request signed per spec §2, written out here rather than taken from a client."""
    raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    text = f"{method}\n{path}\n{stamp}\n{hashlib.sha256(raw).hexdigest()}"
    if idempotency_key:
        text += f"\n{idempotency_key}"
    signature = hmac.new(
        (secret or sb.plugipay_secret).encode(), text.encode(), hashlib.sha256
    ).hexdigest()
    headers = {
        "Authorization": (
            f"Plugipay-HMAC-SHA256 keyId={key_id or sb.plugipay_key_id}, scope=*, "
            f"signature={signature}"
        ),
        "X-Plugipay-Timestamp": stamp,
    }
    if body is not None:
        headers["Content-Type"] = "application/json"
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return requests.request(
        method, f"{sb.url}/plugipay{path}", data=raw or None, headers=headers, timeout=10
    )


def verify_with_jwks(token: str, jwks: dict, plugin_id: str) -> dict:
    """Plain PyJWT, choosing the key by ``kid`` as spec §1.5 says."""
    kid = jwt.get_unverified_header(token)["kid"]
    (key,) = [k for k in jwt.PyJWKSet.from_dict(jwks).keys if k.key_id == kid]
    return jwt.decode(
        token,
        key.key,
        algorithms=["PS256"],
        audience=f"plugin:{plugin_id}:admin",
        issuer=ISSUER,
        options={"require": ["exp", "iat", "uid"]},
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AdminSession(requests.Session):
    """Carries the admin headers and a timeout on every call, so no test can hang."""

    def __init__(self, sb: Sandbox) -> None:
        super().__init__()
        self.headers.update(admin_headers(sb))

    def request(self, *args, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return super().request(*args, **kwargs)


@pytest.fixture
def http(sandbox) -> Iterator[requests.Session]:
    with AdminSession(sandbox) as session:
        yield session


# Admin authentication (§1.1) ------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-PluginLab-Plugin-Id": "PLUGIN"},
        {"X-PluginLab-Plugin-Id": "PLUGIN", "X-PluginLab-Admin-Sdk-Secret": "wrong"},
        {"X-PluginLab-Plugin-Id": "plg_other", "X-PluginLab-Admin-Sdk-Secret": "SECRET"},
    ],
    ids=["none", "missing-secret", "wrong-secret", "wrong-plugin"],
)
def test_admin_calls_without_the_right_headers_are_401(sandbox, headers):
    headers = {
        name: value.replace("PLUGIN", sandbox.plugin_id).replace("SECRET", sandbox.admin_secret)
        for name, value in headers.items()
    }
    member_id = sandbox.member_ids()[0]
    calls = [
        ("GET", members_url(sandbox), None),
        ("GET", members_url(sandbox, f"/members/{member_id}"), None),
        ("GET", quota_url(sandbox, member_id), None),
        ("POST", event_url(sandbox), {"eventSource": "chat"}),
    ]
    for method, url, body in calls:
        response = requests.request(method, url, json=body, headers=headers, timeout=10)
        assert response.status_code == 401, url
        assert response.json()["code"] == "auth/unauthorized"
        assert sandbox.admin_secret not in response.text


# Member list and pagination (§1.2) ------------------------------------------


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", ""])
def test_limit_outside_1_to_100_is_400(sandbox, http, limit):
    response = http.get(members_url(sandbox), params={"limit": limit}, timeout=10)
    assert response.status_code == 400
    assert response.json()["code"] == "auth/invalid-limit"


@pytest.mark.parametrize(("limit", "count"), [(1, 1), (100, 50)])
def test_limit_bounds_are_accepted(sandbox, http, limit, count):
    response = http.get(members_url(sandbox), params={"limit": limit}, timeout=10)
    assert response.status_code == 200
    assert len(response.json()["items"]) == count


@pytest.mark.parametrize("query", ["", "&startAfter=", "&startAfter=null", "&startAfter=None"])
def test_first_page_quirks_all_start_from_the_beginning(sandbox, http, query):
    response = http.get(f"{members_url(sandbox)}?limit=5{query}", timeout=10)
    assert response.status_code == 200
    page = response.json()
    assert [m["id"] for m in page["items"]] == sandbox.member_ids()[:5]
    assert page["total"] == 50
    assert page["nextPageToken"]


def walk_pages(sb: Sandbox, session: requests.Session, limit: int) -> list[dict]:
    pages, token = [], None
    while True:
        query = f"?limit={limit}" + (f"&startAfter={token}" if token else "")
        response = session.get(members_url(sb) + query, timeout=10)
        assert response.status_code == 200
        pages.append(response.json())
        token = pages[-1]["nextPageToken"]
        if token is None:
            return pages
        assert re.fullmatch(r"[A-Za-z0-9_.~-]+", token), "token must be URL-safe"


def test_pagination_covers_every_member_once_in_a_stable_order(sandbox, http):
    pages = walk_pages(sandbox, http, limit=7)
    ids = [m["id"] for page in pages for m in page["items"]]

    assert len(pages) == 8
    assert [len(page["items"]) for page in pages] == [7] * 7 + [1]
    assert ids == sandbox.member_ids()
    assert len(set(ids)) == 50
    assert all(page["total"] == 50 for page in pages)
    assert pages[-1]["nextPageToken"] is None
    again = [m["id"] for page in walk_pages(sandbox, http, limit=7) for m in page["items"]]
    assert again == ids


def test_a_page_boundary_survives_a_deletion(sandbox, http):
    first = http.get(members_url(sandbox), params={"limit": 10}, timeout=10).json()
    sandbox.delete_member(first["items"][-1]["id"])
    rest = http.get(
        members_url(sandbox),
        params={"limit": 100, "startAfter": first["nextPageToken"]},
        timeout=10,
    ).json()
    assert [m["id"] for m in rest["items"]] == sandbox.member_ids()[9:]


def test_unusable_page_token_is_400(sandbox, http):
    response = http.get(
        members_url(sandbox), params={"limit": 5, "startAfter": "!!garbage"}, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["code"] == "auth/invalid-page-token"


# Members by id, by email, 404s ----------------------------------------------


def test_member_by_id_has_the_wire_shape(sandbox, http):
    member_id = first_member_with(sandbox, "google")
    member = http.get(members_url(sandbox, f"/members/{member_id}"), timeout=10).json()
    assert re.fullmatch(r"mem_[0-9a-f]{40}", member["id"])
    assert set(member) == {
        "id",
        "email",
        "name",
        "givenName",
        "familyName",
        "pictureUrl",
        "auth",
        "customFields",
        "metadata",
        "createdAtMs",
        "updatedAtMs",
    }
    assert member["auth"]["signInMethod"] == "google"
    assert member["auth"]["providerUserId"]
    assert {"email", "isVerified", "hasPassword"} <= set(member["auth"])


@pytest.mark.parametrize("email", ["plus+tag@example.com", "o'neil@example.com"])
def test_member_by_url_encoded_email(sandbox, http, email):
    created = sandbox.create_member(email)
    response = http.get(members_url(sandbox, f"/member/byEmail/{quote(email, safe='')}"))
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]


def test_member_by_plain_email(sandbox, http):
    member = sandbox.get_member(sandbox.member_ids()[3])
    response = http.get(members_url(sandbox, f"/member/byEmail/{member['email']}"), timeout=10)
    assert response.json()["id"] == member["id"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/members/UNKNOWN", None),
        ("PATCH", "/members/UNKNOWN", {"name": "x"}),
        ("DELETE", "/members/UNKNOWN", None),
        ("GET", "/members/UNKNOWN/identities", None),
        ("GET", "/member/byEmail/nobody%40example.com", None),
    ],
)
def test_unknown_member_is_404_with_a_code(sandbox, http, method, path, body):
    url = members_url(sandbox, path.replace("UNKNOWN", UNKNOWN_ID))
    response = http.request(method, url, json=body, timeout=10)
    assert response.status_code == 404
    assert response.json()["code"] == "auth/member-not-found"
    assert response.json()["message"]


def test_unknown_member_quota_is_404(sandbox, http):
    response = http.get(quota_url(sandbox, UNKNOWN_ID), timeout=10)
    assert response.status_code == 404
    assert response.json()["code"] == "auth/member-not-found"


# Create, delete, update -----------------------------------------------------


def test_create_is_201_and_the_id_comes_from_the_email(sandbox, http):
    body = {"email": "New.Person@example.com", "password": "pw", "metadata": {"k": "v"}}
    created = http.post(members_url(sandbox), json=body, timeout=10)
    assert created.status_code == 201
    member = created.json()
    assert re.fullmatch(r"mem_[0-9a-f]{40}", member["id"])
    assert member["metadata"] == {"k": "v"}
    assert member["auth"]["hasPassword"] is True
    assert member["auth"]["isVerified"] is False

    duplicate = http.post(members_url(sandbox), json=body, timeout=10)
    assert duplicate.status_code == 409
    assert duplicate.json()["code"]

    http.post(event_url(sandbox), json={"eventSource": "chat", "memberId": member["id"]})
    usage = http.get(quota_url(sandbox, member["id"]), timeout=10).json()["usageCount"]
    deleted = http.delete(members_url(sandbox, f"/members/{member['id']}"), timeout=10)
    assert 200 <= deleted.status_code < 300
    assert http.get(members_url(sandbox, f"/members/{member['id']}")).status_code == 404

    recreated = http.post(members_url(sandbox), json=body, timeout=10)
    assert recreated.status_code == 201
    assert recreated.json()["id"] == member["id"]
    assert http.get(quota_url(sandbox, member["id"])).json()["usageCount"] == usage


@pytest.mark.parametrize(
    "body",
    [{"password": "pw"}, {"email": "no-at-sign", "password": "pw"}, {"email": "a@example.com"}],
)
def test_create_validates_email_and_password(sandbox, http, body):
    response = http.post(members_url(sandbox), json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["code"].startswith("auth/")


def test_patch_replaces_metadata_whole_and_leaves_other_fields(sandbox, http):
    member_id = first_member_with(sandbox, "github")
    url = members_url(sandbox, f"/members/{member_id}")
    http.patch(url, json={"metadata": {"a": 1, "b": 2}}, timeout=10)
    before = http.get(url, timeout=10).json()

    response = http.patch(url, json={"metadata": {"c": 3}}, timeout=10)

    assert response.status_code == 200
    after = response.json()
    assert after["metadata"] == {"c": 3}
    assert after["updatedAtMs"] > before["updatedAtMs"]
    untouched = {k: v for k, v in before.items() if k not in ("metadata", "updatedAtMs")}
    assert {k: v for k, v in after.items() if k not in ("metadata", "updatedAtMs")} == untouched
    assert http.get(url, timeout=10).json() == after


def test_patch_of_names_keeps_metadata_and_sets_verified(sandbox, http):
    member_id = first_member_with(sandbox, "email-and-password")
    url = members_url(sandbox, f"/members/{member_id}")
    before = http.patch(url, json={"metadata": {"keep": True}}, timeout=10).json()

    after = http.patch(
        url, json={"name": "Ada L", "givenName": "Ada", "isVerified": True}, timeout=10
    ).json()

    assert (after["name"], after["givenName"]) == ("Ada L", "Ada")
    assert after["auth"]["isVerified"] is True
    assert after["metadata"] == {"keep": True}
    assert after["familyName"] == before["familyName"]
    assert after["email"] == before["email"]


# Identities and refresh -----------------------------------------------------


def test_identities_shape_and_empty_object(sandbox, http):
    google_id = first_member_with(sandbox, "google")
    identities = http.get(members_url(sandbox, f"/members/{google_id}/identities")).json()
    assert list(identities) == ["google"]
    assert set(identities["google"]) == {
        "provider",
        "providerUserId",
        "accessToken",
        "accessTokenExpiresAtMs",
        "refreshToken",
        "refreshTokenExpiresAtMs",
        "lastUsedAtMs",
    }
    email_id = first_member_with(sandbox, "magic-email-code")
    assert http.get(members_url(sandbox, f"/members/{email_id}/identities")).json() == {}


def test_refresh_gives_a_fresh_access_token(sandbox, http):
    member_id = first_member_with(sandbox, "google")
    old = http.get(members_url(sandbox, f"/members/{member_id}/identities")).json()["google"]

    response = http.post(members_url(sandbox, f"/members/{member_id}/identities/google/refresh"))

    assert response.status_code == 200
    fresh = response.json()
    assert fresh["provider"] == "google"
    assert fresh["accessToken"] and fresh["accessToken"] != old["accessToken"]
    assert fresh["accessTokenExpiresAtMs"] > old["accessTokenExpiresAtMs"]


def test_refresh_of_github_is_400_not_supported(sandbox, http):
    member_id = first_member_with(sandbox, "github")
    response = http.post(members_url(sandbox, f"/members/{member_id}/identities/github/refresh"))
    assert response.status_code == 400
    assert response.json()["code"] == "auth/refresh-not-supported"


def test_refresh_of_a_revoked_token_is_422(sandbox, http):
    member_id = sandbox.revoked_refresh_member_ids()[0]
    provider = sandbox.get_member(member_id)["auth"]["signInMethod"]
    response = http.post(
        members_url(sandbox, f"/members/{member_id}/identities/{provider}/refresh")
    )
    assert response.status_code == 422
    assert response.json()["code"] == "auth/refresh-token-failed"
    assert response.json()["message"]


# Quota and custom events (§1.3, §1.4) ----------------------------------------


def test_custom_event_counts_once_and_only_in_quota(sandbox, http):
    member_id = sandbox.member_ids()[0]
    before = http.get(quota_url(sandbox, member_id), timeout=10).json()
    assert set(before) == {
        "interval",
        "isOverLimit",
        "isUnlimited",
        "resetInDays",
        "usageCount",
        "usageLimit",
    }

    event = {
        "eventSource": "ChatGPT-10",
        "memberId": member_id,
        "location": {"countryCode": "FR", "subdivisionCode": None},
    }
    assert 200 <= http.post(event_url(sandbox), json=event, timeout=10).status_code < 300
    assert http.post(event_url(sandbox), json={**event, "isInQuota": False}).ok
    assert http.post(event_url(sandbox), json={"eventSource": "anonymous"}).ok

    after = http.get(quota_url(sandbox, member_id), timeout=10).json()
    assert after["usageCount"] == before["usageCount"] + 1


@pytest.mark.parametrize(
    ("event", "code"),
    [
        ({"eventSource": "x" * 11}, "event/invalid-event-source"),
        ({"eventSource": ""}, "event/invalid-event-source"),
        ({}, "event/invalid-event-source"),
        ({"eventSource": "ok", "location": {"countryCode": "FRA"}}, "event/invalid-country-code"),
        ({"eventSource": "ok", "location": {"countryCode": "1"}}, "event/invalid-country-code"),
        ({"eventSource": "ok", "location": {}}, "event/invalid-country-code"),
        ({"eventSource": "ok", "isInQuota": "yes"}, "event/invalid-is-in-quota"),
    ],
)
def test_custom_event_validation_is_400_with_a_code(sandbox, http, event, code):
    response = http.post(event_url(sandbox), json=event, timeout=10)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["message"]


# JWKS and tokens (§1.5) -----------------------------------------------------


def test_jwks_lists_the_current_key_first_with_kid_use_alg(sandbox):
    response = requests.get(cert_url(sandbox), timeout=10)
    assert response.status_code == 200
    assert re.search(r"max-age=\d+", response.headers["Cache-Control"])
    keys = response.json()["keys"]
    assert keys[0]["kid"] == sandbox.signing_private_key[0]
    for key in keys:
        assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "PS256")
        assert key["kid"] and key["n"] and key["e"]


@pytest.mark.parametrize("claim_style", ["camel", "snake"])
def test_minted_token_verifies_with_plain_pyjwt(sandbox, claim_style):
    member_id = sandbox.member_ids()[0]
    token = sandbox.mint_token(member_id, plan_id="plan_pro", claim_style=claim_style)
    assert jwt.get_unverified_header(token)["alg"] == "PS256"

    claims = verify_with_jwks(
        token, requests.get(cert_url(sandbox), timeout=10).json(), sandbox.plugin_id
    )

    assert claims["uid"] == member_id
    assert claims["user"]["id"] == member_id
    plan_key = "planId" if claim_style == "camel" else "plan_id"
    assert claims["user"][plan_key] == "plan_pro"


def test_token_minted_over_http_verifies(sandbox):
    member_id = sandbox.member_ids()[1]
    response = requests.post(
        f"{sandbox.url}/_sandbox/token",
        json={"member_id": member_id, "expires_in": 60},
        timeout=10,
    )
    claims = verify_with_jwks(
        response.json()["token"],
        requests.get(cert_url(sandbox), timeout=10).json(),
        sandbox.plugin_id,
    )
    assert claims["exp"] - claims["iat"] == 60


def test_rotation_puts_the_new_key_first_and_keeps_the_old_one(sandbox):
    member_id = sandbox.member_ids()[0]
    old_kid = sandbox.signing_private_key[0]
    old_token = sandbox.mint_token(member_id)

    new_kid = requests.post(f"{sandbox.url}/_sandbox/rotate-key", timeout=10).json()["kid"]

    jwks = requests.get(cert_url(sandbox), timeout=10).json()
    assert new_kid != old_kid
    assert [k["kid"] for k in jwks["keys"]][:2] == [new_kid, old_kid]
    assert verify_with_jwks(old_token, jwks, sandbox.plugin_id)["uid"] == member_id
    new_token = sandbox.mint_token(member_id)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert verify_with_jwks(new_token, jwks, sandbox.plugin_id)["uid"] == member_id


# Plugipay (§2) --------------------------------------------------------------


def test_correctly_signed_list_is_200_in_an_envelope(sandbox):
    response = plugipay_request(sandbox, "GET", "/api/v1/api-keys")
    assert response.status_code == 200
    envelope = response.json()
    assert envelope["meta"]["requestId"]
    keys = envelope["data"]
    assert sandbox.plugipay_key_id in {k["keyId"] for k in keys}
    assert all("secret" not in k for k in keys)
    assert any(k["revokedAt"] for k in keys), "the seed holds one revoked key"


def test_bad_signature_is_401(sandbox):
    response = plugipay_request(sandbox, "GET", "/api/v1/api-keys", secret="sk_test_wrong")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"


def test_signature_over_another_path_is_401(sandbox):
    """The signature covers the path after the base URL, query included."""
    raw = b""
    stamp = str(int(time.time()))
    text = f"GET\n/api/v1/api-keys\n{stamp}\n{hashlib.sha256(raw).hexdigest()}"
    signature = hmac.new(sandbox.plugipay_secret.encode(), text.encode(), "sha256").hexdigest()
    response = requests.get(
        f"{sandbox.url}/plugipay/api/v1/api-keys?x=1",
        headers={
            "Authorization": f"Plugipay-HMAC-SHA256 keyId={sandbox.plugipay_key_id}, "
            f"scope=*, signature={signature}",
            "X-Plugipay-Timestamp": stamp,
        },
        timeout=10,
    )
    assert response.status_code == 401


@pytest.mark.parametrize("offset", [-301, 305])
def test_timestamp_more_than_300_s_off_is_401(sandbox, offset):
    response = plugipay_request(
        sandbox, "GET", "/api/v1/api-keys", timestamp=int(time.time()) + offset
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"


def test_idempotent_replay_returns_the_first_response(sandbox):
    key = f"idem_{uuid.uuid4()}"
    body = {"description": "replayed", "scope": "*"}
    first = plugipay_request(sandbox, "POST", "/api/v1/api-keys", body, idempotency_key=key)
    second = plugipay_request(sandbox, "POST", "/api/v1/api-keys", body, idempotency_key=key)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["data"]["id"] == second.json()["data"]["id"]
    listed = plugipay_request(sandbox, "GET", "/api/v1/api-keys").json()["data"]
    assert [k["description"] for k in listed].count("replayed") == 1

    other = plugipay_request(
        sandbox, "POST", "/api/v1/api-keys", {"description": "other"}, idempotency_key=key
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "conflict"


def test_key_without_apikey_write_is_forbidden(sandbox):
    narrow = plugipay_request(
        sandbox,
        "POST",
        "/api/v1/api-keys",
        {"scope": "plugipay:apikey:read plugipay:customer:*"},
        idempotency_key=f"idem_{uuid.uuid4()}",
    ).json()["data"]
    as_narrow = {"key_id": narrow["keyId"], "secret": narrow["secret"]}

    assert plugipay_request(sandbox, "GET", "/api/v1/api-keys", **as_narrow).status_code == 200
    created = plugipay_request(
        sandbox,
        "POST",
        "/api/v1/api-keys",
        {"description": "nope"},
        idempotency_key=f"idem_{uuid.uuid4()}",
        **as_narrow,
    )
    revoked = plugipay_request(sandbox, "DELETE", f"/api/v1/api-keys/{narrow['id']}", **as_narrow)
    for response in (created, revoked):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"


def test_revoke_then_conflict_then_not_found(sandbox):
    created = plugipay_request(
        sandbox, "POST", "/api/v1/api-keys", {}, idempotency_key=f"idem_{uuid.uuid4()}"
    ).json()["data"]
    path = f"/api/v1/api-keys/{created['id']}"

    first = plugipay_request(sandbox, "DELETE", path)
    second = plugipay_request(sandbox, "DELETE", path)
    unknown = plugipay_request(sandbox, "DELETE", "/api/v1/api-keys/apk_unknown")

    assert (first.status_code, first.json()["data"]) == (200, None)
    assert (second.status_code, second.json()["error"]["code"]) == (409, "conflict")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    "body", [{"scope": "all"}, {"scope": "plugipay:apikey"}, {"description": "d" * 256}]
)
def test_create_validation_error(sandbox, body):
    response = plugipay_request(
        sandbox, "POST", "/api/v1/api-keys", body, idempotency_key=f"idem_{uuid.uuid4()}"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


# Faults ---------------------------------------------------------------------


def test_429_fault_carries_retry_after(sandbox, http):
    sandbox.set_faults(error_rate=1.0, error_status=429, path_prefix="/auth", count=1)
    faulted = http.get(members_url(sandbox), timeout=10)
    assert faulted.status_code == 429
    assert faulted.headers["Retry-After"].isdigit()
    assert faulted.json()["code"]
    assert http.get(members_url(sandbox), timeout=10).status_code == 200


def test_503_fault_on_plugipay_keeps_the_envelope(sandbox):
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/plugipay", count=1)
    faulted = plugipay_request(sandbox, "GET", "/api/v1/api-keys")
    assert faulted.status_code == 503
    assert faulted.json()["error"]["code"]
    assert plugipay_request(sandbox, "GET", "/api/v1/api-keys").status_code == 200


def test_dropped_connection_raises_connection_error(sandbox):
    sandbox.set_faults(drop_rate=1.0, path_prefix="/auth", count=1)
    with pytest.raises(requests.ConnectionError):
        requests.get(members_url(sandbox), headers=admin_headers(sandbox), timeout=10)
    ok = requests.get(members_url(sandbox), headers=admin_headers(sandbox), timeout=10)
    assert ok.status_code == 200


def test_fault_count_limits_it_to_the_next_n_matching_requests(sandbox, http):
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/monetization", count=3)
    member_id = sandbox.member_ids()[0]
    before = sandbox.request_count("/monetization")

    member = http.get(members_url(sandbox, f"/members/{member_id}"), timeout=10)
    statuses = [http.get(quota_url(sandbox, member_id), timeout=10).status_code for _ in range(5)]

    assert member.status_code == 200, "another prefix is not faulted"
    assert statuses == [503, 503, 503, 200, 200]
    assert sandbox.request_count("/monetization") == before + 5


def test_faults_set_over_http_apply_and_clear(sandbox, http):
    control = f"{sandbox.url}/_sandbox/faults"
    assert requests.post(control, json={"error_rate": 1, "error_status": 502}, timeout=10).ok
    assert http.get(members_url(sandbox), timeout=10).status_code == 502
    assert requests.delete(control, timeout=10).ok
    assert http.get(members_url(sandbox), timeout=10).status_code == 200


# Requests the server cannot parse -------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_malformed_json_body_is_a_4xx_json_error(sandbox, http, raw):
    response = http.post(
        members_url(sandbox), data=raw, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert response.json()["code"] == "request/invalid-json"


def test_malformed_json_to_plugipay_is_a_validation_error(sandbox):
    key = f"idem_{uuid.uuid4()}"
    raw = b"{not json"
    stamp = str(int(time.time()))
    text = f"POST\n/api/v1/api-keys\n{stamp}\n{hashlib.sha256(raw).hexdigest()}\n{key}"
    signature = hmac.new(sandbox.plugipay_secret.encode(), text.encode(), "sha256").hexdigest()
    response = requests.post(
        f"{sandbox.url}/plugipay/api/v1/api-keys",
        data=raw,
        headers={
            "Authorization": f"Plugipay-HMAC-SHA256 keyId={sandbox.plugipay_key_id}, "
            f"scope=*, signature={signature}",
            "X-Plugipay-Timestamp": stamp,
            "Idempotency-Key": key,
        },
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def raw_exchange(sb: Sandbox, request: bytes) -> bytes:
    """Send bytes on a fresh socket and read until the server closes it."""
    with socket.create_connection((sb.host, sb.port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/x.y\r\n\r\n",
        b"GET /auth HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"\x00\x01\x02 \xff\r\n\r\n",
    ],
    ids=["one-word", "bad-version", "bad-length", "binary"],
)
def test_garbage_request_gets_a_4xx_json_answer(sandbox, request_bytes):
    answer = raw_exchange(sandbox, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500
    assert json.loads(body)["code"]
    assert requests.get(cert_url(sandbox), timeout=10).ok, "the server still serves"


# Webhooks (§1.6) ------------------------------------------------------------

WEBHOOK_HEADERS = (
    "X-PluginLab-Signature",
    "X-PluginLab-Event",
    "X-PluginLab-Delivery-Id",
    "X-PluginLab-Hook-Id",
    "X-PluginLab-Plugin-Id",
    "X-PluginLab-Signature-Version",
    "X-PluginLab-Signature-Algorithm",
    "X-PluginLab-Timestamp",
    "X-Powered-By",
)


def test_webhook_deliveries_are_signed_over_the_raw_body(sandbox, http, webhook_receiver):
    requests.post(
        f"{sandbox.url}/_sandbox/webhook-url", json={"url": webhook_receiver.url}, timeout=10
    )
    created = http.post(members_url(sandbox), json={"email": "hook@example.com", "password": "p"})
    member_id = created.json()["id"]
    http.patch(members_url(sandbox, f"/members/{member_id}"), json={"name": "Hook"})
    google_id = first_member_with(sandbox, "google")
    http.post(members_url(sandbox, f"/members/{google_id}/identities/google/refresh"))
    http.delete(members_url(sandbox, f"/members/{member_id}"))

    records = sandbox.wait_for_deliveries(4)

    assert [(r["event"], r["status_code"], r["ok"]) for r in records] == [
        ("member.created", 200, True),
        ("member.updated", 200, True),
        ("identity.refreshed", 200, True),
        ("member.deleted", 200, True),
    ]
    assert len(webhook_receiver.received) == 4
    for (headers, body), record in zip(webhook_receiver.received, records, strict=True):
        assert set(WEBHOOK_HEADERS) <= set(headers), "header names exactly as documented"
        expected = hmac.new(sandbox.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-PluginLab-Signature"] == expected
        assert headers["X-PluginLab-Signature-Version"] == "1"
        assert headers["X-PluginLab-Signature-Algorithm"] == "sha256"
        assert headers["X-PluginLab-Plugin-Id"] == sandbox.plugin_id
        assert int(headers["X-PluginLab-Timestamp"]) >= 10**11, "milliseconds"
        payload = json.loads(body)
        assert payload["event"] == headers["X-PluginLab-Event"] == record["event"]
        assert payload["deliveryId"] == headers["X-PluginLab-Delivery-Id"]
        assert payload["data"]["member"]["id"] == record["member_id"]
    assert [json.loads(body)["data"]["member"]["id"] for _, body in webhook_receiver.received] == [
        member_id,
        member_id,
        google_id,
        member_id,
    ]


def test_no_webhook_url_means_no_delivery(sandbox, http, webhook_receiver):
    sandbox.set_webhook_url(webhook_receiver.url)
    sandbox.set_webhook_url(None)
    http.post(members_url(sandbox), json={"email": "quiet@example.com", "password": "p"})
    sandbox.set_webhook_url(webhook_receiver.url)
    http.patch(members_url(sandbox, f"/members/{sandbox.member_ids()[0]}"), json={"name": "N"})
    assert [r["event"] for r in sandbox.wait_for_deliveries(1)] == ["member.updated"]
    assert len(webhook_receiver.received) == 1


# The management command -----------------------------------------------------

ENV_KEYS = [
    "PLUGINLAB_PLUGIN_ID",
    "PLUGINLAB_SECRET",
    "PLUGINLAB_AUTH_URL",
    "PLUGINLAB_CERT_URL",
    "PLUGINLAB_MONETIZATION_URL",
    "PLUGINLAB_EVENT_URL",
    "PLUGINLAB_WEBHOOK_SECRET",
    "PLUGIPAY_BASE_URL",
    "PLUGIPAY_KEY_ID",
    "PLUGIPAY_SECRET",
    "PLUGINLAB_DEMO_TOKEN",
    "PLUGINLAB_FIELD_ENCRYPTION_KEYS",
]


def test_command_prints_the_settings_serves_them_and_stops_on_sigint():
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PLUGINLAB", "PLUGIPAY", "DJANGO_SETTINGS"))
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "pluginlab_sandbox", "--port", str(port), "--members", "20"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdout() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        printed = [lines.get(timeout=60) for _ in ENV_KEYS]
        assert None not in printed, process.stderr.read() if process.poll() is not None else ""
        pairs = [line.rstrip("\n").split("=", 1) for line in printed]
        assert [key for key, _ in pairs] == ENV_KEYS
        settings = dict(pairs)
        assert all(settings.values())
        assert settings["PLUGINLAB_CERT_URL"] == f"http://127.0.0.1:{port}/auth/admin/v1/cert"

        jwks = requests.get(settings["PLUGINLAB_CERT_URL"], timeout=10).json()
        claims = verify_with_jwks(
            settings["PLUGINLAB_DEMO_TOKEN"], jwks, settings["PLUGINLAB_PLUGIN_ID"]
        )
        page = requests.get(
            f"{settings['PLUGINLAB_AUTH_URL']}/admin/plugins/{settings['PLUGINLAB_PLUGIN_ID']}"
            "/members?limit=100",
            headers={
                "X-PluginLab-Admin-Sdk-Secret": settings["PLUGINLAB_SECRET"],
                "X-PluginLab-Plugin-Id": settings["PLUGINLAB_PLUGIN_ID"],
            },
            timeout=10,
        ).json()
        assert page["total"] == 20
        assert claims["uid"] == page["items"][0]["id"]

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert lines.get(timeout=10) is None, "nothing printed after the 12 lines"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


# Scale ----------------------------------------------------------------------


@pytest.mark.slow
def test_100k_members_seed_and_page_completely():
    with Sandbox(members=100_000, seed=7) as sb, requests.Session() as session:
        session.headers.update(admin_headers(sb))
        seen: list[str] = []
        token = None
        while True:
            params = {"limit": 100, **({"startAfter": token} if token else {})}
            page = session.get(members_url(sb), params=params, timeout=30).json()
            assert page["total"] == 100_000
            seen += [member["id"] for member in page["items"]]
            token = page["nextPageToken"]
            if token is None:
                break
        assert len(seen) == 100_000
        assert len(set(seen)) == 100_000
        assert seen == sb.member_ids()
