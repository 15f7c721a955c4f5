"""Plugipay's API keys (wire spec §2), every request HMAC-signed.

The signature covers ``METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP\\nsha256(BODY)``
(+ ``\\nIDEMPOTENCY_KEY`` on POST), PATH being relative to the base URL, as
Plugipay's own SDK signs it. A POST gets one idempotency key per logical call,
so its retries are deduplicated by the server and are therefore allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import requests

from .exceptions import PlugipayError, PlugipayUnavailable
from .transport import Transport, TransportFailure, TransportOptions
from .types import ApiKey

DEFAULT_BASE_URL = "https://plugipay.com"
API_KEYS_PATH = "/api/v1/api-keys"


def sign(
    secret: str,
    *,
    method: str,
    path: str,
    timestamp: str,
    body: str = "",
    idempotency_key: str | None = None,
) -> str:
    """The lowercase hex HMAC-SHA256 signature of one request."""
    body_hash = hashlib.sha256(body.encode()).hexdigest()
    message = f"{method.upper()}\n{path}\n{timestamp}\n{body_hash}"
    if idempotency_key:
        message += f"\n{idempotency_key}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class PlugipayClient:
    """Manage Plugipay API keys with a key that has ``plugipay:apikey:write``."""

    def __init__(
        self,
        *,
        key_id: str,
        secret: str,
        base_url: str = DEFAULT_BASE_URL,
        options: TransportOptions | None = None,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not key_id or not secret:
            raise ValueError("PlugipayClient needs a key_id and a secret")
        self.key_id = key_id
        self._secret = secret
        self.base_url = base_url.rstrip("/")
        self.transport = transport or Transport(options)
        self._clock = clock

    def __repr__(self) -> str:
        return f"<PlugipayClient key_id={self.key_id!r} base_url={self.base_url!r}>"

    @classmethod
    def from_settings(cls) -> PlugipayClient:
        from ..conf import pluginlab_settings as s

        return cls(
            key_id=s.PLUGIPAY_KEY_ID,
            secret=s.PLUGIPAY_SECRET,
            base_url=s.PLUGIPAY_BASE_URL,
            options=TransportOptions.from_settings(),
        )

    def list_api_keys(self) -> list[ApiKey]:
        """Every key of the workspace, revoked ones included (never a secret)."""
        data = self._call("GET", API_KEYS_PATH) or []
        return [ApiKey.from_json(item) for item in data]

    def create_api_key(self, description: str | None = None, scope: str | None = None) -> ApiKey:
        """A new key; the returned ``secret`` is the only copy there will ever be."""
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if scope is not None:
            body["scope"] = scope
        return ApiKey.from_json(self._call("POST", API_KEYS_PATH, json_body=body))

    def revoke_api_key(self, record_id: str) -> None:
        """Revoke by record id (``apk_…``); a second revoke raises code ``conflict``."""
        self._call("DELETE", f"{API_KEYS_PATH}/{record_id}")

    def _call(self, method: str, path: str, *, json_body: Any = None) -> Any:
        body = "" if json_body is None else json.dumps(json_body, separators=(",", ":"))
        idempotency_key = f"idem_{uuid.uuid4()}" if method == "POST" else None
        timestamp = str(int(self._clock()))
        signature = sign(
            self._secret,
            method=method,
            path=path,
            timestamp=timestamp,
            body=body,
            idempotency_key=idempotency_key,
        )
        headers = {
            "Accept": "application/json",
            "Authorization": (
                f"Plugipay-HMAC-SHA256 keyId={self.key_id}, scope=*, signature={signature}"
            ),
            "X-Plugipay-Timestamp": timestamp,
        }
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = self.transport.request(
                method,
                f"{self.base_url}{path}",
                headers=headers,
                data=body.encode() if json_body is not None else None,
                idempotent=idempotency_key is not None,
            )
        except TransportFailure as exc:
            raise PlugipayUnavailable(f"Plugipay is unreachable: {exc}") from None
        return _unwrap(response)


def _unwrap(response: requests.Response) -> Any:
    try:
        envelope = response.json() if response.content else {}
    except ValueError:
        envelope = None
    if not isinstance(envelope, Mapping):
        raise PlugipayError(
            "Plugipay answered with a body that is not a JSON envelope",
            status=response.status_code,
        )
    meta = envelope.get("meta")
    if not isinstance(meta, Mapping):
        meta = {}
    request_id = meta.get("requestId")
    error = envelope.get("error")
    if response.status_code >= 400 or error:
        error = error if isinstance(error, Mapping) else {}
        status = response.status_code
        error_class = PlugipayUnavailable if status == 429 or status >= 500 else PlugipayError
        raise error_class(
            str(error.get("message") or f"Plugipay answered HTTP {status}"),
            status=status,
            code=str(error.get("code") or "unknown"),
            request_id=request_id,
        )
    return envelope.get("data")
