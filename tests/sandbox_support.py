"""Talking to the sandbox the way its own tests do: the wire protocol's URLs
and headers written out by hand (no project client), a Plugipay request
signed per spec §2, tokens verified with plain PyJWT, and picking a seeded
member by sign-in method. Shared by the ``test_sandbox_*`` files and the
client tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time

import jwt
import requests

from pluginlab_django.testing import Sandbox

ISSUER = "https://auth.pluginlab.ai"
UNKNOWN_ID = "mem_" + "0" * 40


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


def plugipay_headers(
    sb: Sandbox,
    method: str,
    path: str,
    raw: bytes,
    *,
    key_id: str | None = None,
    secret: str | None = None,
    idempotency_key: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The headers signing ``raw`` for ``method path`` per spec §2, written out
    here rather than taken from a client (tests can sign one path and send
    another, or sign a body that is not JSON)."""
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
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


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
    """A request signed per spec §2 (``body`` sent as compact JSON)."""
    raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    headers = plugipay_headers(
        sb,
        method,
        path,
        raw,
        key_id=key_id,
        secret=secret,
        idempotency_key=idempotency_key,
        timestamp=timestamp,
    )
    if body is not None:
        headers["Content-Type"] = "application/json"
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


class AdminSession(requests.Session):
    """Carries the admin headers and a timeout on every call, so no test can hang."""

    def __init__(self, sb: Sandbox) -> None:
        super().__init__()
        self.headers.update(admin_headers(sb))

    def request(self, *args, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return super().request(*args, **kwargs)


def bare_environment() -> dict[str, str]:
    """``os.environ`` without PluginLab, Plugipay or Django settings: how a
    new user's shell starts ``manage.py pluginlab_sandbox``."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PLUGINLAB", "PLUGIPAY", "DJANGO_SETTINGS"))
    }
