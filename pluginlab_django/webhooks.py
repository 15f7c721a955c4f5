"""Verifying PluginLab webhook deliveries (wire spec §1.6).

PluginLab signs the **raw request body** with HMAC-SHA256 keyed with the
webhook secret and sends the lowercase hex digest in
``X-PluginLab-Signature``. This module checks that signature (in constant
time), the optional ``X-PluginLab-Timestamp`` and the body's shape, and is
reusable from any view::

    from pluginlab_django.webhooks import WebhookHeaders, WebhookVerificationError, verify_webhook

    try:
        payload = verify_webhook(
            request.body,
            request.headers.get(WebhookHeaders.SIGNATURE),
            pluginlab_settings.WEBHOOK_SECRET,
            timestamp=request.headers.get(WebhookHeaders.TIMESTAMP),
        )
    except WebhookVerificationError as exc:
        return JsonResponse({"code": exc.code, "message": exc.message}, status=400)

The exceptions carry the vendor's error codes (``webhook/missing-secret``,
``webhook/missing-body``, ``webhook/missing-signature``,
``webhook/invalid-body-type``, ``webhook/invalid-signature``) plus ours for
what the vendor SDK does not check (timestamps, size). Messages never contain
the body, the secret or the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from .conf import pluginlab_settings

__all__ = [
    "BodyTooLarge",
    "InvalidBodyType",
    "InvalidSignature",
    "InvalidTimestamp",
    "MissingBody",
    "MissingSecret",
    "MissingSignature",
    "StaleTimestamp",
    "WebhookHeaders",
    "WebhookVerificationError",
    "compute_signature",
    "parse_payload",
    "parse_timestamp",
    "verify_webhook",
]

#: Timestamps below this are Unix seconds; at or above it, milliseconds.
MILLISECONDS_THRESHOLD = 10**11


class WebhookHeaders:
    """The header names PluginLab sends with each delivery (vendor SDK names)."""

    SIGNATURE = "X-PluginLab-Signature"
    EVENT = "X-PluginLab-Event"
    DELIVERY_ID = "X-PluginLab-Delivery-Id"
    HOOK_ID = "X-PluginLab-Hook-Id"
    PLUGIN_ID = "X-PluginLab-Plugin-Id"
    SIGNATURE_VERSION = "X-PluginLab-Signature-Version"
    SIGNATURE_ALGORITHM = "X-PluginLab-Signature-Algorithm"
    TIMESTAMP = "X-PluginLab-Timestamp"
    POWERED_BY = "X-Powered-By"

    ALL = (
        SIGNATURE,
        EVENT,
        DELIVERY_ID,
        HOOK_ID,
        PLUGIN_ID,
        SIGNATURE_VERSION,
        SIGNATURE_ALGORITHM,
        TIMESTAMP,
        POWERED_BY,
    )


class WebhookVerificationError(Exception):
    """A delivery that must not be trusted; ``code`` is stable, ``message`` for humans."""

    code = "webhook/invalid"
    message = "Invalid webhook."
    #: The HTTP status a receiver answers with.
    status_code = 400

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class MissingSecret(WebhookVerificationError):
    """No webhook secret is configured: our fault, so the sender should retry."""

    code = "webhook/missing-secret"
    message = "Missing secret. Please init the Webhook with a secret."
    status_code = 500


class MissingBody(WebhookVerificationError):
    code = "webhook/missing-body"
    message = "Missing body. Did this event originate from a PluginLab webhook?"


class MissingSignature(WebhookVerificationError):
    code = "webhook/missing-signature"
    message = "Missing hook signature. Did this event originate from a PluginLab webhook?"


class InvalidBodyType(WebhookVerificationError):
    code = "webhook/invalid-body-type"
    message = "Invalid body type. The body must be a JSON object."


class InvalidSignature(WebhookVerificationError):
    code = "webhook/invalid-signature"
    message = "Invalid hook signature."


class InvalidTimestamp(WebhookVerificationError):
    code = "webhook/invalid-timestamp"
    message = "Invalid X-PluginLab-Timestamp: expected Unix time in milliseconds or seconds."


class StaleTimestamp(WebhookVerificationError):
    """The timestamp is too far from now: a replay, or a badly wrong clock."""

    code = "webhook/stale-timestamp"
    message = "X-PluginLab-Timestamp is outside the accepted tolerance."


class BodyTooLarge(WebhookVerificationError):
    code = "webhook/body-too-large"
    message = "The body is larger than the accepted limit."
    status_code = 413


def compute_signature(body: bytes | str, secret: str) -> str:
    """The lowercase hex HMAC-SHA256 of ``body`` keyed with ``secret``."""
    if isinstance(body, str):
        body = body.encode()
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_timestamp(value: str | int) -> float:
    """Unix seconds from a timestamp in milliseconds or seconds (< 10^11)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidTimestamp() from None
    if number < 0:
        raise InvalidTimestamp()
    return number / 1000 if number >= MILLISECONDS_THRESHOLD else float(number)


def verify_webhook(
    body: bytes | str,
    signature: str | None,
    secret: str | None,
    timestamp: str | int | None = None,
    tolerance: float | None = None,
    *,
    max_body_bytes: int | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify a delivery and return its JSON object payload.

    ``body`` must be the raw bytes as received: re-serialised JSON would not
    match the signature. ``timestamp`` is checked only when given (the
    vendor's own SDK ignores it) against ``tolerance`` seconds, by default
    ``WEBHOOK_TOLERANCE_SECONDS``; it is not covered by the signature, so it
    narrows the replay window rather than closing it — repeated delivery ids
    are caught by the receiver's store. ``max_body_bytes`` (optional) bounds
    a body already read. Raises a :class:`WebhookVerificationError` subclass.
    """
    if not secret:
        raise MissingSecret()
    if not isinstance(body, (bytes, bytearray, str)):
        raise InvalidBodyType("Invalid body type. The body must be the raw bytes or text.")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if not raw:
        raise MissingBody()
    if max_body_bytes is not None and len(raw) > max_body_bytes:
        raise BodyTooLarge()
    if not signature:
        raise MissingSignature()

    expected = compute_signature(raw, secret)
    # compare_digest on bytes: a non-ASCII header must fail, not raise TypeError.
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise InvalidSignature()

    if timestamp not in (None, ""):
        sent_at = parse_timestamp(timestamp)
        if tolerance is None:
            tolerance = pluginlab_settings.WEBHOOK_TOLERANCE_SECONDS
        current = time.time() if now is None else now
        if abs(current - sent_at) > tolerance:
            raise StaleTimestamp()

    return parse_payload(raw)


def parse_payload(raw: bytes) -> dict[str, Any]:
    """Decode a (verified) body: UTF-8 JSON whose top level is an object."""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidBodyType() from None
    if not isinstance(payload, dict):
        raise InvalidBodyType()
    return payload
