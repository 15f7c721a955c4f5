"""Plugipay's API-key endpoints (spec §2): signing, idempotency, envelope.

The signature covers the path *after* the ``/plugipay`` mount point (what
the vendor SDK signs, since its base URL ends there), with the query string.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
import secrets
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from .wire import BadRequest, Request, Response

PREFIX = "/plugipay"
TIMESTAMP_WINDOW = 300
AUTH_HEADER = re.compile(
    r"^Plugipay-HMAC-SHA256\s+keyId=(?P<key>[^,\s]+),\s*scope=(?P<scope>[^,]*),"
    r"\s*signature=(?P<sig>[0-9a-fA-F]+)\s*$"
)
SCOPE_TOKEN = re.compile(r"^plugipay:[a-z0-9_-]+:([a-z0-9_-]+|\*)$")
WRITE_SCOPE = "plugipay:apikey:write"


def iso_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def envelope_error(status: int, code: str, message: str) -> Response:
    return Response(
        status,
        {
            "error": {"code": code, "message": message},
            "meta": {"requestId": f"req_{uuid.uuid4().hex}"},
        },
    )


def envelope(status: int, data: Any) -> Response:
    return Response(status, {"data": data, "meta": {"requestId": f"req_{uuid.uuid4().hex}"}})


def valid_scope(scope: str) -> bool:
    if scope == "*":
        return True
    tokens = scope.split(" ")
    return bool(tokens) and all(SCOPE_TOKEN.match(t) for t in tokens)


class PlugipayState:
    """API key records (with secrets) and remembered idempotent responses."""

    def __init__(self, account_id: str) -> None:
        self.lock = threading.Lock()
        self.idempotency_lock = threading.Lock()  # one create per key at a time
        self.account_id = account_id
        self.load([])

    def load(self, records: list[dict[str, Any]]) -> None:
        with self.lock:
            self.records = {r["id"]: r for r in records}
            self.by_key_id = {r["keyId"]: r for r in records}
            self.idempotent: dict[tuple[str, str], tuple[str, Response]] = {}

    def public(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k != "secret"}


def handle(state: PlugipayState, req: Request) -> Response | None:
    if not (req.path == PREFIX or req.path.startswith(PREFIX + "/")):
        return None
    path = req.path[len(PREFIX) :]
    caller = _authenticate(state, req)
    if isinstance(caller, Response):
        return caller
    if path == "/api/v1/api-keys":
        if req.method == "GET":
            with state.lock:
                return envelope(200, [state.public(r) for r in state.records.values()])
        if req.method == "POST":
            return _idempotent(state, req, caller)
    elif path.startswith("/api/v1/api-keys/") and path.count("/") == 4:
        if req.method == "DELETE":
            return _forbidden(caller) or _revoke(state, path.rsplit("/", 1)[1])
    else:
        return envelope_error(404, "not_found", "No such endpoint.")
    return envelope_error(405, "method_not_allowed", "Method not allowed here.")


def _authenticate(state: PlugipayState, req: Request) -> dict[str, Any] | Response:
    """The calling key's record, or the 401 to answer."""
    match = AUTH_HEADER.match(req.headers.get("Authorization") or "")
    if not match:
        return envelope_error(401, "invalid_signature", "Missing or malformed signature.")
    timestamp = req.headers.get("X-Plugipay-Timestamp") or ""
    try:
        skew = abs(time.time() - int(timestamp))
    except ValueError:
        return envelope_error(401, "invalid_signature", "Missing or malformed timestamp.")
    with state.lock:
        record = state.by_key_id.get(match["key"])
        record = copy.deepcopy(record) if record else None
    if record is None:
        return envelope_error(401, "invalid_signature", "Unknown key.")
    idem = req.headers.get("Idempotency-Key") or ""
    signed_path = req.raw_target[len(PREFIX) :]
    text = (
        f"{req.method.upper()}\n{signed_path}\n{timestamp}\n"
        f"{hashlib.sha256(req.body).hexdigest()}" + (f"\n{idem}" if idem else "")
    )
    expected = hmac.new(record["secret"].encode(), text.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["sig"].lower()):
        return envelope_error(401, "invalid_signature", "The signature does not match.")
    if skew > TIMESTAMP_WINDOW:
        return envelope_error(401, "invalid_signature", "The timestamp is outside the window.")
    if record["revokedAt"]:
        return envelope_error(401, "key_revoked", "This key has been revoked.")
    return record


def _forbidden(caller: dict[str, Any]) -> Response | None:
    scopes = caller["scope"].split(" ")
    if "*" in scopes or WRITE_SCOPE in scopes or "plugipay:apikey:*" in scopes:
        return None
    return envelope_error(403, "forbidden", "This key lacks plugipay:apikey:write.")


def _idempotent(state: PlugipayState, req: Request, caller: dict[str, Any]) -> Response:
    """Replay a repeated idempotency key; refuse one reused with a new body."""
    idem = req.headers.get("Idempotency-Key") or ""
    if not idem:
        return _forbidden(caller) or _create(state, req)
    body_hash = hashlib.sha256(req.body).hexdigest()
    slot = (caller["keyId"], idem)
    with state.idempotency_lock:
        seen = state.idempotent.get(slot)
        if seen is not None:
            if seen[0] != body_hash:
                return envelope_error(
                    409, "conflict", "This Idempotency-Key was used with a different body."
                )
            return seen[1]
        response = _forbidden(caller) or _create(state, req)
        if response.status < 500:
            response.raw = response.body_bytes()
            state.idempotent[slot] = (body_hash, response)
        return response


def _create(state: PlugipayState, req: Request) -> Response:
    try:
        body = req.json_object()
    except BadRequest as exc:
        return envelope_error(400, "validation_error", exc.message)
    description, scope = body.get("description"), body.get("scope", "*")
    if description is not None and (not isinstance(description, str) or len(description) > 255):
        return envelope_error(
            400, "validation_error", "description must be text of at most 255 characters."
        )
    if scope is None:
        scope = "*"
    if not isinstance(scope, str) or not valid_scope(scope):
        return envelope_error(
            400,
            "validation_error",
            "scope must be '*' or space-separated plugipay:<resource>:<action>.",
        )
    record = {
        "id": f"apk_{secrets.token_hex(12)}",
        "accountId": state.account_id,
        "keyId": f"pk_test_{secrets.token_hex(12)}",
        "description": description,
        "scope": scope,
        "secret": f"sk_test_{secrets.token_hex(24)}",
        "createdAt": iso_now(),
        "revokedAt": None,
    }
    with state.lock:
        state.records[record["id"]] = record
        state.by_key_id[record["keyId"]] = record
    return envelope(201, dict(record))


def _revoke(state: PlugipayState, record_id: str) -> Response:
    with state.lock:
        record = state.records.get(record_id)
        if record is None:
            return envelope_error(404, "not_found", "No API key with this id.")
        if record["revokedAt"]:
            return envelope_error(409, "conflict", "This key is already revoked.")
        record["revokedAt"] = iso_now()
    return envelope(200, None)
