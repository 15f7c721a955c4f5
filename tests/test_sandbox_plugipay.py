"""The sandbox's Plugipay (§2): HMAC-signed requests, idempotent replays, API keys.

Raw HTTP with ``requests``, no project client: these files check the sandbox
itself against ``wire-protocol.md``, so a mistake cannot hide in the sandbox
and the clients at once.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.sandbox_support import (
    plugipay_headers,
    plugipay_request,
)

pytestmark = pytest.mark.no_db

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
    response = requests.get(
        f"{sandbox.url}/plugipay/api/v1/api-keys?x=1",
        headers=plugipay_headers(sandbox, "GET", "/api/v1/api-keys", b""),
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
