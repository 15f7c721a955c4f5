"""Faults the sandbox injects, and requests it cannot parse (a 4xx JSON
answer, never a dropped server).

Raw HTTP with ``requests``, no project client: these files check the sandbox
itself against ``wire-protocol.md``, so a mistake cannot hide in the sandbox
and the clients at once.
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import requests

from pluginlab_django.testing import Sandbox
from tests.sandbox_support import (
    admin_headers,
    cert_url,
    members_url,
    plugipay_headers,
    plugipay_request,
    quota_url,
)

pytestmark = pytest.mark.no_db

# Faults ---------------------------------------------------------------------


def test_429_fault_carries_retry_after(sandbox, admin_http):
    sandbox.set_faults(error_rate=1.0, error_status=429, path_prefix="/auth", count=1)
    faulted = admin_http.get(members_url(sandbox), timeout=10)
    assert faulted.status_code == 429
    assert faulted.headers["Retry-After"].isdigit()
    assert faulted.json()["code"]
    assert admin_http.get(members_url(sandbox), timeout=10).status_code == 200


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


def test_fault_count_limits_it_to_the_next_n_matching_requests(sandbox, admin_http):
    sandbox.set_faults(error_rate=1.0, error_status=503, path_prefix="/monetization", count=3)
    member_id = sandbox.member_ids()[0]
    before = sandbox.request_count("/monetization")

    member = admin_http.get(members_url(sandbox, f"/members/{member_id}"), timeout=10)
    statuses = [
        admin_http.get(quota_url(sandbox, member_id), timeout=10).status_code for _ in range(5)
    ]

    assert member.status_code == 200, "another prefix is not faulted"
    assert statuses == [503, 503, 503, 200, 200]
    assert sandbox.request_count("/monetization") == before + 5


def test_faults_set_over_http_apply_and_clear(sandbox, admin_http):
    control = f"{sandbox.url}/_sandbox/faults"
    assert requests.post(control, json={"error_rate": 1, "error_status": 502}, timeout=10).ok
    assert admin_http.get(members_url(sandbox), timeout=10).status_code == 502
    assert requests.delete(control, timeout=10).ok
    assert admin_http.get(members_url(sandbox), timeout=10).status_code == 200


# Requests the server cannot parse -------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_malformed_json_body_is_a_4xx_json_error(sandbox, admin_http, raw):
    response = admin_http.post(
        members_url(sandbox), data=raw, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert response.json()["code"] == "request/invalid-json"


def test_malformed_json_to_plugipay_is_a_validation_error(sandbox):
    raw = b"{not json"
    headers = plugipay_headers(
        sandbox, "POST", "/api/v1/api-keys", raw, idempotency_key=f"idem_{uuid.uuid4()}"
    )
    response = requests.post(
        f"{sandbox.url}/plugipay/api/v1/api-keys", data=raw, headers=headers, timeout=10
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
